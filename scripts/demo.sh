#!/bin/bash
# Build everything (release) and run a demo container: a busybox-static image the
# project builds itself is imported into a private content store, composed into an
# overlayfs bundle and run by berth. No network. Run as root on Debian 12.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

bash scripts/install-deps.sh
cargo build --release --workspace
target=${CARGO_TARGET_DIR:-$repo/target}/release
berth=$target/berth
image=$target/berth-image

work=$(mktemp -d /tmp/berth-demo.XXXXXX)
store=$work/store root=$work/run id=demo-$$
cleanup() {
    "$berth" --root "$root" delete --force "$id" >/dev/null 2>&1 || true
    "$image" --store "$store" unbundle "$work/bundle" >/dev/null 2>&1 || true
    for c in $("$image" --store "$store" ps -a 2>/dev/null | awk 'NR > 1 {print $1}'); do
        "$image" --store "$store" rm -f "$c" >/dev/null 2>&1 || true
    done
    umount -R "$work/bundle/rootfs" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "== building a busybox image into an OCI layout"
"$image" --store "$store" build-busybox "oci:$work/layout:latest"
echo "== importing it (each layer unpacked once into the store)"
"$image" --store "$store" pull "oci:$work/layout:latest" --name busybox
"$image" --store "$store" list
echo "== composing an overlayfs bundle"
"$image" --store "$store" bundle busybox "$work/bundle" -- \
    sh -c 'echo "hello from berth: $(hostname), pid $$, uid $(id -u)"; echo "rootfs:"; ls /; cat /proc/self/cgroup | head -3'
echo "== berth run"
"$berth" --root "$root" run --bundle "$work/bundle" "$id"
echo "== the same image through the standalone run flow (own writable layer, removed after)"
"$image" --store "$store" run --rm --net none --runtime "$berth" busybox \
    sh -c 'echo "hello from berth-image run" > /tmp/w; cat /tmp/w'
echo "== done"
