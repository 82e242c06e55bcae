#!/bin/bash
# containerd with the berth shim (io.containerd.berth.v2) vs containerd's runc
# shim (io.containerd.runc.v2 running Debian's runc), on a private containerd:
#   1. `ctr run --rm IMAGE ID /bin/true`: median wall time of N runs each, interleaved
#   2. RSS of one idle shim (one sleeping container)
#   3. total RSS (and PSS) of the shims of 50 sleeping containers
#
# Usage (root): shim/bench/ctr.sh [N] [CONTAINERS]     (defaults 20 and 50)
# Needs release builds in $CARGO_TARGET_DIR (default /work/target-shim), static
# ones (as shipped, see README.md) when present, else the default dynamic ones:
#   RUSTFLAGS="-C target-feature=+crt-static" cargo build --release \
#     -p containerd-shim-berth-v2 -p berth -p berth-image --target x86_64-unknown-linux-gnu
#   (or: cargo build --release -p containerd-shim-berth-v2 -p berth -p berth-image)
# BIN=DIR overrides where the three binaries are taken from.
# The smaps breakdown of the idle berth shim goes to stderr.
set -euo pipefail

N=${1:-20}
MANY=${2:-50}
TARGET=${CARGO_TARGET_DIR:-/work/target-shim}
BINS=(containerd-shim-berth-v2 berth berth-image)
have_all() { for b in "${BINS[@]}"; do [[ -x $1/$b ]] || return 1; done; }
if [[ -z ${BIN:-} ]]; then
  BIN=$TARGET/release
  have_all "$TARGET/x86_64-unknown-linux-gnu/release" && BIN=$TARGET/x86_64-unknown-linux-gnu/release
fi
IMAGE=docker.io/library/busybox:latest
for b in "${BINS[@]}"; do
  [[ -x $BIN/$b ]] || { echo "missing $BIN/$b: cargo build --release -p containerd-shim-berth-v2 -p berth -p berth-image" >&2; exit 1; }
done
echo "binaries from $BIN" >&2
command -v containerd >/dev/null || { echo "containerd not installed (scripts/install-deps.sh)" >&2; exit 1; }
[[ $(id -u) == 0 ]] || { echo "run as root" >&2; exit 1; }

DIR=$(mktemp -d /tmp/berth-shim-bench.XXXXXX)
NS=bench-$$
ADDR=$DIR/containerd.sock
export PATH=$BIN:$PATH
CTR=(ctr --address "$ADDR" -n "$NS")
CONTAINERD_PID=

cleanup() {
  set +e
  for id in $("${CTR[@]}" containers ls -q 2>/dev/null); do
    "${CTR[@]}" task kill -s SIGKILL "$id" >/dev/null 2>&1
    "${CTR[@]}" task delete --force "$id" >/dev/null 2>&1
    "${CTR[@]}" containers rm "$id" >/dev/null 2>&1
  done
  if [[ -n $CONTAINERD_PID ]]; then
    kill "$CONTAINERD_PID" 2>/dev/null
    wait "$CONTAINERD_PID" 2>/dev/null
  fi
  for pid in $(pgrep -f -- "-address $ADDR"); do kill -9 "$pid" 2>/dev/null; done
  for root in /run/containerd/berth/$NS /run/containerd/runc/$NS; do
    for id in $(ls "$root" 2>/dev/null); do "$BIN/berth" --root "$root" delete --force "$id" >/dev/null 2>&1; done
    rm -rf "$root"
  done
  grep -o " $DIR[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m"; done
  for c in /sys/fs/cgroup/*/"$NS"; do [[ -d $c ]] && find "$c" -depth -type d -exec rmdir {} + 2>/dev/null; done
  rm -rf "$DIR"
}
trap cleanup EXIT

cat >"$DIR/config.toml" <<EOF
version = 2
root = "$DIR/root"
state = "$DIR/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$ADDR"
[ttrpc]
  address = "$ADDR.ttrpc"
EOF
containerd --config "$DIR/config.toml" >"$DIR/containerd.log" 2>&1 &
CONTAINERD_PID=$!
for _ in $(seq 200); do "${CTR[@]}" version >/dev/null 2>&1 && break; sleep 0.05; done

"$BIN/berth-image" --store "$DIR/store" build-busybox "oci:$DIR/layout:latest" >/dev/null
tar -C "$DIR/layout" -cf "$DIR/busybox.tar" .
"${CTR[@]}" images import --base-name docker.io/library/busybox "$DIR/busybox.tar" >/dev/null

RUNTIMES=(io.containerd.berth.v2 io.containerd.runc.v2)
NAMES=("berth shim" "runc shim")

now_ms() { echo $(($(date +%s%N) / 1000000)); }
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2}'; }
# RSS / PSS (KiB) of the shim daemons of this containerd for a runtime binary name.
shim_pids() { pgrep -f -- "$1 .*-address $ADDR" || true; }
sum_status() { local t=0; for p in $2; do t=$((t + $(awk -v k="$1:" '$1==k {print $2}' /proc/$p/status))); done; echo $t; }
sum_pss() { local t=0; for p in $1; do t=$((t + $(awk '$1=="Pss:" {print $2}' /proc/$p/smaps_rollup))); done; echo $t; }
# Where an idle shim's resident memory is: Rss per mapping (KiB), threads.
breakdown() {
  local p
  for p in $1; do
    echo "idle berth shim $p: $(ls /proc/$p/task | wc -l) threads:" \
      "$(cat /proc/$p/task/*/comm | sort | uniq -c | awk '{printf "%s%s x%s", (NR > 1 ? ", " : ""), $2, $1}')"
    echo "Rss by mapping (KiB):"
    awk '/^[0-9a-f]+-[0-9a-f]+ / {name = (NF >= 6 ? $6 : "[anon]")} $1 == "Rss:" {rss[name] += $2}
         END {for (n in rss) if (rss[n] > 0) printf "  %6d  %s\n", rss[n], n}' /proc/$p/smaps | sort -rn
    grep -E '^(Rss|Pss|Anonymous|Private_Dirty):' /proc/$p/smaps_rollup | tr -s ' ' | sed 's/^/  /'
  done
}
shim_binary() { [[ $1 == io.containerd.berth.v2 ]] && echo containerd-shim-berth-v2 || echo containerd-shim-runc-v2; }

