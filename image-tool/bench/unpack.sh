#!/bin/bash
# Compare `umoci unpack` with `berth-image pull` (verify + unpack into the store) and
# `berth-image bundle` (overlay over already-unpacked layers) on a Debian minbase image.
#
#   image-tool/bench/unpack.sh [WORKDIR]
#
# berth-image is built from this checkout (release) unless BERTH_IMAGE names a binary.
#
# Needs root, umoci, hyperfine and debootstrap (apt-get install -y debootstrap hyperfine).
#
# Where the outputs go: by default a fresh ext4 filesystem made with mkfs.ext4's
# defaults (journal on, as Debian installs it) on a loop device under WORKDIR, so the
# numbers do not depend on the state of the host's filesystem. BENCH_NATIVE_FS=1
# writes into WORKDIR itself instead. On an ext4 *without* a journal, the kernel's inode
# allocator skips every inode freed in the last seconds to minutes (find_inode_bit /
# recently_deleted), so unpacking right after deleting the previous run's tree costs
# seconds of system time in every unpacker alike.
#
# BENCH_LOAD=N runs N busy loops (shell processes spinning on `:`) during the
# whole benchmark, e.g. BENCH_LOAD=$(nproc) to keep every core busy and see the
# ratios on a loaded machine; they are stopped when the script ends.
# BENCH_TAGS (default "deb deb3 debx") chooses the images of the first table;
# the script ends with a table of umoci's time over berth-image's for them.
set -eu
WORK=${1:-/var/tmp/berth-bench}
if [ -z "${BERTH_IMAGE:-}" ]; then
    repo=$(cd "$(dirname "$0")/../.." && pwd)
    (cd "$repo" && cargo build -q --release -p berth-image)
    BERTH_IMAGE=$(cd "$repo" && cargo metadata --format-version 1 --no-deps | jq -r .target_directory)/release/berth-image
fi
BIN=$BERTH_IMAGE
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

# add_layer FROM_TAG NEW_TAG DIR: NEW_TAG = FROM_TAG's layers + DIR as one more gzip
# layer. Written here with tar, gzip and jq: umoci 0.4.7's `insert` of a tiny
# directory writes a truncated tar stream.
add_layer() {
    local from=$1 to=$2 dir=$3 blobs=$LAYOUT/blobs/sha256 tmp
    tmp=$(mktemp -d)
    tar -C "$dir" --sort=name --owner=0 --group=0 --numeric-owner -cf "$tmp/layer.tar" .
    gzip -n -c "$tmp/layer.tar" >"$tmp/layer.tar.gz"
    local diff_id layer size
    diff_id=sha256:$(sha256sum "$tmp/layer.tar" | cut -d' ' -f1)
    layer=$(sha256sum "$tmp/layer.tar.gz" | cut -d' ' -f1)
    size=$(stat -c %s "$tmp/layer.tar.gz")
    cp "$tmp/layer.tar.gz" "$blobs/$layer"
    local manifest config
    manifest=$(jq -r --arg t "$from" \
        '.manifests[]|select(.annotations["org.opencontainers.image.ref.name"]==$t).digest' \
        "$LAYOUT/index.json" | cut -d: -f2)
    config=$(jq -r .config.digest "$blobs/$manifest" | cut -d: -f2)
    jq -c --arg d "$diff_id" '.rootfs.diff_ids += [$d] | .history += [{"created_by": "add_layer"}]' \
        "$blobs/$config" >"$tmp/config"
    local cdig csize
    cdig=$(sha256sum "$tmp/config" | cut -d' ' -f1)
    csize=$(stat -c %s "$tmp/config")
    cp "$tmp/config" "$blobs/$cdig"
    jq -c --arg c "sha256:$cdig" --argjson cs "$csize" --arg l "sha256:$layer" --argjson ls "$size" \
        '.config.digest = $c | .config.size = $cs |
         .layers += [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": $l, "size": $ls}]' \
        "$blobs/$manifest" >"$tmp/manifest"
    local mdig msize
    mdig=$(sha256sum "$tmp/manifest" | cut -d' ' -f1)
    msize=$(stat -c %s "$tmp/manifest")
    cp "$tmp/manifest" "$blobs/$mdig"
    jq --arg t "$to" --arg m "sha256:$mdig" --argjson ms "$msize" \
        '.manifests = ([.manifests[]|select(.annotations["org.opencontainers.image.ref.name"]!=$t)]
          + [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": $m, "size": $ms,
              "annotations": {"org.opencontainers.image.ref.name": $t}}])' \
        "$LAYOUT/index.json" >"$tmp/index.json"
    mv "$tmp/index.json" "$LAYOUT/index.json"
    rm -rf "$tmp"
}

