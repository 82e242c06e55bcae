# Cases run inside the cgroup-v2 VM, in this order (see guest-lib.sh for the
# helpers and rules). To add one: write `test_NAME() { ... }` below; any command
# that fails fails the case (set -e), so expected failures go in `if`.
# Bundles are defined in bundles.sh and live under $BUNDLES/NAME.
# Container ids must be unique per case; register `on_exit "berth delete -f ID"`.
# shellcheck shell=sh disable=SC2086,SC2015
# (paths and ids here never contain spaces)

# Run a container in the foreground, output in /tmp/ID.out; sets $rc.
run_fg() { # BUNDLE ID
    rc=0
    berth run --bundle "$BUNDLES/$1" "$2" >"/tmp/$2.out" 2>&1 </dev/null || rc=$?
    sed 's/^/  | /' "/tmp/$2.out"
}

# Start a detached container (create + start), output in /tmp/ID.out.
run_detached() { # BUNDLE ID
    on_exit "berth delete -f $2"
    if ! berth run -d --bundle "$BUNDLES/$1" "$2" >"/tmp/$2.out" 2>&1 </dev/null; then
        sed 's/^/  | /' "/tmp/$2.out"
        fail "berth run -d $2 failed"
    fi
}

# `berth create` (the container waits for start), output in /tmp/ID.out.
create_container() { # BUNDLE ID
    on_exit "berth delete -f $2"
    if ! berth create --bundle "$BUNDLES/$1" "$2" >"/tmp/$2.out" 2>&1 </dev/null; then
        sed 's/^/  | /' "/tmp/$2.out"
        fail "berth create $2 failed"
    fi
}

pid_gone() { [ ! -e "/proc/$1" ] || grep -q '^State:[[:space:]]*Z' "/proc/$1/status"; }

# "max N" of pids.events is above zero: a fork was refused.
pids_max_hit() { [ "$(sed -n 's/^max //p' "$1/pids.events")" -gt 0 ]; }

test_kernel_is_pure_cgroup2() {
    check_grep "cgroup2 is mounted at /sys/fs/cgroup" /proc/mounts '^cgroup2 /sys/fs/cgroup cgroup2 '
    check_eq "cgroup v1 mounts" "$(grep -c ' cgroup ' /proc/mounts || true)" 0
    for c in cpu memory pids io; do
        check_grep "controller $c is enabled below the root" $CG/cgroup.subtree_control "(^| )$c( |\$)"
    done
}

test_overlay_module() {
    check_grep "overlay is a known filesystem" /proc/filesystems 'overlay$'
    d=/tmp/ovl
    mkdir -p $d/lower $d/upper $d/work $d/merged
    on_exit "umount $d/merged; rm -rf $d"
    echo lower >$d/lower/a
    mount -t overlay overlay -o lowerdir=$d/lower,upperdir=$d/upper,workdir=$d/work $d/merged
    echo changed >$d/merged/a
    check_file $d/lower/a lower
    check_file $d/upper/a changed
}

# The cgroups crate's own v2 checks against the real root.
test_cgroups_v2check() {
    # v2check expects blockIO.weight in io.weight: without BFQ (io_bfq_weight_v2 loads it again).
    if grep -q '^bfq ' /proc/modules; then rmmod bfq; fi
    v2check --root $CG
}

test_run_sees_own_cgroup() {
    run_fg cgroup-info run-cg
    check_eq "berth run exit status" "$rc" 0
    out=/tmp/run-cg.out
    check_grep "/proc/self/cgroup shows the cgroup namespace root" $out '^0::/$'
    check_eq "v1 lines in /proc/self/cgroup" "$(grep -cE '^[1-9][0-9]*:' $out || true)" 0
    for f in cgroup.procs memory.max cpu.max cpu.weight pids.max; do
        check_grep "the container's /sys/fs/cgroup has $f" $out "^$f\$"
    done
    check_grep "/sys/fs/cgroup is a read-only cgroup2 mount" $out ' /sys/fs/cgroup ro[, ].* - cgroup2 '
    check_absent $BERTH_ROOT/run-cg
    check_absent $CG/berth/run-cg
}

