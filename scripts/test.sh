#!/bin/bash
# Run every test of the project: unit and integration tests of all crates (real
# containers, overlay mounts, a loopback registry), the conformance suite against
# berth, the runtime on a pure cgroup-v2 kernel under qemu, and a short fuzzing
# pass over every fuzz target. Run as root on
# Debian 12. Exit status is non-zero if any part failed.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

bash scripts/install-deps.sh || exit 1
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target}
target=$CARGO_TARGET_DIR

declare -a results=()
failed=0
# step NAME LIMIT_SECONDS COMMAND...: every step is bounded, so a hang fails
# that step (and names it) instead of stalling the whole run.
step() {
    local name=$1 limit=$2; shift 2
    echo
    echo "=== $name"
    local t0=$SECONDS rc=0
    timeout -k 30 "$limit" "$@" || rc=$?
    if [ $rc -eq 0 ]; then
        results+=("PASS  $name ($((SECONDS - t0)) s)")
    elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        results+=("FAIL  $name (timed out after $limit s)")
        failed=1
    else
        results+=("FAIL  $name ($((SECONDS - t0)) s)")
        failed=1
    fi
}

# CRIU for the checkpoint/restore tests of the runtime, the shim and the
# image tool: built from Debian's source once, then taken from its cache
# (scripts/criu.sh). The tests fail, not skip, without it.
echo
echo "=== criu (scripts/criu.sh)"
t0=$SECONDS
if BERTH_CRIU=$(timeout -k 30 1200 bash scripts/criu.sh); then
    export BERTH_CRIU
    results+=("PASS  criu $BERTH_CRIU ($((SECONDS - t0)) s)")
else
    results+=("FAIL  criu (scripts/criu.sh) ($((SECONDS - t0)) s)")
    failed=1
fi

step "cargo build" 2400 cargo build --workspace --all-targets
step "cargo test (all crates)" 1500 cargo test --workspace --no-fail-fast -- --test-threads=2
step "conformance build" 900 env RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build -p berth-conformance --target x86_64-unknown-linux-gnu
step "conformance vs berth" 600 \
    "$target/x86_64-unknown-linux-gnu/debug/berth-conformance" --runtime "$target/debug/berth"
step "pure cgroup-v2 kernel (qemu)" 900 bash tests/v2vm/run.sh --target-dir "$target"
# A bounded fuzzing pass over every target from the committed seeds; longer
# runs: scripts/fuzz.sh SECONDS (README, "Robustness").
step "fuzz (${BERTH_CI_FUZZ_SECONDS:-30} s per target)" 1500 \
    env CARGO_TARGET_DIR="$target/fuzz" bash scripts/fuzz.sh "${BERTH_CI_FUZZ_SECONDS:-30}"

echo
echo "=== summary"
printf '%s\n' "${results[@]}"
exit $failed