# A second image sharing the base layers (deb3 = rest, usr, var; deb3-top = rest, usr,
# var + one small layer).
if [ ! -f "$WORK/deb3-top.done" ]; then
    mkdir -p "$WORK/top/opt/top" && echo top >"$WORK/top/opt/top/top-layer"
    add_layer deb3 deb3-top "$WORK/top"
    touch "$WORK/deb3-top.done"
fi
# The issue's shape: the minbase base layer, ~100 MB of libraries on top, and a layer
# that deletes directories (OCI whiteouts for three /usr/share dirs, an opaque /opt/libs).
if [ ! -f "$WORK/debx.done" ]; then
    rm -rf "$WORK/mid" "$WORK/del"
    mkdir -p "$WORK/mid/opt/libs"
    find /usr/lib/x86_64-linux-gnu -maxdepth 1 -type f -size +100k -print0 | sort -z |
        while IFS= read -r -d '' f; do
            [ "$(du -sm "$WORK/mid" | cut -f1)" -ge 100 ] && break
            cp "$f" "$WORK/mid/opt/libs/"
        done
    mkdir -p "$WORK/del/usr/share" "$WORK/del/opt/libs"
    touch "$WORK/del/usr/share/.wh.doc" "$WORK/del/usr/share/.wh.locale" \
        "$WORK/del/usr/share/.wh.man" "$WORK/del/opt/libs/.wh..wh..opq"
    echo "libraries removed" >"$WORK/del/opt/libs/README"
    add_layer deb debx-mid "$WORK/mid"
    add_layer debx-mid debx "$WORK/del"
    rm -rf "$WORK/mid" "$WORK/del"
    touch "$WORK/debx.done"
fi
du -sh "$LAYOUT"

OUT=$WORK
if [ "${BENCH_NATIVE_FS:-0}" != 1 ]; then
    OUT=$WORK/fs
    mkdir -p "$OUT"
    rm -f "$WORK/fs.img"
    truncate -s 4G "$WORK/fs.img"
    mkfs.ext4 -q -F "$WORK/fs.img"
    mount -o loop "$WORK/fs.img" "$OUT"
fi
CD=$OUT/containerd
# A private containerd with its root on the same filesystem, restarted empty before
# every timed import (hyperfine's --prepare).
cat >"$WORK/containerd-restart.sh" <<EOF
#!/bin/bash
[ -f "$CD.pid" ] && kill \$(cat "$CD.pid") 2>/dev/null && while kill -0 \$(cat "$CD.pid") 2>/dev/null; do sleep 0.05; done
rm -rf "$CD" && mkdir -p "$CD"
printf '%s\n' 'version = 2' 'root = "$CD/root"' 'state = "$CD/state"' \
    'disabled_plugins = ["io.containerd.grpc.v1.cri"]' '[grpc]' '  address = "$CD/sock"' \
    '[ttrpc]' '  address = "$CD/sock.ttrpc"' >"$CD/config.toml"
