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

# Raw decompression of the three layers: the floor for any unpacker.
LAYERS=$(jq -r '.manifests[]|select(.annotations["org.opencontainers.image.ref.name"]=="deb3").digest' "$LAYOUT/index.json" |
    cut -d: -f2 | xargs -I{} jq -r '.layers[].digest' "$LAYOUT/blobs/sha256/{}" | cut -d: -f2 |
    sed "s|^|$LAYOUT/blobs/sha256/|" | tr '\n' ' ')
uptime
for tag in deb deb3; do
    hyperfine --warmup 1 --runs 5 \
        --prepare "rm -rf $WORK/umoci-out $WORK/store; sync" \
        -n "gzip -dc (deb3 layers)" "cat $LAYERS | gzip -dc >/dev/null" \
        -n "umoci unpack ($tag)" "umoci unpack --image $LAYOUT:$tag $WORK/umoci-out" \
        -n "berth-image pull ($tag)" "$BIN --store $WORK/store pull oci:$LAYOUT:$tag"
done

# A second image sharing the base layer (deb3 = rest, usr, var; deb3-top = rest, usr,
# var + one small layer): only the new layer is extracted, the others are reused.
if ! grep -q deb3-top "$LAYOUT/index.json"; then
    umoci tag --image "$LAYOUT:deb3" deb3-top
    mkdir -p "$WORK/top" && echo top >"$WORK/top/top-layer"
    umoci insert --image "$LAYOUT:deb3-top" "$WORK/top" /opt/top
fi
rm -rf "$WORK/store"
"$BIN" --store "$WORK/store" pull "oci:$LAYOUT:deb3" --name deb3 >/dev/null
hyperfine --warmup 1 --runs 10 \
    --prepare "$BIN --store $WORK/store rmi deb3-top >/dev/null 2>&1 || true" \
    -n "berth-image pull (deb3 present; deb3-top adds one layer)" \
    "$BIN --store $WORK/store pull oci:$LAYOUT:deb3-top --name deb3-top"
echo "layer directories after deb3 + deb3-top: $(ls "$WORK/store/layers" | wc -l) (4 expected)"
# Re-pulling an image whose layers are all present extracts nothing.
hyperfine --warmup 1 --runs 10 \
    -n "berth-image pull (all layers present)" "$BIN --store $WORK/store pull oci:$LAYOUT:deb3 --name deb3"

hyperfine --warmup 2 --runs 20 \
    --prepare "$BIN unbundle $WORK/bundle 2>/dev/null || true" \
    -n "berth-image bundle (layers already unpacked)" "$BIN --store $WORK/store bundle deb3 $WORK/bundle -- /bin/true" \
    -n "berth-image bundle --copy" "$BIN --store $WORK/store bundle --copy deb3 $WORK/bundle -- /bin/true"
