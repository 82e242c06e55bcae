#!/bin/sh
# Runner and helpers for the cases in guest-tests.sh (runs inside the VM).
#
#   sh guest-lib.sh            run every test_* function of guest-tests.sh, in file order
#   sh guest-lib.sh case NAME  run one case (used by the runner, in a fresh shell)
#
# Kernel command line knobs (set by run.sh): v2test.filter=ERE (only cases whose
# name matches), v2test.timeout=SECONDS (per case, default 180), v2test.verbose=1
# (print the output of passing cases too).
#
# A case is a shell function `test_NAME() { ... }` run under `set -e`: any
# failing command fails it. `skip REASON` marks it skipped. Cleanup registered
# with `on_exit` runs even when it fails. After every case the runner also
# checks that no container state or cgroup was left behind (a leak fails a
# case that otherwise passed) and removes what it finds; an empty
# /sys/fs/cgroup/berth, the shared parent of default cgroup paths, may stay.

V2_DIR=/v2vm
# shellcheck disable=SC2034 # used by guest-tests.sh
BUNDLES=$V2_DIR/bundles
BERTH_ROOT=/run/berth
CG=/sys/fs/cgroup

# ---- helpers for cases ------------------------------------------------------

berth() { command berth --root "$BERTH_ROOT" "$@"; }

V2_CLEANUP=""
on_exit() { V2_CLEANUP="$1; $V2_CLEANUP"; }
v2_run_cleanup() { [ -n "$V2_CLEANUP" ] && eval "$V2_CLEANUP" >/dev/null 2>&1; true; }

skip() { echo "SKIP: $*"; exit 77; }

fail() { echo "FAIL: $*"; return 1; }

# check_eq DESCRIPTION GOT WANT
check_eq() {
    if [ "$2" = "$3" ]; then
        echo "  ok: $1 = '$3'"
    else
        fail "$1: got '$2', want '$3'"
    fi
}

# check_file FILE WANT: the file's content (trailing newline stripped) equals WANT.
check_file() {
    if [ ! -e "$1" ]; then
        fail "$1 does not exist (want '$2')"
        return 1
    fi
    check_eq "$1" "$(cat "$1")" "$2"
}

# check_grep DESCRIPTION FILE ERE: some line of FILE matches ERE.
check_grep() {
    if grep -qE "$3" "$2"; then
        echo "  ok: $1"
    else
        fail "$1: no line of $2 matches /$3/; it holds: $(head -c 600 "$2" | tr '\n' '|')"
    fi
}

check_exists() { [ -e "$1" ] && echo "  ok: $1 exists" || fail "$1 does not exist"; }
check_absent() { [ ! -e "$1" ] && echo "  ok: $1 is gone" || fail "$1 still exists"; }

# wait_until DESCRIPTION SECONDS COMMAND...: poll every 50 ms.
wait_until() {
    _wu_desc=$1 _wu_limit=$2
    shift 2
    _wu_start=$(v2_now)
    while ! "$@" >/dev/null 2>&1; do
        if [ "$(v2_elapsed "$_wu_start")" -ge "$_wu_limit" ]; then
            fail "timed out after ${_wu_limit}s waiting for: $_wu_desc"
            return 1
        fi
        sleep 0.05
    done
    echo "  ok: $_wu_desc"
}

# The "status" field of `berth state ID` (empty if the command fails).
state_status() {
    berth state "$1" 2>/dev/null | tr -d ' \n' | sed -n 's/.*"status":"\([a-z]*\)".*/\1/p'
}

# The "pid" field of `berth state ID`.
state_pid() {
    berth state "$1" 2>/dev/null | tr -d ' \n' | sed -n 's/.*"pid":\([0-9]*\).*/\1/p'
}

status_is() { [ "$(state_status "$1")" = "$2" ]; }

# The cgroup v2 path (below /sys/fs/cgroup) of a process.
cgroup_of() { sed -n 's/^0:://p' "/proc/$1/cgroup"; }

v2_now() { cut -d' ' -f1 /proc/uptime; }
v2_elapsed() { awk -v a="$1" -v b="$(v2_now)" 'BEGIN { printf "%d", b - a }'; }

