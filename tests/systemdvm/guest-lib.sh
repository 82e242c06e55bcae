#!/bin/sh
# Runs one case of guest-tests.sh in the systemd guest:
#   sh guest-lib.sh case NAME
# The check helpers are those of the cgroup-v2 guest (tests/v2vm/guest-lib.sh,
# copied to the payload as v2vm-lib.sh). A case runs under `set -e`; cleanup
# registered with `on_exit` runs even when it fails (with errexit off: a cleanup
# step that finds nothing to undo must not end the rest). Afterwards the case
# fails if it left a container, a berth or CRI unit, or a test slice behind.

P=/payload
# (`.` passes no arguments in sh: the library sees "lib" as $1 this way.)
sd_verb=$1 sd_case=$2
set -- lib
. $P/v2vm-lib.sh
set -- "$sd_verb" "$sd_case"
# shellcheck disable=SC2034 # used by guest-tests.sh
BUNDLES=/tmp/sdtest/bundles

berth() { command berth --root "$BERTH_ROOT" --systemd-cgroup "$@"; }

# The loaded units (any state) named like PATTERN.
units() { systemctl list-units --all --plain --no-legend "$@" 2>/dev/null | awk '{print $1}'; }

# `systemctl show -p PROP --value UNIT`.
prop() { systemctl show -p "$2" --value "$1"; }

# check_prop UNIT PROP WANT
check_prop() { check_eq "systemctl show $1 $2" "$(prop "$1" "$2")" "$3"; }

# The units a case may make: berth's scopes, the test slices, CRI's scopes and
# slices (not this guest's berth-test.service).
SD_UNITS="berth-*.scope berthtest* cri-containerd-* kubepods*"

sd_leftovers() {
    for d in "$BERTH_ROOT"/*; do
        # The seccomp filter cache is no container.
        [ -e "$d" ] && [ "${d##*/}" != @seccomp-cache ] && echo "state:${d##*/}"
    done
    for u in $(units $SD_UNITS); do echo "unit:$u"; done
}

sd_sweep() {
    for d in "$BERTH_ROOT"/*; do
        [ -e "$d" ] && [ "${d##*/}" != @seccomp-cache ] && command berth --root "$BERTH_ROOT" delete -f "${d##*/}" >/dev/null 2>&1
    done
    for u in $(units $SD_UNITS); do
        systemctl stop "$u" >/dev/null 2>&1
        systemctl reset-failed "$u" >/dev/null 2>&1
    done
}

case $1 in
    case)
        . $P/guest-tests.sh
        trap 'set +e; v2_run_cleanup; left=$(sd_leftovers | tr "\n" " "); if [ -n "$left" ]; then echo "FAIL: left behind: $left"; sd_sweep; exit 1; fi' EXIT
        set -e
        "test_$2"
        ;;
esac