test_run_exit_status() {
    run_fg exit-3 exit3
    check_eq "berth run exit status" "$rc" 3
    check_absent $CG/berth/exit3
}

test_create_start_kill_delete_with_limits() {
    id=limits1
    create_container limits $id
    check_eq "status after create" "$(state_status $id)" created
    pid=$(state_pid $id)
    [ -n "$pid" ] && [ "$pid" -gt 0 ] || fail "berth state shows no pid: $(berth state $id)"
    dir=$CG/berth/$id
    check_exists $dir
    check_eq "cgroup of the init after create" "$(cgroup_of $pid)" /berth/$id
    check_file $dir/cgroup.procs "$pid"
    check_file $dir/memory.max 67108864
    check_file $dir/memory.low 33554432
    check_file $dir/cpu.max "50000 100000"
    check_file $dir/cpu.weight 59
    check_file $dir/pids.max 50
    check_eq "berth list -q shows the container" "$(berth list -q | grep -x $id)" $id
    berth start $id
    wait_until "status becomes running" 30 status_is $id running
    check_eq "the container runs sleep" "$(tr '\0' ' ' </proc/$pid/cmdline)" "sleep 100000 "
    check_eq "cgroup of the container process" "$(cgroup_of $pid)" /berth/$id
    check_file $dir/cgroup.procs "$pid"
    check_file $dir/memory.max 67108864
    check_file $dir/cpu.max "50000 100000"
    check_file $dir/cpu.weight 59
    check_file $dir/pids.max 50
    berth kill $id KILL
    wait_until "status becomes stopped" 30 status_is $id stopped
    berth delete $id
    check_absent $BERTH_ROOT/$id
    check_absent $dir
    if berth state $id >/dev/null 2>&1; then fail "berth state still answers after delete"; fi
}

test_delete_force_running() {
    id=detached1
    run_detached sleeper $id
    check_eq "status after run -d" "$(state_status $id)" running
    pid=$(state_pid $id)
    check_exists $CG/berth/$id
    check_file $CG/berth/$id/cgroup.procs "$pid"
    berth delete -f $id
    check_absent $BERTH_ROOT/$id
    check_absent $CG/berth/$id
    wait_until "the container's process is gone" 10 pid_gone "$pid"
}

test_pids_limit_enforced() {
    id=pids1
    run_detached pids-8 $id
    dir=$CG/berth/$id
    check_file $dir/pids.max 8
    wait_until "a fork is refused (pids.events max > 0)" 60 pids_max_hit $dir
    check_eq "status" "$(state_status $id)" running
    n=$(cat $dir/pids.current)
    if [ "$n" -ge 2 ] && [ "$n" -le 8 ]; then
        echo "  ok: pids.current $n is within 2..8"
    else
        fail "pids.current is $n, want 2..8 (pids.max 8, at least the init and one sleep)"
    fi
}

test_memory_limit_oom_kills() {
    run_fg oom-16m oom1
    check_eq "berth run exit status (SIGKILL from the OOM killer)" "$rc" 137
}

test_custom_cgroups_path() {
    id=custom1
    create_container custom-path $id
    dir=$CG/v2vm-custom/inner
    pid=$(state_pid $id)
    check_eq "cgroup of the init" "$(cgroup_of "$pid")" /v2vm-custom/inner
    check_file $dir/pids.max 33
    berth delete -f $id
    check_absent $dir
    check_absent $CG/v2vm-custom
}

# usage_usec of the cgroup's cpu.stat.
cpu_usage() { sed -n 's/^usage_usec //p' "$1/cpu.stat"; }
cpu_usage_above() { [ "$(cpu_usage "$1")" -gt "$2" ]; }

