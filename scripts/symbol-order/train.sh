#!/bin/bash
# train.sh BERTH: the work a container engine gives berth, run while
# scripts/symbol-order.sh records which functions it calls: create, start,
# state, list, ps, pause/resume, exec, kill and delete, and run, on a busybox
# bundle with the default config (the runtime's own `spec`). Everything it makes
# is removed on exit.
set -euo pipefail
berth=$1
busybox=${BUSYBOX:-/bin/busybox}
work=$(mktemp -d /tmp/berth-pgo.XXXXXX)
root=$work/run
cleanup() {
    for id in $("$berth" --root "$root" list -q 2>/dev/null); do
        "$berth" --root "$root" delete -f "$id" >/dev/null 2>&1 || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/bundle/rootfs/bin"
cp "$busybox" "$work/bundle/rootfs/bin/busybox"
for applet in sh true sleep; do ln -s busybox "$work/bundle/rootfs/bin/$applet"; done
mkdir -p "$work/bundle/rootfs/"{proc,sys,dev,tmp,etc}
(cd "$work/bundle" && "$berth" spec)
# No terminal; the process runs `true` unless a step says otherwise.
sed -i -e 's/"terminal": true/"terminal": false/' \
    -e 's/"sh"$/"true"/' "$work/bundle/config.json"
sleeper=$work/sleeper
cp -a "$work/bundle" "$sleeper"
sed -i -e 's/"true"$/"sleep", "30"/' "$sleeper/config.json"

b() { "$berth" --root "$root" "$@"; }
for i in $(seq "${PGO_ROUNDS:-5}"); do
    b create --bundle "$work/bundle" "c$i" </dev/null >/dev/null
    b state "c$i" >/dev/null
    b start "c$i"
    b delete -f "c$i"
    b run --bundle "$work/bundle" "r$i" </dev/null >/dev/null
    b create --bundle "$sleeper" "s$i" </dev/null >/dev/null
    b start "s$i"
    b list >/dev/null
    b ps "s$i" >/dev/null
    b exec "s$i" true </dev/null >/dev/null
    b pause "s$i"
    b resume "s$i"
    b kill "s$i" KILL
    b delete -f "s$i"
done