setsid containerd --config "$CD/config.toml" >"$CD.log" 2>&1 </dev/null & echo \$! >"$CD.pid"
for _ in \$(seq 200); do ctr -a "$CD/sock" version >/dev/null 2>&1 && break; sleep 0.05; done
sync
EOF
LOAD_PIDS=()
stop_load() {
    if [ ${#LOAD_PIDS[@]} -gt 0 ]; then
        kill "${LOAD_PIDS[@]}" 2>/dev/null || true
        wait "${LOAD_PIDS[@]}" 2>/dev/null || true
        LOAD_PIDS=()
    fi
}
cleanup() {
    stop_load
    "$BIN" unbundle "$OUT/bundle" 2>/dev/null || true
    [ -f "$CD.pid" ] && kill "$(cat "$CD.pid")" 2>/dev/null && sleep 1
    rm -rf "$OUT/umoci-out" "$OUT/store" "$CD" "$CD.pid" "$CD.log" "$WORK"/*.oci.tar "$WORK/containerd-restart.sh"
    if [ "$OUT" != "$WORK" ]; then
        umount "$OUT" && rm -f "$WORK/fs.img" && rmdir "$OUT"
    fi
}
trap cleanup EXIT
echo "outputs on: $(findmnt -n -o SOURCE,FSTYPE,OPTIONS --target "$OUT")"

# layers TAG: the layer blob paths of TAG.
layers() {
    jq -r --arg t "$1" '.manifests[]|select(.annotations["org.opencontainers.image.ref.name"]==$t).digest' \
        "$LAYOUT/index.json" | cut -d: -f2 | xargs -I{} jq -r '.layers[].digest' "$LAYOUT/blobs/sha256/{}" |
        cut -d: -f2 | sed "s|^|$LAYOUT/blobs/sha256/|" | tr '\n' ' '
}
for _ in $(seq "${BENCH_LOAD:-0}"); do
    sh -c 'while :; do :; done' &
    LOAD_PIDS+=($!)
done
echo "busy loops running: ${#LOAD_PIDS[@]}"
TAGS=${BENCH_TAGS:-deb deb3 debx}
uptime
# Per image: raw decompression of its layers (the floor for any unpacker), umoci,
# berth-image into its store, and berth-image from the layout to a ready bundle.
for tag in $TAGS; do
    hyperfine --warmup 1 --runs 5 --export-json "$WORK/$tag.json" \
        --prepare "$BIN unbundle $OUT/bundle 2>/dev/null; rm -rf $OUT/umoci-out $OUT/store; sync" \
        -n "gzip -dc ($tag layers)" "cat $(layers $tag) | gzip -dc >/dev/null" \
        -n "umoci unpack ($tag)" "umoci unpack --image $LAYOUT:$tag $OUT/umoci-out" \
        -n "berth-image pull ($tag)" "$BIN --store $OUT/store pull oci:$LAYOUT:$tag" \
        -n "berth-image bundle from the layout ($tag)" \
        "$BIN --store $OUT/store bundle oci:$LAYOUT:$tag $OUT/bundle -- /bin/true"
done
"$BIN" unbundle "$OUT/bundle" 2>/dev/null || true
ratios() {
    echo "busy loops: ${#LOAD_PIDS[@]}; $(uptime)"
    printf '%-6s %14s %14s %14s %8s\n' image "umoci (s)" "pull (s)" "bundle (s)" "umoci/pull"
    for tag in $TAGS; do
        jq -r --arg t "$tag" '
            (.results[] | select(.command | startswith("umoci")) | .mean) as $u |
            (.results[] | select(.command | startswith("berth-image pull")) | .mean) as $p |
            (.results[] | select(.command | startswith("berth-image bundle")) | .mean) as $b |
            "\($t) \($u) \($p) \($b) \($u / $p)"' "$WORK/$tag.json" |
            while read -r t u p b r; do
                printf '%-6s %14.3f %14.3f %14.3f %8.2f\n' "$t" "$u" "$p" "$b" "$r"
            done
    done
}

# containerd's own import (content store + overlayfs snapshots) of the same images,
# from OCI archives written by skopeo, into a containerd restarted empty each time.
if command -v containerd >/dev/null && command -v skopeo >/dev/null; then
    for tag in $TAGS; do
        skopeo copy -q "oci:$LAYOUT:$tag" "oci-archive:$WORK/$tag.oci.tar:$tag"
        hyperfine --warmup 1 --runs 5 \
            --prepare "bash $WORK/containerd-restart.sh" \
            -n "ctr images import ($tag)" \
            "ctr -a $CD/sock -n bench images import --base-name bench/$tag $WORK/$tag.oci.tar >/dev/null"
    done
    kill "$(cat "$CD.pid")" 2>/dev/null && sleep 1
else
    echo "containerd or skopeo not installed: no containerd import rows"
fi

# Shared base: with deb3 in the store, pulling deb3-top extracts only its new layer.
rm -rf "$OUT/store"
"$BIN" --store "$OUT/store" pull "oci:$LAYOUT:deb3" --name deb3 >/dev/null
hyperfine --warmup 1 --runs 10 \
    --prepare "$BIN --store $OUT/store rmi deb3-top >/dev/null 2>&1; $BIN --store $OUT/store gc >/dev/null" \
    -n "berth-image pull (deb3 present; deb3-top adds one layer)" \
    "$BIN --store $OUT/store pull oci:$LAYOUT:deb3-top --name deb3-top"
echo "layer directories after deb3 + deb3-top: $(ls "$OUT/store/layers" | wc -l) (4 expected)"
# Re-pulling an image whose layers are all present extracts nothing.
hyperfine --warmup 1 --runs 10 \
    -n "berth-image pull (all layers present)" "$BIN --store $OUT/store pull oci:$LAYOUT:deb3 --name deb3"

hyperfine --warmup 2 --runs 20 \
    --prepare "$BIN unbundle $OUT/bundle 2>/dev/null || true" \
    -n "berth-image bundle (layers already unpacked)" "$BIN --store $OUT/store bundle deb3 $OUT/bundle -- /bin/true" \
    -n "berth-image bundle --copy" "$BIN --store $OUT/store bundle --copy deb3 $OUT/bundle -- /bin/true"
ratios