test_pause_resume_ps() {
    id=pause1
    run_detached ticker $id
    dir=$CG/berth/$id
    pid=$(state_pid $id)
    wait_until "two processes in the cgroup" 30 sh -c "[ \$(wc -l <$dir/cgroup.procs) -ge 2 ]"
    json=$(berth ps --format json $id)
    echo "  ps --format json: $json"
    echo "$json" | grep -qE "[[,]${pid}[],]" || fail "ps json does not list the init $pid: $json"
    berth ps $id >/tmp/ps.out
    sed 's/^/  | /' /tmp/ps.out
    # The guest's ps is busybox's (no -ef): its header is "PID USER COMMAND".
    check_grep "ps table has a header with PID" /tmp/ps.out '^ *PID '
    check_grep "ps table shows the init" /tmp/ps.out "^ *$pid "
    if grep -qE '^ *1 ' /tmp/ps.out; then fail "ps table shows the VM's pid 1"; fi
    if berth resume $id 2>/tmp/err.out; then fail "resume of a running container succeeded"; fi
    check_grep "resume error" /tmp/err.out 'not paused'
    berth pause $id
    check_file $dir/cgroup.freeze 1
    check_grep "cgroup.events reports frozen" $dir/cgroup.events '^frozen 1$'
    check_eq "status after pause" "$(state_status $id)" paused
    u0=$(cpu_usage $dir)
    sleep 0.5
    check_eq "cpu usage while frozen" "$(cpu_usage $dir)" "$u0"
    if berth pause $id 2>/tmp/err.out; then fail "pause of a paused container succeeded"; fi
    berth resume $id
    check_file $dir/cgroup.freeze 0
    check_grep "cgroup.events reports thawed" $dir/cgroup.events '^frozen 0$'
    check_eq "status after resume" "$(state_status $id)" running
    wait_until "cpu usage grows after resume" 30 cpu_usage_above $dir "$u0"
    berth kill $id KILL
    wait_until "status becomes stopped" 30 status_is $id stopped
    if berth pause $id 2>/tmp/err.out; then fail "pause of a stopped container succeeded"; fi
    check_grep "pause error" /tmp/err.out 'not running'
    berth delete $id
    check_absent $dir
}

test_delete_force_paused() {
    id=delpaused1
    run_detached ticker $id
    dir=$CG/berth/$id
    wait_until "two processes in the cgroup" 30 sh -c "[ \$(wc -l <$dir/cgroup.procs) -ge 2 ]"
    pids=$(cat $dir/cgroup.procs)
    berth pause $id
    check_eq "status" "$(state_status $id)" paused
    berth delete -f $id
    check_absent $BERTH_ROOT/$id
    check_absent $dir
    for p in $pids; do wait_until "pid $p is gone" 10 pid_gone $p; done
}

test_update_v2() {
    id=update1
    run_detached sleeper $id
    dir=$CG/berth/$id
    berth update --memory 100m --memory-reservation 50M --cpu-quota 20000 --cpu-period 50000 \
        --cpu-share 512 --pids-limit 30 --cpuset-cpus 0 $id
    check_file $dir/memory.max 104857600
    check_file $dir/memory.low 52428800
    check_file $dir/cpu.max "20000 50000"
    check_file $dir/cpu.weight 59
    check_file $dir/pids.max 30
    check_file $dir/cpuset.cpus 0
    berth update --cpu-quota 30000 $id
    check_file $dir/cpu.max "30000 50000"
    if [ -e $dir/memory.swap.max ]; then
        berth update --memory 100m --memory-swap 200m $id
        check_file $dir/memory.swap.max 104857600
        # Swap alone: the memory limit comes from the saved config.
        berth update --memory-swap 300m $id
        check_file $dir/memory.swap.max 209715200
        check_file $dir/memory.max 104857600
    else
        echo "  (no memory.swap.max: swap accounting is off, swap checks skipped)"
    fi
    berth update --memory -1 --pids-limit -1 $id
    check_file $dir/memory.max max
    check_file $dir/pids.max max
    printf '{"memory":{"limit":209715200},"cpu":{"quota":40000,"period":100000,"shares":0},"pids":{"limit":12}}' >/tmp/res.json
    berth update -r /tmp/res.json $id
    check_file $dir/memory.max 209715200
    check_file $dir/cpu.max "40000 100000"
    check_file $dir/pids.max 12
    check_file $dir/cpu.weight 59
    if berth update --cpuset-cpus 99 $id 2>/tmp/err.out; then fail "cpuset 99 was accepted"; fi
    check_grep "the error names the field" /tmp/err.out 'cpu\.cpus'
    if berth update --memory lots $id 2>/tmp/err.out; then fail "--memory lots was accepted"; fi
    check_grep "the error names the flag" /tmp/err.out 'value for --memory'
    check_eq "status" "$(state_status $id)" running
    berth kill $id KILL
    wait_until "status becomes stopped" 30 status_is $id stopped
    if berth update --pids-limit 5 $id 2>/tmp/err.out; then fail "update of a stopped container succeeded"; fi
    check_grep "update error" /tmp/err.out 'not running'
}