# ---- runner -----------------------------------------------------------------

v2_cmdline() { tr ' ' '\n' </proc/cmdline | sed -n "s/^v2test\.$1=//p" | tail -n1; }

# Removes every container and berth cgroup; prints what it found.
v2_sweep() {
    for d in "$BERTH_ROOT"/*; do
        [ -e "$d" ] || continue
        # berth's own entries (@seccomp-cache, @exe-layer) are no containers.
        case ${d##*/} in @*) continue ;; esac
        echo "state:${d##*/}"
        command berth --root "$BERTH_ROOT" delete -f "${d##*/}" >/dev/null 2>&1 || rm -rf "$d"
    done
    for d in $(cd $CG && find . -mindepth 1 -type d | sort -r); do
        d=${d#./}
        case " $V2_BASE_CGROUPS " in *" $d "*) continue ;; esac
        # The shared parent of the default cgroupsPath may stay (its children may not).
        [ "$d" = berth ] && continue
        echo "cgroup:$d"
        [ -e "$CG/$d/cgroup.kill" ] && echo 1 >"$CG/$d/cgroup.kill" 2>/dev/null
        i=0
        while ! rmdir "$CG/$d" 2>/dev/null && [ $i -lt 100 ]; do
            sleep 0.05
            i=$((i + 1))
        done
    done
}

v2_run_case() {
    name=$1 timeout=$2 verbose=$3
    out=/tmp/v2case.$name.log
    start=$(v2_now)
    timeout -s KILL "$timeout" sh "$V2_DIR/guest-lib.sh" case "$name" >"$out" 2>&1 </dev/null
    rc=$?
    secs=$(awk -v a="$start" -v b="$(v2_now)" 'BEGIN { printf "%.1f", b - a }')
    leaks=$(v2_sweep | tr '\n' ' ')
    if [ $rc -eq 0 ] && [ -n "$leaks" ]; then
        echo "FAIL: left behind: $leaks" >>"$out"
        rc=1
    elif [ -n "$leaks" ]; then
        echo "(removed after the case: $leaks)" >>"$out"
    fi
    [ $rc -eq 137 ] && echo "FAIL: killed after the ${timeout}s case timeout" >>"$out"
    case $rc in
        0) V2_PASS=$((V2_PASS + 1)); echo "V2TEST: ok - $name (${secs}s)" ;;
        77) V2_SKIP=$((V2_SKIP + 1)); echo "V2TEST: skip - $name: $(sed -n 's/^SKIP: //p' "$out" | head -n1)" ;;
        *) V2_FAIL=$((V2_FAIL + 1)); echo "V2TEST: not ok - $name (exit $rc, ${secs}s)" ;;
    esac
    if [ $rc -ne 0 ] && [ $rc -ne 77 ] || [ "$verbose" = 1 ]; then
        sed 's/^/#   /' "$out"
    fi
}

v2_main() {
    filter=$(v2_cmdline filter)
    timeout=$(v2_cmdline timeout)
    verbose=$(v2_cmdline verbose)
    V2_PASS=0 V2_FAIL=0 V2_SKIP=0
    V2_BASE_CGROUPS=$(cd $CG && find . -mindepth 1 -type d | sed 's|^\./||' | tr '\n' ' ')
    cases=$(sed -n 's/^\(test_[A-Za-z0-9_]*\)() *{.*/\1/p' "$V2_DIR/guest-tests.sh")
    for c in $cases; do
        name=${c#test_}
        if [ -n "$filter" ] && ! echo "$name" | grep -qE "$filter"; then
            continue
        fi
        v2_run_case "$name" "${timeout:-180}" "$verbose"
    done
    echo "V2TEST-SUMMARY: $V2_PASS passed, $V2_FAIL failed, $V2_SKIP skipped"
}

case $1 in
    case)
        . "$V2_DIR/guest-tests.sh"
        trap v2_run_cleanup EXIT
        set -e
        "test_$2"
        ;;
    lib) ;;
    *) v2_main ;;
esac