# Warm up both paths once (page cache, first shim exec).
for r in "${RUNTIMES[@]}"; do "${CTR[@]}" run --rm --runtime "$r" "$IMAGE" warm /bin/true </dev/null; done

declare -A TIMES
for i in $(seq "$N"); do
  for r in "${RUNTIMES[@]}"; do
    t0=$(now_ms)
    "${CTR[@]}" run --rm --runtime "$r" "$IMAGE" "t$i" /bin/true </dev/null
    TIMES[$r]+="$(($(now_ms) - t0)) "
  done
done

declare -A MED IDLE TOTAL TOTALPSS
for r in "${RUNTIMES[@]}"; do
  MED[$r]=$(tr ' ' '\n' <<<"${TIMES[$r]}" | grep . | median)
  "${CTR[@]}" run -d --runtime "$r" "$IMAGE" idle sleep 100000 </dev/null
  sleep 1
  IDLE[$r]=$(sum_status VmRSS "$(shim_pids "$(shim_binary "$r")")")
  [[ $r == io.containerd.berth.v2 ]] && breakdown "$(shim_pids containerd-shim-berth-v2)" >&2
  "${CTR[@]}" task kill -s SIGKILL idle >/dev/null; sleep 0.2
  "${CTR[@]}" task delete idle >/dev/null 2>&1 || true; "${CTR[@]}" containers rm idle >/dev/null
  for i in $(seq "$MANY"); do "${CTR[@]}" run -d --runtime "$r" "$IMAGE" "m$i" sleep 100000 </dev/null; done
  sleep 1
  pids=$(shim_pids "$(shim_binary "$r")")
  TOTAL[$r]=$(sum_status VmRSS "$pids")
  TOTALPSS[$r]=$(sum_pss "$pids")
  echo "$r: $(wc -w <<<"$pids") shim processes for $MANY containers" >&2
  for i in $(seq "$MANY"); do
    "${CTR[@]}" task kill -s SIGKILL "m$i" >/dev/null
  done
  sleep 0.5
  for i in $(seq "$MANY"); do
    "${CTR[@]}" task delete "m$i" >/dev/null 2>&1 || true
    "${CTR[@]}" containers rm "m$i" >/dev/null
  done
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "-"}'; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
b=io.containerd.berth.v2; r=io.containerd.runc.v2
echo
echo "containerd $(containerd --version | awk '{print $3}'), runc $(runc --version | awk 'NR==1 {print $3}'), $(nproc) CPUs, kernel $(uname -r)"
printf '| %-50s | %12s | %12s | %6s |\n' "metric" "${NAMES[0]}" "${NAMES[1]}" "ratio"
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..52})" "$(printf -- '-%.0s' {1..14})" "$(printf -- '-%.0s' {1..14})" "--------"
printf '| %-50s | %12s | %12s | %6s |\n' "ctr run --rm /bin/true, median of $N (ms)" "${MED[$b]}" "${MED[$r]}" "$(ratio "${MED[$b]}" "${MED[$r]}")"
printf '| %-50s | %12s | %12s | %6s |\n' "idle shim RSS, 1 sleeping container (KiB)" "${IDLE[$b]}" "${IDLE[$r]}" "$(ratio "${IDLE[$b]}" "${IDLE[$r]}")"
printf '| %-50s | %12s | %12s | %6s |\n' "shim RSS total, $MANY sleeping containers (MiB)" "$(mib "${TOTAL[$b]}")" "$(mib "${TOTAL[$r]}")" "$(ratio "${TOTAL[$b]}" "${TOTAL[$r]}")"
printf '| %-50s | %12s | %12s | %6s |\n' "shim PSS total, $MANY sleeping containers (MiB)" "$(mib "${TOTALPSS[$b]}")" "$(mib "${TOTALPSS[$r]}")" "$(ratio "${TOTALPSS[$b]}" "${TOTALPSS[$r]}")"