test_events_stats_v2() {
    id=stats1
    run_detached limits $id
    berth events --stats $id >/tmp/stats.json
    head -c 400 /tmp/stats.json | sed 's/^/  | /'; echo
    check_grep "a stats event" /tmp/stats.json '^\{"type":"stats","id":"stats1","data":\{'
    usage=$(grep -o '"usage":{"limit":[0-9]*,"usage":[0-9]*' /tmp/stats.json | head -n1 | sed 's/.*"usage"://')
    [ -n "$usage" ] && [ "$usage" -gt 0 ] || fail "memory usage is '$usage'"
    echo "  ok: memory usage $usage > 0"
    check_grep "memory limit" /tmp/stats.json '"usage":\{"limit":67108864,'
    current=$(grep -o '"pids":{"current":[0-9]*' /tmp/stats.json | sed 's/.*://')
    [ -n "$current" ] && [ "$current" -ge 1 ] || fail "pids.current is '$current'"
    echo "  ok: pids.current $current >= 1"
    check_grep "pids limit" /tmp/stats.json '"pids":\{"current":[0-9]+,"limit":50\}'
}

test_events_oom_v2() {
    id=oomev1
    create_container oom-then-exit $id
    berth events --interval 200ms $id >/tmp/ev.out 2>&1 &
    evpid=$!
    on_exit "kill $evpid 2>/dev/null || true"
    wait_until "events prints stats" 30 grep -q '"type":"stats"' /tmp/ev.out
    berth start $id
    wait_until "events ends when the container stops" 60 pid_gone $evpid
    grep -v '"type":"stats"' /tmp/ev.out | sed 's/^/  | /'
    check_grep "an oom event" /tmp/ev.out '^\{"type":"oom","id":"oomev1"\}$'
    check_eq "status" "$(state_status $id)" stopped
}

# ---- linux.resources on real cgroup v2 (conversions: cgroups/README.md) ------

# Write JSON to a file and `berth update -r` it.
update_json() { # ID JSON
    printf '%s' "$2" >/tmp/upd.json
    berth update -r /tmp/upd.json "$1"
}

# `berth create` of BUNDLE must fail, name NEEDLE, and leave no state or cgroup.
create_refused() { # BUNDLE ID NEEDLE
    on_exit "berth delete -f $2"
    if berth create --bundle "$BUNDLES/$1" "$2" >/tmp/$2.err 2>&1 </dev/null; then
        fail "berth create $1 succeeded"
    fi
    sed 's/^/  | /' /tmp/$2.err
    check_grep "the error names $3" /tmp/$2.err "$3"
    check_absent $BERTH_ROOT/$2
    check_absent $CG/berth/$2
}

