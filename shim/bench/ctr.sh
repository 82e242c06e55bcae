#!/bin/bash
# containerd with the berth shim (io.containerd.berth.v2) vs containerd's runc
# shim (io.containerd.runc.v2), on a private containerd, for each containerd:
# Debian 12's 1.6 (with Debian 12's runc 1.1) and 2.1 from Debian unstable
# (with unstable's runc 1.3; scripts/unstable-peers.sh):
#   1. `ctr run --rm IMAGE ID /bin/true`: median wall time of N runs each, interleaved
#   2. RSS of one idle shim (one sleeping container)
#   3. total RSS (and PSS) of the shims of CONTAINERS sleeping containers
#
# Usage (root): shim/bench/ctr.sh [N] [CONTAINERS]     (defaults 20 and 50)
# Builds the shim, berth and berth-image from this checkout (release, static, as
# shipped; see shim/README.md). The smaps breakdown of the idle berth shim goes
# to stderr.
set -euo pipefail

N=${1:-20}
MANY=${2:-50}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
. "$REPO/shim/bench/lib.sh"
[[ $(id -u) == 0 ]] || { echo "run as root" >&2; exit 1; }
bench_build
UNSTABLE=$(bash "$REPO/scripts/unstable-peers.sh")
trap bench_cleanup EXIT
IMAGE=docker.io/library/busybox:latest
RUNTIMES=(io.containerd.berth.v2 io.containerd.runc.v2)

now_ms() { echo $(($(date +%s%N) / 1000000)); }
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2}'; }
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
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "-"}'; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
row() { printf '| %-50s | %12s | %12s | %6s |\n' "$@"; }

# measure CONTAINERD_DIR: one table for that containerd ("" = the host's).
measure() {
  local cdir=$1 r i t0 pids
  bench_start_containerd "$cdir" 0
  local runc_bin="${cdir:+$cdir/}runc"
  [[ -n $cdir ]] || runc_bin=runc
  export PATH=$BIN${cdir:+:$cdir}:$PATH
  # Warm up both paths once (page cache, first shim exec).
  for r in "${RUNTIMES[@]}"; do "${CTR[@]}" run --rm --runtime "$r" "$IMAGE" warm /bin/true </dev/null; done
  declare -A TIMES=() MED=() IDLE=() TOTAL=() TOTALPSS=()
  for i in $(seq "$N"); do
    for r in "${RUNTIMES[@]}"; do
      t0=$(now_ms)
      "${CTR[@]}" run --rm --runtime "$r" "$IMAGE" "t$i" /bin/true </dev/null
      TIMES[$r]+="$(($(now_ms) - t0)) "
    done
  done
  for r in "${RUNTIMES[@]}"; do
    MED[$r]=$(tr ' ' '\n' <<<"${TIMES[$r]}" | grep . | median)
    "${CTR[@]}" run -d --runtime "$r" "$IMAGE" idle sleep 100000 </dev/null
    sleep 1
    IDLE[$r]=$(bench_sum_status VmRSS "$(bench_shim_pids "$(shim_binary "$r")")")
    [[ $r == io.containerd.berth.v2 ]] && breakdown "$(bench_shim_pids containerd-shim-berth-v2)" >&2
    "${CTR[@]}" task kill -s SIGKILL idle >/dev/null; sleep 0.2
    "${CTR[@]}" task delete idle >/dev/null 2>&1 || true; "${CTR[@]}" containers rm idle >/dev/null
    for i in $(seq "$MANY"); do "${CTR[@]}" run -d --runtime "$r" "$IMAGE" "m$i" sleep 100000 </dev/null; done
    sleep 1
    pids=$(bench_shim_pids "$(shim_binary "$r")")
    TOTAL[$r]=$(bench_sum_status VmRSS "$pids")
    TOTALPSS[$r]=$(bench_sum_pss "$pids")
    echo "$r: $(wc -w <<<"$pids") shim processes for $MANY containers" >&2
    for i in $(seq "$MANY"); do "${CTR[@]}" task kill -s SIGKILL "m$i" >/dev/null; done
    sleep 0.5
    for i in $(seq "$MANY"); do
      "${CTR[@]}" task delete "m$i" >/dev/null 2>&1 || true
      "${CTR[@]}" containers rm "m$i" >/dev/null
    done
  done
  local b=io.containerd.berth.v2 u=io.containerd.runc.v2
  echo
  echo "containerd $("${cdir:+$cdir/}containerd" --version | awk '{print $3}'), runc $("$runc_bin" --version | awk 'NR==1 {print $3}'), $(nproc) CPUs, kernel $(uname -r)"
  row "metric" "berth shim" "runc shim" "ratio"
  printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..52})" "$(printf -- '-%.0s' {1..14})" "$(printf -- '-%.0s' {1..14})" "--------"
  row "ctr run --rm /bin/true, median of $N (ms)" "${MED[$b]}" "${MED[$u]}" "$(ratio "${MED[$b]}" "${MED[$u]}")"
  row "idle shim RSS, 1 sleeping container (KiB)" "${IDLE[$b]}" "${IDLE[$u]}" "$(ratio "${IDLE[$b]}" "${IDLE[$u]}")"
  row "shim RSS total, $MANY sleeping containers (MiB)" "$(mib "${TOTAL[$b]}")" "$(mib "${TOTAL[$u]}")" "$(ratio "${TOTAL[$b]}" "${TOTAL[$u]}")"
  row "shim PSS total, $MANY sleeping containers (MiB)" "$(mib "${TOTALPSS[$b]}")" "$(mib "${TOTALPSS[$u]}")" "$(ratio "${TOTALPSS[$b]}" "${TOTALPSS[$u]}")"
  bench_cleanup
}

ORIG_PATH=$PATH
measure ""
PATH=$ORIG_PATH
measure "$UNSTABLE/bin"
