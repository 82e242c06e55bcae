#!/bin/sh
# Runs in the systemd guest (from berth-test.service, output on the serial
# console): reports boot time, runs the cases of guest-tests.sh and powers the
# guest off. Results are SDTEST lines (see README.md).
P=/payload
export PATH=$P/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

echo
[ "$(sed -n 's/.*sdtest.verbose=\([0-9]\).*/\1/p' /proc/cmdline)" = 1 ] && set -x
echo "SDTEST-BOOT: tests start at uptime $(cut -d' ' -f1 /proc/uptime)s, kernel $(uname -r), $(systemctl --version | head -n1)"
for ko in overlay bridge veth; do modprobe "$ko" 2>/dev/null || echo "SDTEST-INFO: modprobe $ko failed"; done

# Everything a case writes lives in a tmpfs of its own.
mkdir -p /tmp/sdtest && mount -t tmpfs tmpfs /tmp/sdtest
cp -a $P/bundles /tmp/sdtest/bundles

pass=0 fail=0 skip=0
timeout_s=$(sed -n 's/.*sdtest.timeout=\([0-9]*\).*/\1/p' /proc/cmdline)
filter=$(sed -n 's/.*sdtest.filter=\([^ ]*\).*/\1/p' /proc/cmdline)
verbose=$(sed -n 's/.*sdtest.verbose=\([0-9]\).*/\1/p' /proc/cmdline)
for c in $(sed -n 's/^test_\([A-Za-z0-9_]*\)() *{.*/\1/p' $P/guest-tests.sh); do
    if [ -n "$filter" ] && ! echo "$c" | grep -qE "$filter"; then continue; fi
    out=/tmp/sdtest/case.$c.log
    [ "$verbose" = 1 ] && echo "SDTEST-INFO: running $c"
    start=$(cut -d' ' -f1 /proc/uptime)
    if [ "$verbose" = 1 ]; then
        # Traced, and shown as it runs.
        { timeout -s KILL "${timeout_s:-180}" sh -x $P/guest-lib.sh case "$c" </dev/null 2>&1; echo $? >/tmp/sdtest/rc; } | tee "$out"
        rc=$(cat /tmp/sdtest/rc)
    else
        timeout -s KILL "${timeout_s:-180}" sh $P/guest-lib.sh case "$c" >"$out" 2>&1 </dev/null
        rc=$?
    fi
    secs=$(awk -v a="$start" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.1f", b - a }')
    case $rc in
        0) pass=$((pass + 1)); echo "SDTEST: ok - $c (${secs}s)" ;;
        77) skip=$((skip + 1)); echo "SDTEST: skip - $c: $(sed -n 's/^SKIP: //p' "$out" | head -n1)" ;;
        *) fail=$((fail + 1)); echo "SDTEST: not ok - $c (exit $rc, ${secs}s)" ;;
    esac
    if { [ $rc -ne 0 ] && [ $rc -ne 77 ]; } || [ "$verbose" = 1 ]; then sed 's/^/#   /' "$out"; fi
done
echo "SDTEST-SUMMARY: $pass passed, $fail failed, $skip skipped"
echo "SDTEST-END: uptime $(cut -d' ' -f1 /proc/uptime)s"
sync
systemctl poweroff --force --force