test_resources_all_v2() {
    id=resall1
    create_container v2-all $id
    dir=$CG/berth/$id
    check_file $dir/memory.max 67108864
    check_file $dir/memory.low 33554432
    # OCI swap counts memory+swap; memory.swap.max is swap alone: 96 MiB - 64 MiB.
    check_file $dir/memory.swap.max 33554432
    # shares 2048 -> weight 174 (the table in cgroups/README.md).
    check_file $dir/cpu.weight 174
    check_file $dir/cpu.max "30000 100000"
    check_file $dir/cpu.max.burst 5000
    check_file $dir/cpu.idle 0
    check_file $dir/cpuset.cpus 0
    check_file $dir/cpuset.mems 0
    check_file $dir/pids.max 40
    if [ -e $dir/hugetlb.2MB.max ]; then
        check_file $dir/hugetlb.2MB.max 4194304
    else
        fail "hugetlb.2MB.max missing (hugetlb enabled: $(cat $CG/cgroup.subtree_control))"
    fi
    # unified keys are written as they are.
    check_file $dir/memory.high 50331648
    check_file $dir/cgroup.max.descendants 5

    update_json $id '{"memory":{"limit":134217728,"swap":268435456,"reservation":67108864},"cpu":{"shares":512,"quota":-1,"burst":0,"cpus":"0","mems":"0"},"pids":{"limit":-1},"hugepageLimits":[{"pageSize":"2MB","limit":8388608}],"unified":{"memory.high":"max"}}'
    check_file $dir/memory.max 134217728
    check_file $dir/memory.swap.max 134217728
    check_file $dir/memory.low 67108864
    check_file $dir/cpu.weight 59
    check_file $dir/cpu.max "max 100000"
    check_file $dir/cpu.max.burst 0
    check_file $dir/pids.max max
    check_file $dir/hugetlb.2MB.max 8388608
    check_file $dir/memory.high max
    # swap -1: unlimited swap.
    update_json $id '{"memory":{"limit":134217728,"swap":-1}}'
    check_file $dir/memory.swap.max max
    # cpu.idle: the kernel refuses a weight while idle and resets it when idle
    # goes off, so idle is written first.
    update_json $id '{"cpu":{"idle":1}}'
    check_file $dir/cpu.idle 1
    if update_json $id '{"cpu":{"idle":1,"shares":4096}}' 2>/tmp/err.out; then fail "shares with idle=1 accepted"; fi
    check_grep "the error names shares and idle" /tmp/err.out 'shares.*idle'
    update_json $id '{"cpu":{"idle":0,"shares":4096}}'
    check_file $dir/cpu.idle 0
    check_file $dir/cpu.weight 303
    # Refused by the kernel: named, and the old value stays.
    if update_json $id '{"cpu":{"cpus":"64"}}' 2>/tmp/err.out; then fail "cpus 64 accepted"; fi
    check_grep "the error names cpu.cpus" /tmp/err.out 'cpu\.cpus'
    check_file $dir/cpuset.cpus 0
    berth delete -f $id
    check_absent $dir
}

test_resources_refused_v2() {
    create_refused v2-bad-kerneltcp badktcp 'kernelTCP'
    create_refused v2-bad-swappiness badswap 'swappiness'
    create_refused v2-bad-realtime badrt 'realtime'
    create_refused v2-bad-network badnet 'network'
    create_refused v2-bad-leafweight badleaf 'leafWeight'
    create_refused v2-bad-cpus badcpus 'cpu\.cpus'
    create_refused v2-bad-unified badunified 'unified'
}

# The guest has no RDMA device: with the rdma controller the kernel refuses the
# device in rdma.max, without it berth says the controller is missing; either
# way the error names rdma and nothing is left.
test_rdma_v2() {
    echo "  (rdma controller offered: $(grep -qw rdma $CG/cgroup.controllers && echo yes || echo no))"
    create_refused v2-rdma rdma1 'rdma'
}

# A loop device attached to a file on tmpfs: /dev/loop0 (7:0).
setup_loop0() {
    [ -b /dev/loop0 ] || skip "no /dev/loop0 (loop module not loaded)"
    truncate -s 4M /tmp/loop0.img
    losetup /dev/loop0 /tmp/loop0.img
    on_exit "losetup -d /dev/loop0; rm -f /tmp/loop0.img"
}

