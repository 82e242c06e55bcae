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
