#!/usr/bin/env bash
# Fuzz berth with cargo-fuzz (libFuzzer): each target for SECONDS_PER_TARGET
# seconds (default 60), starting from the committed seeds in fuzz/corpus/.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]
#
# Targets (fuzz/fuzz_targets/):
#   spec_config      berth_runtime::bundle_config::parse + bundle_config::validate
#   seccomp_compile  berth_runtime::seccomp::parse + compile (+ program checks)
#   unpack_tar       berth_image::unpack::unpack_tar into a scratch dir
#   dockerfile       berth_image::build parser, instructions and word expansion
#
# Only the stable toolchain is needed: cargo-fuzz's default AddressSanitizer
# build passes -Zsanitizer=address, which stable rustc refuses, so the targets
# are built with `--sanitizer none` (libFuzzer's coverage instrumentation and
# debug assertions still apply; safe Rust gains little from ASan).
# FUZZ_SANITIZER=address uses ASan instead (needs nightly, or RUSTC_BOOTSTRAP=1).
#
# Environment:
#   CARGO_TARGET_DIR  build directory (default: fuzz/target)
#   FUZZ_TARGETS      space-separated subset of the targets above
#   FUZZ_SANITIZER    cargo fuzz --sanitizer value (default: none)
#   FUZZ_JOBS         libFuzzer -fork=N worker processes per target (default: 1, no fork)
#   BERTH_FUZZ_TMPDIR scratch directory for the targets (default: a fresh
#                     directory under /dev/shm, else under $TMPDIR)
#
# libFuzzer's growing corpus goes to fuzz/work/<target>/ (git-ignored; the seeds
# in fuzz/corpus/<target>/ are only read). Crashes, timeouts and OOMs land in
# fuzz/artifacts/<target>/; the script prints their paths and exits 1 if any
# target found one. Reproduce one with
#   cargo fuzz run -s none <target> <artifact>
# and minimize it with
#   cargo fuzz tmin -s none <target> <artifact>
set -euo pipefail

secs=${1:-60}
if ! [[ $secs =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ]; then
    echo "usage: $0 [SECONDS_PER_TARGET]" >&2
    exit 2
fi

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/fuzz/target}
sanitizer=${FUZZ_SANITIZER:-none}
targets=(${FUZZ_TARGETS:-spec_config seccomp_compile unpack_tar dockerfile})
jobs=${FUZZ_JOBS:-1}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz"
    nice -n 10 cargo install --locked cargo-fuzz --version '^0.13'
fi

scratch_owned=
if [ -z "${BERTH_FUZZ_TMPDIR:-}" ]; then
    if [ -d /dev/shm ] && [ -w /dev/shm ]; then
        BERTH_FUZZ_TMPDIR=$(mktemp -d /dev/shm/berth-fuzz.XXXXXX)
    else
        BERTH_FUZZ_TMPDIR=$(mktemp -d "${TMPDIR:-/tmp}/berth-fuzz.XXXXXX")
    fi
    scratch_owned=$BERTH_FUZZ_TMPDIR
fi
export BERTH_FUZZ_TMPDIR
cleanup() { if [ -n "$scratch_owned" ]; then rm -rf "$scratch_owned"; fi; }
trap cleanup EXIT

echo "fuzz.sh: building ${targets[*]} (sanitizer $sanitizer, CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
for t in "${targets[@]}"; do
    nice -n 10 cargo fuzz build --sanitizer "$sanitizer" "$t"
done

logdir=$CARGO_TARGET_DIR/fuzz-logs
mkdir -p "$logdir"
failed=()
for t in "${targets[@]}"; do
    work=fuzz/work/$t
    artifacts=fuzz/artifacts/$t
    mkdir -p "$work" "$artifacts"
    before=$(ls -1 "$artifacts")
    args=(-max_total_time="$secs" -timeout=60 -rss_limit_mb=4096 -print_final_stats=1)
    if [ -f "fuzz/dicts/$t.dict" ]; then
        args+=(-dict="fuzz/dicts/$t.dict")
    fi
    if [ "$jobs" -gt 1 ]; then
        args+=(-fork="$jobs" -ignore_crashes=0)
    fi
    log=$logdir/$t.log
    echo "fuzz.sh: running $t for ${secs}s (log: $log)"
    rc=0
    nice -n 10 cargo fuzz run --sanitizer "$sanitizer" "$t" "$work" "fuzz/corpus/$t" \
        -- "${args[@]}" >"$log" 2>&1 || rc=$?
    # The last libFuzzer status line: executions, coverage, corpus size, speed.
    grep -E '^#[0-9]+' "$log" | tail -n 1 || true
    grep -E '^stat::number_of_executed_units' "$log" || true
    new=$(comm -13 <(echo "$before") <(ls -1 "$artifacts") | sed '/^$/d')
    if [ "$rc" -ne 0 ] || [ -n "$new" ]; then
        echo "fuzz.sh: $t FAILED (exit $rc); log tail:"
        tail -n 40 "$log" | sed 's/^/    /'
        for f in $new; do
            echo "fuzz.sh: $t: crash input: $root/$artifacts/$f"
        done
        failed+=("$t")
    else
        echo "fuzz.sh: $t ok"
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz.sh: failures in: ${failed[*]}"
    exit 1
fi
echo "fuzz.sh: all targets ran ${secs}s without a crash"