test_io_weight_and_max_v2() {
    # Without BFQ, blockIO.weight goes to io.weight (converted).
    if grep -q '^bfq ' /proc/modules; then rmmod bfq || skip "bfq is loaded and in use"; fi
    [ -e $CG/berth ] || mkdir $CG/berth
    setup_loop0
    id=io1
    create_container v2-io $id
    dir=$CG/berth/$id
    if [ -e $dir/io.weight ]; then
        # 1 + (500 - 10) * 9999 / 990 = 4950
        check_grep "io.weight default" $dir/io.weight '^default 4950$'
    else
        fail "no io.weight (controllers: $(cat $dir/cgroup.controllers))"
    fi
    check_grep "io.max of 7:0" $dir/io.max '^7:0 rbps=1048576 wbps=2097152 riops=100 wiops=200$'
    update_json $id '{"blockIO":{"weight":1000,"throttleReadBpsDevice":[{"major":7,"minor":0,"rate":0}],"throttleWriteIOPSDevice":[{"major":7,"minor":0,"rate":50}]}}'
    check_grep "io.weight default after update" $dir/io.weight '^default 10000$'
    check_grep "io.max after update" $dir/io.max '^7:0 rbps=max wbps=2097152 riops=100 wiops=50$|^7:0 wbps=2097152 riops=100 wiops=50$'
    berth delete -f $id
    check_absent $dir
}

test_io_bfq_weight_v2() {
    ko=$(grep '/bfq.ko$' /v2vm/modules.list || true)
    [ -n "$ko" ] || skip "bfq.ko is not in the image"
    grep -q "^bfq " /proc/modules || insmod "/lib/modules/$(uname -r)/$ko"
    setup_loop0
    echo bfq >/sys/block/loop0/queue/scheduler
    on_exit "echo none >/sys/block/loop0/queue/scheduler"
    id=iobfq1
    create_container v2-io-bfq $id
    dir=$CG/berth/$id
    # BFQ takes v1's 1..1000 weights as they are.
    check_grep "io.bfq.weight default" $dir/io.bfq.weight '^default 300$'
    check_grep "io.bfq.weight of 7:0" $dir/io.bfq.weight '^7:0 600$'
    update_json $id '{"blockIO":{"weight":800,"weightDevice":[{"major":7,"minor":0,"weight":100}]}}'
    check_grep "io.bfq.weight default after update" $dir/io.bfq.weight '^default 800$'
    check_grep "io.bfq.weight of 7:0 after update" $dir/io.bfq.weight '^7:0 100$'
    berth delete -f $id
    check_absent $dir
}

# Opens DEVICE for reading inside the container with berth exec: 0 when it opens.
open_in() { # ID DEVICE
    berth exec "$1" sh -c "exec 3<$2" >/tmp/open.out 2>&1
}

check_devices() { # ID WHEN
    if open_in "$1" /dev/allowed; then
        echo "  ok: $2: the allowed device (b 7:1) opens"
    else
        fail "$2: the allowed device does not open: $(cat /tmp/open.out)"
    fi
    if open_in "$1" /dev/denied; then
        fail "$2: the denied device (b 7:0) opened"
    fi
    check_grep "$2: the denied device gives EPERM" /tmp/open.out 'not permitted'
}

test_devices_ebpf_v2() {
    [ -b /dev/loop0 ] && [ -b /dev/loop1 ] || skip "no /dev/loop0 and /dev/loop1"
    id=devs1
    run_detached v2-devices $id
    check_devices $id "after create"
    berth update --pids-limit 20 --memory 100m $id
    check_file $CG/berth/$id/pids.max 20
    check_devices $id "after update"
    # Device rules are fixed at create: an update that names them warns and keeps them.
    update_json $id '{"devices":[{"allow":true,"type":"b","major":7,"minor":0,"access":"rwm"}]}' 2>/tmp/err.out
    check_grep "update warns about devices" /tmp/err.out 'devices'
    check_devices $id "after an update naming devices"
    # The host side is not filtered.
    exec 3</dev/loop0
    exec 3<&-
    echo "  ok: the host opens /dev/loop0"
}

# linux.devices makes nodes; only linux.resources.devices grants access (the
# eBPF program must not allow a listed device the policy denies).
test_listed_device_stays_denied_v2() {
    [ -b /dev/loop0 ] || skip "no /dev/loop0"
    id=listed1
    run_detached v2-listed-device $id
    berth exec $id test -b /dev/listed || fail "/dev/listed was not created"
    if open_in $id /dev/listed; then
        fail "the listed device (b 7:0) opened under a deny-all device policy"
    fi
    check_grep "the listed device gives EPERM" /tmp/open.out 'not permitted'
    berth delete -f $id
}
