#!/bin/bash
# Regenerate runtime/symbol-order.txt, the order in which the release berth
# binary's functions are laid out (runtime/build.rs): the functions the
# lifecycle commands call, in the order of their first call, recorded by
# scripts/symbol-order/first-calls.c while scripts/symbol-order/train.sh drives
# the release binary. On a hybrid cgroup host the training runs once more in a
# private mount namespace without the cgroup2 mount, so that the code for
# v1-only hosts is laid out too. Run as root after changes to what the
# lifecycle commands call (scripts/symbol-order.sh --check says how much of the
# list the current build still has).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p berth -q
berth=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)/x86_64-unknown-linux-gnu/release/berth
order=runtime/symbol-order.txt
work=$(mktemp -d /tmp/berth-symbol-order.XXXXXX)
trap 'rm -rf "$work"' EXIT
# Functions of the binary as "ADDRESS NAME" (the release build keeps its symbol table).
nm --defined-only "$berth" | awk '$2 ~ /^[tTwW]$/ {print $1, $3}' >"$work/funcs"

if [ "${1:-}" = --check ]; then
    total=$(grep -c . "$order")
    found=$(awk '{print $2}' "$work/funcs" | sort -u | comm -12 - <(sort -u "$order") | wc -l)
    echo "symbol-order: $found of $total listed functions are in $berth"
    # A list that has drifted from the code (a toolchain or dependency update
    # renames most symbols) is regenerated rather than silently ignored.
    [ $((found * 100)) -ge $((total * 80)) ] || {
        echo "symbol-order: under 80% left: run scripts/symbol-order.sh" >&2
        exit 1
    }
    exit 0
fi

gcc -O2 -Wall -o "$work/first-calls" scripts/symbol-order/first-calls.c
"$work/first-calls" "$berth" "$work/funcs" "$work/order" \
    bash scripts/symbol-order/train.sh "$berth" 2>/dev/null
if grep -q ' /sys/fs/cgroup/unified ' /proc/self/mountinfo; then
    unshare -m bash -c 'mount --make-rprivate / && umount /sys/fs/cgroup/unified && exec "$@"' _ \
        "$work/first-calls" "$berth" "$work/funcs" "$work/order" \
        bash scripts/symbol-order/train.sh "$berth" 2>/dev/null
fi
awk '!seen[$0]++' "$work/order" >"$order"
echo "symbol-order: $(grep -c . "$order") functions written to $order"
