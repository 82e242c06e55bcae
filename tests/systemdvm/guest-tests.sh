# Cases of the systemd guest, run in file order by guest-main.sh (helpers:
# guest-lib.sh and tests/v2vm/guest-lib.sh). Every berth call here has
# --systemd-cgroup. Register cleanup with on_exit.
# shellcheck shell=sh disable=SC2086,SC2015

# sd_bundle SRC CGROUPS_PATH: a copy of bundle SRC with that cgroupsPath (empty:
# none); prints its directory.
sd_bundle() {
    d=/tmp/sdtest/b.$$.$(date +%s%N)
    cp -a "$BUNDLES/$1" "$d"
    if [ -n "$2" ]; then
        jq --arg p "$2" '.linux.cgroupsPath = $p' "$BUNDLES/$1/config.json" >"$d/config.json"
    else
        jq 'del(.linux.cgroupsPath)' "$BUNDLES/$1/config.json" >"$d/config.json"
    fi
    echo "$d"
}

# sd_create DIR ID [start]: create (and start) a container, registering cleanup.
sd_create() {
    on_exit "berth delete -f $2"
    berth create --bundle "$1" "$2" </dev/null >/tmp/sdtest/$2.out 2>&1 || {
        sed 's/^/  | /' /tmp/sdtest/$2.out
        fail "berth create $2 failed"
    }
    [ "${3:-}" != start ] || berth start "$2"
}

# The stop of a test's slices (systemd keeps a slice after its last unit).
stop_slices() { for s in "$@"; do systemctl stop "$s" >/dev/null 2>&1 || true; done; }

unit_gone() { [ -z "$(units "$1")" ]; }

test_systemd_is_pid1_on_pure_cgroup2() {
    check_eq "PID 1" "$(cat /proc/1/comm)" systemd
    check_grep "cgroup2 at /sys/fs/cgroup" /proc/mounts '^cgroup2 /sys/fs/cgroup cgroup2 '
    check_eq "cgroup v1 mounts" "$(grep -c ' cgroup ' /proc/mounts || true)" 0
    check_eq "system bus" "$(systemctl is-active dbus.service)" active
    check_eq "berth features systemd" "$(berth features | jq '.linux.cgroup.systemd')" true
}

test_scope_has_every_resource() {
    b=$(sd_bundle limits berthtest-a-b.slice:berth:res)
    on_exit "stop_slices berthtest-a-b.slice berthtest-a.slice berthtest.slice"
    sd_create "$b" res start
    u=berth-res.scope
    cg=/berthtest.slice/berthtest-a.slice/berthtest-a-b.slice/$u
    check_eq "init's cgroup" "$(cgroup_of "$(state_pid res)")" "$cg"
    check_prop $u ActiveState active
    check_prop $u Slice berthtest-a-b.slice
    check_prop $u ControlGroup "$cg"
    check_prop $u Delegate yes
    check_prop $u MemoryMax 67108864
    check_prop $u MemoryLow 33554432
    check_prop $u MemorySwapMax 67108864
    check_prop $u CPUWeight 59
    check_prop $u CPUQuotaPerSecUSec 500ms
    check_prop $u CPUQuotaPeriodUSec 100ms
    check_prop $u AllowedCPUs 0
    check_prop $u AllowedMemoryNodes 0
    check_prop $u TasksMax 50
    check_prop $u IOWeight 4950
    check_prop $u DevicePolicy strict
    prop $u DeviceAllow >/tmp/sdtest/devallow
    check_grep "DeviceAllow has the rule" /tmp/sdtest/devallow '/dev/char/1:11 r'
    check_grep "DeviceAllow has /dev/null" /tmp/sdtest/devallow '/dev/char/1:3 rwm'
    d=$CG$cg
    check_file $d/memory.max 67108864
    check_file $d/memory.low 33554432
    check_file $d/memory.swap.max 67108864
    check_file $d/cpu.weight 59
    check_file $d/cpu.max "50000 100000"
    check_file $d/cpuset.cpus 0
    check_file $d/cpuset.mems 0
    check_file $d/pids.max 50
    check_file $d/io.weight "default 4950"
    # The device rules hold inside the container (berth's filter and systemd's).
    berth exec res sh -c 'dd if=/dev/kmsg2 of=/dev/null bs=8192 count=1'
    echo "  ok: /dev/kmsg (1:11 r) can be read"
    if berth exec res sh -c 'echo berth-test >/dev/kmsg2' 2>/tmp/sdtest/kmsg.err; then
        fail "/dev/kmsg could be written although only reading it is allowed"
    fi
    check_grep "writing /dev/kmsg is refused" /tmp/sdtest/kmsg.err 'Operation not permitted'
    berth exec res sh -c 'echo x >/dev/null'
    echo "  ok: /dev/null (a default device) works"
    check_eq "exec'd process's cgroup" "$(berth exec res cat /proc/self/cgroup)" "0::/"
}

