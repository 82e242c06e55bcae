#!/bin/bash
# Checkpoint/restore benchmark: berth vs runc, both driving the CRIU that
# scripts/criu.sh builds, on a container whose one process holds 100 MB of
# written anonymous memory (bench/hold.c). Each iteration, for each runtime
# in turn: run -d, wait until the memory is written, time `checkpoint` (the
# container is dumped and stopped), then time `restore -d` under the same id,
# check it runs, delete it. Bundle and images live on a private tmpfs, so the
# numbers are the runtime's and CRIU's work, not the disk's.
#
# Usage (root): bash bench/checkpoint.sh [ITERATIONS] [MEGABYTES]
set -euo pipefail
cd "$(dirname "$0")/.."
ITER=${1:-7}
MB=${2:-100}
bash scripts/install-deps.sh
CRIU=$(bash scripts/criu.sh)
# berth as shipped: the static release binary (as bench/lifecycle.sh).
RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release -p berth -q --target x86_64-unknown-linux-gnu
BERTH=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)/x86_64-unknown-linux-gnu/release/berth
RUNC=$(command -v runc)

work=$(mktemp -d /tmp/berth-crbench.XXXXXX)
ids=()
cleanup() {
    for id in "${ids[@]}"; do
        "$BERTH" --root "$work/berth-root" delete -f "$id" >/dev/null 2>&1 || true
        "$RUNC" --root "$work/runc-root" delete -f "$id" >/dev/null 2>&1 || true
    done
    umount "$work" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
mount -t tmpfs -o size=$((MB * 4 + 256))m,mode=0700 berth-crbench "$work"

bundle=$work/bundle
mkdir -p "$bundle/rootfs"/{proc,sys,dev,tmp}
gcc -O2 -static -o "$bundle/rootfs/hold" bench/hold.c
"$BERTH" spec --bundle "$bundle"
jq --arg mb "$MB" '.process.terminal = false | .root.readonly = false
    | .process.args = ["/hold", $mb]' "$bundle/config.json" >"$bundle/config.tmp"
mv "$bundle/config.tmp" "$bundle/config.json"

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# one RUNTIME_NAME BINARY ITERATION: appends "checkpoint_ms restore_ms image_kb".
one() {
    local name=$1 bin=$2 i=$3
    local root=$work/$name-root id=crbench-$name-$$-$i images=$work/images-$name-$i
    ids+=("$id")
    rm -f "$bundle/rootfs/ready"
    (cd "$bundle" && "$bin" --root "$root" run -d "$id" </dev/null >/dev/null 2>&1)
    for _ in $(seq 1 600); do
        [[ -e $bundle/rootfs/ready ]] && break
        sleep 0.05
    done
    [[ -e $bundle/rootfs/ready ]] || { echo "$name: the container did not get ready" >&2; exit 1; }
    local t0 t1 t2
    t0=$(now_ms)
    "$bin" --root "$root" --criu "$CRIU" checkpoint --image-path "$images" "$id" ||
        { echo "$name checkpoint failed" >&2; exit 1; }
    t1=$(now_ms)
    "$bin" --root "$root" --criu "$CRIU" restore -d --bundle "$bundle" --image-path "$images" "$id" \
        </dev/null >/dev/null 2>"$work/restore.err" ||
        { echo "$name restore failed: $(cat "$work/restore.err")" >&2; exit 1; }
    t2=$(now_ms)
    "$bin" --root "$root" state "$id" | jq -e '.status == "running"' >/dev/null ||
        { echo "$name: restored container is not running" >&2; exit 1; }
    echo "$((t1 - t0)) $((t2 - t1)) $(du -sk "$images" | cut -f1)" >>"$work/$name.times"
    "$bin" --root "$root" delete -f "$id" >/dev/null
    rm -rf "$images"
}

for i in $(seq 1 "$ITER"); do
    one berth "$BERTH" "$i"
    one runc "$RUNC" "$i"
done

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo
echo "checkpoint/restore of a container holding $MB MB (median of $ITER, ms; CRIU $("$CRIU" --version | awk '/Version/ { print $2 }'), images on tmpfs)"
printf '%-24s %12s %12s %12s\n' runtime checkpoint restore "images (MB)"
for name in berth runc; do
    f=$work/$name.times
    version=$("$([[ $name == berth ]] && echo "$BERTH" || echo "$RUNC")" --version | awk 'NR == 1 { print $NF }')
    printf '%-24s %12s %12s %12s\n' "$name $version" \
        "$(cut -d' ' -f1 "$f" | median)" "$(cut -d' ' -f2 "$f" | median)" \
        "$(($(cut -d' ' -f3 "$f" | median | cut -d. -f1) / 1024))"
done
