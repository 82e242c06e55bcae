#!/bin/bash
# Pod density through containerd's CRI: N host-network pods with one container
# each (busybox, sleeping), created and started one after the other on the
# `berth` runtime handler (io.containerd.berth.v2) and then on `runc`
# (io.containerd.runc.v2), each on a fresh private containerd: seconds from
# the first RunPodSandbox until all containers run, and the total RSS/PSS of
# the pods' shims (one shim per pod for both). For Debian 12's containerd 1.6
# (runc 1.1) and unstable's 2.1 (runc 1.3; scripts/unstable-peers.sh).
#
# Usage (root): shim/bench/pods.sh [N]     (default 100)
# Builds what it measures from this checkout (release, static, as shipped).
set -euo pipefail

N=${1:-100}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
. "$REPO/shim/bench/lib.sh"
[[ $(id -u) == 0 ]] || { echo "run as root" >&2; exit 1; }
command -v umoci >/dev/null || { echo "umoci missing (scripts/install-deps.sh)" >&2; exit 1; }
bench_build
UNSTABLE=$(bash "$REPO/scripts/unstable-peers.sh")
trap bench_cleanup EXIT

mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "-"}'; }
row() { printf '| %-44s | %12s | %12s | %6s |\n' "$@"; }

# one CONTAINERD_DIR HANDLER SHIM_BINARY: sets SECS RSS PSS SHIMS.
one() {
  local cdir=$1 handler=$2 shim=$3 pids
  bench_start_containerd "$cdir" 1
  local d=$DIR
  SECS=$(PATH=$BIN${cdir:+:$cdir}:$PATH timeout 900 "$BIN/berth-pod-density" --socket "$ADDR" \
    up "$N" "$handler" docker.io/library/busybox:latest "/$CGROUP_PARENT" "$d/logs")
  sleep 2
  pids=$(bench_shim_pids "$shim")
  SHIMS=$(wc -w <<<"$pids")
  RSS=$(bench_sum_status VmRSS "$pids")
  PSS=$(bench_sum_pss "$pids")
  bench_cleanup
}

for cdir in "" "$UNSTABLE/bin"; do
  one "$cdir" berth containerd-shim-berth-v2
  b_secs=$SECS b_rss=$RSS b_pss=$PSS b_shims=$SHIMS
  one "$cdir" runc containerd-shim-runc-v2
  runc_bin="${cdir:+$cdir/}runc"
  echo
  echo "containerd $("${cdir:+$cdir/}containerd" --version | awk '{print $3}'), runc $("$runc_bin" --version | awk 'NR==1 {print $3}'), $N pods x 1 container, $(nproc) CPUs, kernel $(uname -r)"
  row "metric" "berth shim" "runc shim" "ratio"
  printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..46})" "$(printf -- '-%.0s' {1..14})" "$(printf -- '-%.0s' {1..14})" "--------"
  row "time to all $N running (s)" "$b_secs" "$SECS" "$(ratio "$b_secs" "$SECS")"
  row "shim processes" "$b_shims" "$SHIMS" ""
  row "shim RSS total (MiB)" "$(mib "$b_rss")" "$(mib "$RSS")" "$(ratio "$b_rss" "$RSS")"
  row "shim PSS total (MiB)" "$(mib "$b_pss")" "$(mib "$PSS")" "$(ratio "$b_pss" "$PSS")"
done