test_update_goes_to_systemd_and_the_files() {
    b=$(sd_bundle limits berthtest.slice:berth:upd)
    on_exit "stop_slices berthtest.slice"
    sd_create "$b" upd start
    u=berth-upd.scope
    d=$CG/berthtest.slice/$u
    berth update --memory 134217728 --memory-reservation 16777216 --cpu-quota 25000 \
        --cpu-period 50000 --cpu-share 1024 --pids-limit 20 upd
    check_prop $u MemoryMax 134217728
    check_prop $u MemoryLow 16777216
    check_prop $u CPUQuotaPerSecUSec 500ms
    check_prop $u CPUQuotaPeriodUSec 50ms
    check_prop $u CPUWeight 100
    check_prop $u TasksMax 20
    check_file $d/memory.max 134217728
    check_file $d/memory.low 16777216
    check_file $d/cpu.max "25000 50000"
    check_file $d/cpu.weight 100
    check_file $d/pids.max 20
    # Device rules are left alone by update.
    check_prop $u DevicePolicy strict
}

test_pause_resume() {
    b=$(sd_bundle sleeper berthtest.slice:berth:pause)
    on_exit "stop_slices berthtest.slice"
    sd_create "$b" pause start
    d=$CG/berthtest.slice/berth-pause.scope
    berth pause pause
    check_eq status "$(state_status pause)" paused
    check_file $d/cgroup.freeze 1
    check_grep "frozen" $d/cgroup.events '^frozen 1$'
    check_prop berth-pause.scope ActiveState active
    berth resume pause
    check_eq status "$(state_status pause)" running
    check_grep "thawed" $d/cgroup.events '^frozen 0$'
}

test_kill_and_delete_leave_no_unit() {
    b=$(sd_bundle sleeper berthtest.slice:berth:kill)
    on_exit "stop_slices berthtest.slice"
    sd_create "$b" kill start
    check_prop berth-kill.scope ActiveState active
    berth kill kill KILL
    wait_until "stopped" 10 status_is kill stopped
    # The scope ends with its last process.
    wait_until "unit berth-kill.scope gone" 10 unit_gone berth-kill.scope
    berth delete kill
    check_absent $CG/berthtest.slice/berth-kill.scope
    check_absent "$BERTH_ROOT/kill"
    # delete -f of a running (and of a paused) container stops its unit.
    sd_create "$b" kill2 start
    berth delete -f kill2
    check_eq "units after delete -f" "$(units 'berth-kill*')" ""
    b3=$(sd_bundle sleeper berthtest.slice:berth:kill3)
    sd_create "$b3" kill3 start
    berth pause kill3
    berth delete -f kill3
    check_eq "units after delete -f of a paused container" "$(units 'berth-kill*')" ""
    check_absent $CG/berthtest.slice/berth-kill3.scope
    # A created container that is deleted.
    sd_create "$b" kill4
    check_prop berth-kill.scope ActiveState active
    berth delete kill4
    check_eq "units after delete of a created container" "$(units 'berth-kill*')" ""
}

