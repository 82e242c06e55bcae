#!/bin/bash
# `berth-image build` next to Debian's `buildah bud` on the same Dockerfiles
# (image-tool/bench/build/*.Dockerfile) and the same context: a cold build
# (--no-cache) and a warm rebuild after one copied file changed (the cache
# serves the steps before that file's COPY).
#
#   bash image-tool/bench/build.sh [RUNS]        # default 5 runs per cell
#
# Needs root, buildah, debootstrap, umoci, hyperfine, jq (scripts/install-deps.sh).
# The base images are made locally: Debian 12 minbase by debootstrap (cached
# in $BENCH_WORK, default /var/tmp/berth-build-bench, outside the clone) and
# the project's busybox-static image. Both tools get them as `bench-debian`
# and `bench-busybox`, in private stores under $BENCH_WORK. RUN steps use the
# host network in both (--network host: no bridge is made on this machine,
# and neither tool's CNI setup is measured); buildah runs its steps with runc
# and the ulimits this host needs.
set -euo pipefail
RUNS=${1:-5}
repo=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${BENCH_WORK:-/var/tmp/berth-build-bench}
BIN=${BERTH_BIN:-$repo/target/release}
[ -x "$BIN/berth-image" ] || BIN=$repo/target/debug
BERTH_IMAGE=$BIN/berth-image
BERTH=$BIN/berth
for t in buildah debootstrap umoci hyperfine jq; do
    command -v $t >/dev/null || { echo "$t is missing (scripts/install-deps.sh)" >&2; exit 1; }
done
[ -x "$BERTH_IMAGE" ] && [ -x "$BERTH" ] || {
    echo "build berth and berth-image first: cargo build --release -p berth -p berth-image" >&2; exit 1; }
mkdir -p "$WORK"

# Base images, made once and kept.
if [ ! -d "$WORK/rootfs/usr" ]; then
    rm -rf "$WORK/rootfs.tmp"
    debootstrap --variant=minbase bookworm "$WORK/rootfs.tmp" http://deb.debian.org/debian
    mv "$WORK/rootfs.tmp" "$WORK/rootfs"
fi
LAYOUT=$WORK/layout
if [ ! -f "$LAYOUT/index.json" ]; then
    rm -rf "$LAYOUT"
    umoci init --layout "$LAYOUT"
    umoci new --image "$LAYOUT:debian"
    umoci insert --image "$LAYOUT:debian" "$WORK/rootfs" /
    umoci config --image "$LAYOUT:debian" --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --config.cmd /bin/bash
    "$BERTH_IMAGE" build-busybox "oci:$LAYOUT:busybox" >/dev/null
fi

# The context: ~600 small source files, a config file the warm runs change.
CTX=$WORK/context
if [ ! -f "$CTX/config.ini" ]; then
    rm -rf "$CTX" && mkdir -p "$CTX/src"
    for d in $(seq 1 20); do
        mkdir -p "$CTX/src/mod$d"
        for f in $(seq 1 30); do
            head -c $((2000 + d * f * 7)) /usr/share/dict/words 2>/dev/null >"$CTX/src/mod$d/f$f.txt" ||
                seq $((d * 100 + f)) $((d * 100 + f + 400)) >"$CTX/src/mod$d/f$f.txt"
        done
    done
    printf '[app]\nname=bench\n' >"$CTX/config.ini"
fi
cp "$repo"/image-tool/bench/build/*.Dockerfile "$CTX/"

STORE=$WORK/berth-store
BROOT=$WORK/buildah
mkdir -p "$BROOT/root" "$BROOT/runroot"
bh() { buildah --root "$BROOT/root" --runroot "$BROOT/runroot" --storage-driver overlay "$@"; }
if ! "$BERTH_IMAGE" --store "$STORE" inspect bench-debian >/dev/null 2>&1; then
    "$BERTH_IMAGE" --store "$STORE" pull "oci:$LAYOUT:debian" --name bench-debian:latest >/dev/null
    "$BERTH_IMAGE" --store "$STORE" pull "oci:$LAYOUT:busybox" --name bench-busybox:latest >/dev/null
fi
if ! bh inspect localhost/bench-debian:latest >/dev/null 2>&1; then
    bh tag "$(bh pull -q "oci:$LAYOUT:debian")" bench-debian
    bh tag "$(bh pull -q "oci:$LAYOUT:busybox")" bench-busybox
fi

berth_build() { # DOCKERFILE [--no-cache]
    "$BERTH_IMAGE" --store "$STORE" build --runtime "$BERTH" --network host -t "bench-out-${1%%.*}" -f "$CTX/$1" ${2:-} "$CTX" >/dev/null
}
buildah_build() {
    bh bud --quiet --layers --pull=never --format oci --runtime runc --network host \
        --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
        -t "bench-out-${1%%.*}" -f "$CTX/$1" ${2:-} "$CTX" >/dev/null
}
export -f berth_build buildah_build bh
export BERTH_IMAGE BERTH STORE BROOT CTX

out=$WORK/results.md
: >"$out"
echo "| Dockerfile | case | buildah bud (s) | berth-image build (s) |" >>"$out"
echo "|---|---|---|---|" >>"$out"
touch_file() { echo "# $(date +%s%N)" >>"$CTX/config.ini"; }
export -f touch_file
median() { jq -r '.results[0].median' "$1"; }
for df in debian-app multistage busybox-small; do
    f=$df.Dockerfile
    berth_build "$f"; buildah_build "$f"   # warm both caches once
    hyperfine --shell bash --runs "$RUNS" --export-json "$WORK/cold-buildah.json" "buildah_build $f --no-cache" >/dev/null
    hyperfine --shell bash --runs "$RUNS" --export-json "$WORK/cold-berth.json" "berth_build $f --no-cache" >/dev/null
    hyperfine --shell bash --runs "$RUNS" --prepare touch_file --export-json "$WORK/warm-buildah.json" "buildah_build $f" >/dev/null
    hyperfine --shell bash --runs "$RUNS" --prepare touch_file --export-json "$WORK/warm-berth.json" "berth_build $f" >/dev/null
    printf '| %s | cold (--no-cache) | %.2f | %.2f |\n' "$df" "$(median "$WORK/cold-buildah.json")" "$(median "$WORK/cold-berth.json")" >>"$out"
    printf '| %s | warm, config.ini changed | %.2f | %.2f |\n' "$df" "$(median "$WORK/warm-buildah.json")" "$(median "$WORK/warm-berth.json")" >>"$out"
done
# Keep the stores from growing without bound between bench runs.
"$BERTH_IMAGE" --store "$STORE" gc >/dev/null
bh rmi --prune >/dev/null 2>&1 || true
echo "median of $RUNS runs; $(nproc) cores; $(uname -r)"
cat "$out"
