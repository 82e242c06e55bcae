# Shared by the shim's benchmarks (sourced): build what is measured from this
# checkout, and run a private containerd (Debian 12's 1.6 or unstable's 2.1)
# with its own root, state, sockets and namespace, removed again by
# bench_cleanup. Needs: REPO (the checkout).

# bench_build: release builds of the shim, berth and berth-image as shipped
# (static, see shim/README.md) into this checkout's target dir; sets BIN.
bench_build() {
    local target_dir
    target_dir=$(cd "$REPO" && cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
    (cd "$REPO" && RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
        cargo build -q --release --target x86_64-unknown-linux-gnu \
        -p containerd-shim-berth-v2 -p berth -p berth-image -p berth-cri-client) >&2
    BIN=$target_dir/x86_64-unknown-linux-gnu/release
}

# bench_containerd_major DIR: the major version of DIR/containerd ("" = host's).
bench_containerd_major() {
    "${1:+$1/}containerd" --version | awk '{split($3, v, "."); print v[1]}'
}

# bench_config DIR ADDR MAJOR CRI: containerd's config (version 2 for 1.x, 3 for 2.x).
bench_config() {
    local d=$1 a=$2 major=$3 cri=$4 disabled=()
    # Top-level keys (disabled_plugins) go before the first table. 2.x: NRI
    # would listen on the machine-wide /var/run/nri/nri.sock.
    [[ $major -ge 2 ]] && disabled+=('"io.containerd.nri.v1.nri"')
    [[ $cri == 0 ]] && disabled+=('"io.containerd.grpc.v1.cri"')
    cat <<EOF
version = $([[ $major -lt 2 ]] && echo 2 || echo 3)
root = "$d/root"
state = "$d/state"
disabled_plugins = [$(IFS=,; echo "${disabled[*]}")]
[grpc]
  address = "$a"
[ttrpc]
  address = "$a.ttrpc"
EOF
    if [[ $major -lt 2 ]]; then
        [[ $cri == 0 ]] && return
        cat <<EOF
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/library/busybox:pause"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.berth]
      runtime_type = "io.containerd.berth.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    conf_dir = "$d/cni"
EOF
        return
    fi
    cat <<EOF
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/opt"
EOF
    [[ $cri == 0 ]] && return
    cat <<EOF
[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "docker.io/library/busybox:pause"
[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.berth]
      runtime_type = "io.containerd.berth.v2"
  [plugins."io.containerd.cri.v1.runtime".cni]
    conf_dir = "$d/cni"
EOF
}

# bench_start_containerd CONTAINERD_DIR CRI: a private containerd ("" = the
# host's) with the busybox image (and with CRI its pause tag) imported into
# namespace NS. Sets DIR, ADDR, NS, CTR, CONTAINERD_PID, CGROUP_PARENT.
bench_start_containerd() {
    local cdir=$1 cri=$2 major
    major=$(bench_containerd_major "$cdir")
    DIR=$(mktemp -d /tmp/berth-shim-bench.XXXXXX)
    ADDR=$DIR/containerd.sock
    CGROUP_PARENT=berth-bench-$$-${DIR##*.}
    if [[ $cri == 1 ]]; then NS=k8s.io; else NS=bench-$$; fi
    CTR=("${cdir:+$cdir/}ctr" --address "$ADDR" -n "$NS")
    mkdir -p "$DIR/cni"
    bench_config "$DIR" "$ADDR" "$major" "$cri" >"$DIR/config.toml"
    PATH=$BIN${cdir:+:$cdir}:$PATH "${cdir:+$cdir/}containerd" --config "$DIR/config.toml" \
        >"$DIR/containerd.log" 2>&1 &
    CONTAINERD_PID=$!
    BENCH_CONTAINERD_DIR=$cdir
    local i
    for i in $(seq 200); do "${CTR[@]}" version >/dev/null 2>&1 && break; sleep 0.05; done
    "$BIN/berth-image" --store "$DIR/store" build-busybox "oci:$DIR/layout:latest" >/dev/null
    if [[ $cri == 1 ]]; then
        umoci config --image "$DIR/layout:latest" --tag pause \
            --config.entrypoint /bin/sleep --config.cmd 2147483647
    fi
    tar -C "$DIR/layout" -cf "$DIR/busybox.tar" .
    "${CTR[@]}" images import --base-name docker.io/library/busybox "$DIR/busybox.tar" >/dev/null
    rm -rf "$DIR/store"
}

# bench_shim_pids BINARY: the shim daemons of this containerd running BINARY.
bench_shim_pids() { pgrep -f -- "$1 .*-address $ADDR" || true; }
bench_sum_status() { local t=0 p; for p in $2; do t=$((t + $(awk -v k="$1:" '$1==k {print $2}' /proc/$p/status))); done; echo $t; }
bench_sum_pss() { local t=0 p; for p in $1; do t=$((t + $(awk '$1=="Pss:" {print $2}' /proc/$p/smaps_rollup))); done; echo $t; }

# bench_cleanup: everything bench_start_containerd made (safe to call twice).
bench_cleanup() {
    [[ -n ${DIR:-} && -d $DIR ]] || return 0
    set +e
    local id pid root c m
    if [[ $NS == k8s.io && -x $BIN/berth-pod-density ]]; then
        timeout 300 "$BIN/berth-pod-density" --socket "$ADDR" down >/dev/null 2>&1
    fi
    for id in $("${CTR[@]}" containers ls -q 2>/dev/null); do
        "${CTR[@]}" task kill -s SIGKILL "$id" >/dev/null 2>&1
        "${CTR[@]}" task delete --force "$id" >/dev/null 2>&1
        "${CTR[@]}" containers rm "$id" >/dev/null 2>&1
    done
    if [[ -n ${CONTAINERD_PID:-} ]]; then
        kill "$CONTAINERD_PID" 2>/dev/null
        wait "$CONTAINERD_PID" 2>/dev/null
    fi
    for pid in $(pgrep -f -- "-address $ADDR"); do kill -9 "$pid" 2>/dev/null; done
    if [[ $NS != k8s.io ]]; then
        for root in /run/containerd/berth/$NS /run/containerd/runc/$NS; do
            for id in $(ls "$root" 2>/dev/null); do "$BIN/berth" --root "$root" delete --force "$id" >/dev/null 2>&1; done
            rm -rf "$root"
        done
    fi
    grep -o " $DIR[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m"; done
    # ctr puts containers under /<namespace>; CRI pods under /<CGROUP_PARENT>
    # (k8s.io is not ours to remove).
    for c in /sys/fs/cgroup/*/"$CGROUP_PARENT" $([[ $NS != k8s.io ]] && echo /sys/fs/cgroup/*/"$NS"); do
        [[ -d $c ]] && find "$c" -depth -type d -exec rmdir {} + 2>/dev/null
    done
    rm -rf "$DIR"
    DIR=
    set -e
}
