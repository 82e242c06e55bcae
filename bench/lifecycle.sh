#!/bin/bash
# Lifecycle benchmark table: berth vs runc vs crun (see bench/lifecycle.py): Debian 12's
# runc 1.1 and crun 1.8, and runc 1.3 and crun 1.28 from Debian unstable
# (scripts/unstable-peers.sh, a private prefix).
# crun 1.8 refuses this host's hybrid cgroup layout, so every runtime runs in a
# private mount namespace without the cgroup2 mount at /sys/fs/cgroup/unified.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# berth as shipped: a static binary (no dynamic loader, fewer pages to map).
RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release -p berth -q --target x86_64-unknown-linux-gnu
SPAWN=$(mktemp /tmp/berth-spawn.XXXXXX)
trap 'rm -f "$SPAWN"' EXIT
gcc -O2 -o "$SPAWN" bench/spawn.c
BERTH=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)/x86_64-unknown-linux-gnu/release/berth
UNSTABLE=$(bash scripts/unstable-peers.sh)
unshare -m bash -c '
  mount --make-rprivate /
  umount /sys/fs/cgroup/unified 2>/dev/null || true
  exec python3 bench/lifecycle.py --berth "$0" --spawn "$1" "${@:2}"' "$BERTH" "$SPAWN" \
    --runc-new "$UNSTABLE/bin/runc" --crun-new "$UNSTABLE/bin/crun" "$@"
