#!/bin/bash
# Builds the disk image of the systemd guest (see README.md), or finds it in the
# cache: Debian 12 (minbase) with systemd as PID 1, dbus, containerd and the CNI
# plugins, plus the kernel modules the guest loads, as a raw ext4 image. The
# image never changes once built; guests boot it with qemu's -snapshot.
#
#   tests/systemdvm/image.sh KERNEL_VERSION     prints the image's path
#
# Cache: $BERTH_TEST_CACHE (default /var/cache/berth-test), one file per key;
# the key hashes everything the image is made of (suite, packages, mirror,
# kernel version, module list and this script). Older images of this kind are
# removed when a new one is built. Needs root and debootstrap.
set -euo pipefail

kver=${1:?usage: image.sh KERNEL_VERSION}
here=$(cd "$(dirname "$0")" && pwd)
cache=${BERTH_TEST_CACHE:-/var/cache/berth-test}
suite=bookworm
mirror=${BERTH_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# systemd as init, the system bus, containerd and Debian's CNI plugins; iproute2
# and jq serve the test scripts.
packages=systemd,systemd-sysv,dbus,containerd,containernetworking-plugins,iproute2,kmod,procps,jq
# Modules the guest loads itself (containerd's overlayfs snapshotter, the CNI
# bridge); their dependencies come along.
modules=(overlay bridge veth)
moddir=/lib/modules/$kver

key=$( {
    printf '%s\n' "$suite" "$mirror" "$packages" "$kver" "${modules[*]}"
    cat "$0" "$here/berth-test.service"
} | sha256sum | cut -c1-16)
image=$cache/systemd-guest-$key.img
if [ -s "$image" ]; then
    echo "$image"
    exit 0
fi

log() { echo "image.sh: $*" >&2; }
mkdir -p "$cache"
exec 9>"$cache/.systemd-guest.lock"
flock 9
if [ -s "$image" ]; then # built by a concurrent run while this one waited
    echo "$image"
    exit 0
fi
command -v debootstrap >/dev/null || { log "debootstrap is missing (scripts/install-deps.sh)"; exit 1; }
[ -e "$moddir/modules.dep" ] || { log "$moddir/modules.dep is missing"; exit 1; }

work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
t0=$SECONDS
log "debootstrap $suite ($packages) into $root"
debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2
    log "debootstrap failed"
    exit 1
}
log "debootstrap took $((SECONDS - t0)) s"

# ---- system configuration ----------------------------------------------------

echo berth-systemd >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 berth-systemd\n' >"$root/etc/hosts"
# A fixed machine id: not a first boot (no systemd-firstboot, no presets).
echo "$key$key" >"$root/etc/machine-id"
: >"$root/etc/fstab"
# The root filesystem is mounted by the guest's initramfs; nothing needs udev
# device units, terminals or timers here.
chroot "$root" systemctl mask --quiet \
    getty@tty1.service serial-getty@ttyS0.service console-getty.service \
    apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer \
    systemd-udevd.service systemd-udev-trigger.service systemd-udev-settle.service \
    systemd-udevd-control.socket systemd-udevd-kernel.socket \
    systemd-timesyncd.service systemd-networkd-wait-online.service 2>/dev/null || true
# containerd is started by the test (as a service) only when a case needs it.
chroot "$root" systemctl disable --quiet containerd.service
install -m 644 "$here/berth-test.service" "$root/etc/systemd/system/berth-test.service"
chroot "$root" systemctl enable --quiet berth-test.service

# ---- kernel modules (the host's linux-image-amd64 is the guest's kernel) -----

add_module() { # PATH relative to moddir, as in modules.dep
    local rel=$1 dep
    [ -e "$root$moddir/$rel" ] && return
    for dep in $(grep "^$rel:" "$moddir/modules.dep" | cut -d: -f2); do add_module "$dep"; done
    mkdir -p "$root$moddir/$(dirname "$rel")"
    cp "$moddir/$rel" "$root$moddir/$rel"
}
for m in "${modules[@]}"; do
    grep -qE "/$m\.ko$" "$moddir/modules.builtin" && continue
    rel=$(grep -E "(^|/)$m\.ko(\.[a-z]+)?:" "$moddir/modules.dep" | head -n1 | cut -d: -f1)
    [ -n "$rel" ] || { log "module $m is neither built in nor in $moddir"; exit 1; }
    add_module "$rel"
done
cp "$moddir"/modules.builtin* "$moddir/modules.order" "$root$moddir/"
depmod -b "$root" "$kver"

# ---- trim and pack -----------------------------------------------------------

rm -rf "$root"/usr/share/{doc,man,info,locale,lintian} "$root"/var/cache/apt/* \
    "$root"/var/lib/apt/lists/* "$root"/var/log/*.log "$root"/debootstrap
mkdir -p "$root/payload"
used_mib=$(du -sm "$root" | cut -f1)
size_mib=$((used_mib + used_mib / 4 + 64))
mkfs.ext4 -q -F -L berth-root -d "$root" "$work/image" "${size_mib}M"
rm -f "$cache"/systemd-guest-*.img
mv "$work/image" "$image"
log "image $image: ${size_mib} MiB (${used_mib} MiB used), built in $((SECONDS - t0)) s"
echo "$image"