test_default_scope_exec_and_stats() {
    b=$(sd_bundle limits "")
    sd_create "$b" dflt start
    u=berth-dflt.scope
    check_prop $u Slice system.slice
    check_eq "init's cgroup" "$(cgroup_of "$(state_pid dflt)")" /system.slice/$u
    berth exec -d dflt sleep 1000
    check_eq "processes in the scope" "$(wc -l <$CG/system.slice/$u/cgroup.procs)" 2
    berth events --stats dflt >/tmp/sdtest/stats.json
    check_eq "events --stats memory limit" "$(jq '.data.memory.usage.limit' /tmp/sdtest/stats.json)" 67108864
    check_eq "events --stats pids" "$(jq '.data.pids.current' /tmp/sdtest/stats.json)" 2
    berth delete -f dflt
    check_eq "units" "$(units $u)" ""
}

test_cri_pod_and_two_containers_with_systemd_cgroup() {
    c=/tmp/sdtest/containerd
    mkdir -p $c /etc/containerd
    cat >/etc/containerd/berth.toml <<EOT
BinaryName = "$P/bin/berth"
SystemdCgroup = true
EOT
    cat >/etc/containerd/config.toml <<EOT
version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/library/busybox:pause"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "berth"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.berth]
      runtime_type = "io.containerd.berth.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.berth.options]
        ConfigPath = "/etc/containerd/berth.toml"
EOT
    # The shim is found in containerd's PATH.
    mkdir -p /etc/systemd/system/containerd.service.d
    printf '[Service]\nEnvironment=PATH=%s/bin:/usr/sbin:/usr/bin:/sbin:/bin\n' $P \
        >/etc/systemd/system/containerd.service.d/berth.conf
    systemctl daemon-reload
    on_exit "systemctl stop containerd; stop_slices kubepods-besteffort-podsd1.slice kubepods-besteffort.slice kubepods.slice"
    systemctl start containerd
    wait_until "containerd answers" 30 ctr version
    ctr -n k8s.io images import --base-name docker.io/library/busybox $P/busybox.tar >/dev/null
    parent=kubepods-besteffort-podsd1.slice
    pod=$(berth-crictl runp sdpod $parent)
    on_exit "berth-crictl stopp $pod; berth-crictl rmp $pod"
    c1=$(berth-crictl create $pod sdpod $parent one docker.io/library/busybox:latest sleep 100000)
    c2=$(berth-crictl create $pod sdpod $parent two docker.io/library/busybox:latest sleep 100000)
    berth-crictl start $c1 >/dev/null
    berth-crictl start $c2 >/dev/null
    slice=/kubepods.slice/kubepods-besteffort.slice/$parent
    for id in $pod $c1 $c2; do
        u=cri-containerd-$id.scope
        check_prop $u ActiveState active
        check_prop $u Slice $parent
        check_prop $u Delegate yes
        pid=$(command berth --root /run/containerd/berth/k8s.io state $id | jq .pid)
        check_eq "cgroup of $id's init" "$(cgroup_of "$pid")" "$slice/$u"
    done
    check_eq "cri-containerd units" "$(units 'cri-containerd-*' | wc -l)" 3
    # The shim's metrics read the scope.
    berth-crictl stats $c1 >/tmp/sdtest/cstats.json
    check_eq "CRI stats memory > 0" "$(jq '.memory.working_set_bytes.value > 0' /tmp/sdtest/cstats.json)" true
    check_eq "exec in the pod's container" "$(berth-crictl exec $c2 cat /proc/self/cgroup)" "0::/"
    berth-crictl stopp $pod >/dev/null
    berth-crictl rmp $pod >/dev/null
    wait_until "no cri-containerd unit left" 20 unit_gone 'cri-containerd-*'
    check_absent $CG$slice/cri-containerd-$c1.scope
}
