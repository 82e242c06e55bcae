#!/bin/sh
# Compare `umoci unpack` with `berth-image pull` (verify + unpack into the store) and
# `berth-image bundle` (overlay over already-unpacked layers) on a Debian minbase image.
#
#   BERTH_IMAGE=/path/to/berth-image image-tool/bench/unpack.sh [WORKDIR]
#
# Needs root, umoci, hyperfine and debootstrap (apt-get install -y debootstrap hyperfine).
set -eu
WORK=${1:-/var/tmp/berth-bench}
BIN=${BERTH_IMAGE:-berth-image}
ROOTFS=${BENCH_ROOTFS:-$WORK/rootfs}
LAYOUT=$WORK/layout
mkdir -p "$WORK"

if [ ! -d "$ROOTFS/usr" ]; then
    debootstrap --variant=minbase bookworm "$ROOTFS" http://deb.debian.org/debian
fi
if [ ! -f "$LAYOUT/index.json" ]; then
    umoci init --layout "$LAYOUT"
    umoci new --image "$LAYOUT:deb"
    umoci insert --image "$LAYOUT:deb" "$ROOTFS" /
    # The same tree as three layers (/usr, /var, the rest) to exercise parallel unpacking.
    rm -rf "$WORK/rest" && cp -a "$ROOTFS" "$WORK/rest" && rm -rf "$WORK/rest/usr" "$WORK/rest/var"
    umoci new --image "$LAYOUT:deb3"
    umoci insert --image "$LAYOUT:deb3" "$WORK/rest" /
    umoci insert --image "$LAYOUT:deb3" "$ROOTFS/usr" /usr
    umoci insert --image "$LAYOUT:deb3" "$ROOTFS/var" /var
    rm -rf "$WORK/rest"
fi
du -sh "$LAYOUT"

cleanup() {
    "$BIN" unbundle "$WORK/bundle" 2>/dev/null || true
    rm -rf "$WORK/umoci-out" "$WORK/store"
}
trap cleanup EXIT

for tag in deb deb3; do
    hyperfine --warmup 1 --runs 5 \
        --prepare "rm -rf $WORK/umoci-out $WORK/store; sync" \
        -n "umoci unpack ($tag)" "umoci unpack --image $LAYOUT:$tag $WORK/umoci-out" \
        -n "berth-image pull ($tag)" "$BIN --store $WORK/store pull oci:$LAYOUT:$tag"
done

"$BIN" --store "$WORK/store" pull "oci:$LAYOUT:deb3" --name deb3 >/dev/null
hyperfine --warmup 2 --runs 20 \
    --prepare "$BIN unbundle $WORK/bundle 2>/dev/null || true" \
    -n "berth-image bundle (layers already unpacked)" "$BIN --store $WORK/store bundle deb3 $WORK/bundle -- /bin/true" \
    -n "berth-image bundle --copy" "$BIN --store $WORK/store bundle --copy deb3 $WORK/bundle -- /bin/true"
