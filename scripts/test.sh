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
step() {
    local name=$1; shift
    echo
    echo "=== $name"
    local t0=$SECONDS
    if "$@"; then
        results+=("PASS  $name ($((SECONDS - t0)) s)")
    else
        results+=("FAIL  $name ($((SECONDS - t0)) s)")
        failed=1
    fi
}

step "cargo build" cargo build --workspace --all-targets
step "cargo test (all crates)" cargo test --workspace --no-fail-fast -- --test-threads=2
conformance_build() {
    RUSTFLAGS="-C target-feature=+crt-static" \
        cargo build -p berth-conformance --target x86_64-unknown-linux-gnu
}
step "conformance build" conformance_build
step "conformance vs berth" \
    "$target/x86_64-unknown-linux-gnu/debug/berth-conformance" --runtime "$target/debug/berth"
step "pure cgroup-v2 kernel (qemu)" bash tests/v2vm/run.sh --target-dir "$target"
# A bounded fuzzing pass over every target from the committed seeds; longer
# runs: scripts/fuzz.sh SECONDS (README, "Robustness").
step "fuzz (${BERTH_CI_FUZZ_SECONDS:-30} s per target)" \
    env CARGO_TARGET_DIR="$target/fuzz" bash scripts/fuzz.sh "${BERTH_CI_FUZZ_SECONDS:-30}"

echo
echo "=== summary"
printf '%s\n' "${results[@]}"
exit $failed
