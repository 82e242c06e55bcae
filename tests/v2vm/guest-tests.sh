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
