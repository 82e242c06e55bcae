#!/bin/bash
# Runs berth's systemd-driver cases (guest-tests.sh) in a guest that boots
# Debian's kernel with systemd as PID 1 on pure cgroup v2 (qemu, TCG), from
# the cached disk image of image.sh plus a payload disk made for this run
# (binaries, scripts, bundles, a busybox image). See README.md. Needs root.
set -euo pipefail

usage() {
    cat <<'EOF2'
usage: tests/systemdvm/run.sh [options]
  --build             (re)build the binaries with cargo first (else only when missing)
  --filter ERE        run only the cases whose name matches ERE
  --verbose           print the output of passing cases and the whole serial log
  --timeout SECS      kill qemu after SECS (default 600)
  --case-timeout SECS per-case limit inside the guest (default 180)
  --mem MIB           guest memory (default 1024)
  --target-dir DIR    cargo target dir (default $CARGO_TARGET_DIR or <repo>/target)
  --keep              keep the work directory (payload, serial log)
Exit status: 0 when every case passed or was skipped, 1 otherwise.
EOF2
}

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=0 filter="" verbose=0 timeout=600 case_timeout=180 mem=1024 keep=0
target_dir=${CARGO_TARGET_DIR:-$repo/target}
need_arg() { [ $# -ge 2 ] && [ -n "$2" ] || { echo "run.sh: $1 needs a value" >&2; exit 2; }; }
is_number() { [[ $2 =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: $1 wants a positive number, got '$2'" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
    case $1 in
        --build) build=1 ;;
        --filter) need_arg "$@"; filter=$2; shift ;;
        --verbose) verbose=1 ;;
        --timeout) need_arg "$@"; is_number "$1" "$2"; timeout=$2; shift ;;
        --case-timeout) need_arg "$@"; is_number "$1" "$2"; case_timeout=$2; shift ;;
        --mem) need_arg "$@"; is_number "$1" "$2"; mem=$2; shift ;;
        --target-dir) need_arg "$@"; target_dir=$2; shift ;;
        --keep) keep=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "run.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
[[ $filter =~ [[:space:]] ]] && { echo "run.sh: --filter must not contain spaces" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "run.sh: must run as root" >&2; exit 2; }

t_start=$(date +%s.%N)
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
log() { echo "systemdvm: $*"; }

packages=(qemu-system-x86 linux-image-amd64 cpio busybox-static jq debootstrap e2fsprogs umoci)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null ||
        { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
fi
kver=$(dpkg-query -W -f='${Depends}' linux-image-amd64 | sed -n 's/^linux-image-\([^ ,]*\).*/\1/p')
kernel=/boot/vmlinuz-$kver
moddir=/lib/modules/$kver

t_image=$(date +%s.%N)
image=$(bash "$here/image.sh" "$kver")
log "disk image $image ($(du -h --apparent-size "$image" | cut -f1), ready in $(since "$t_image")s)"

# ---- binaries ----------------------------------------------------------------

bins=("$target_dir/x86_64-unknown-linux-gnu/debug/berth" "$target_dir/x86_64-unknown-linux-gnu/debug/containerd-shim-berth-v2"
    "$target_dir/x86_64-unknown-linux-gnu/debug/berth-crictl" "$target_dir/x86_64-unknown-linux-gnu/debug/berth-image")
need_build=$build
for b in "${bins[@]}"; do [ -x "$b" ] || need_build=1; done
if [ $need_build = 1 ]; then
    log "cargo build (target dir $target_dir)"
    (cd "$repo" && CARGO_TARGET_DIR=$target_dir cargo build -p berth -p containerd-shim-berth-v2 \
        -p berth-cri-client -p berth-image --bin berth --bin containerd-shim-berth-v2 \
        --bin berth-crictl --bin berth-image)
fi

work=$(mktemp -d /tmp/systemdvm.XXXXXX)
cleanup() { if [ $keep = 1 ]; then log "work directory kept: $work"; else rm -rf "$work"; fi; }
trap cleanup EXIT

install_busybox() { # DEST_ROOT
    mkdir -p "$1/bin"
    cp /bin/busybox "$1/bin/busybox"
    local a
    for a in $(/bin/busybox --list-full); do
        [ "$a" = bin/busybox ] && continue
        mkdir -p "$1/$(dirname "$a")"
        ln -sf /bin/busybox "$1/$a"
    done
}

# ---- initramfs: virtio disk + ext4, then systemd from the image ---------------

initrd_root=$work/initrd
mkdir -p "$initrd_root"/{dev,proc,sys}
install_busybox "$initrd_root"
install -m 755 "$here/initrd-init" "$initrd_root/init"
: >"$initrd_root/modules.list"
add_module() { # PATH relative to moddir
    local rel=$1 dep
    grep -qxF "$rel" "$initrd_root/modules.list" && return
    for dep in $(grep "^$rel:" "$moddir/modules.dep" | cut -d: -f2); do add_module "$dep"; done
    mkdir -p "$initrd_root$moddir/$(dirname "$rel")"
    cp "$moddir/$rel" "$initrd_root$moddir/$rel"
    echo "$rel" >>"$initrd_root/modules.list"
}
# crc32c is a soft dependency of ext4 and jbd2 (not in modules.dep).
for m in virtio_pci virtio_blk crc32c_generic ext4; do
    grep -qE "/$m\.ko$" "$moddir/modules.builtin" && continue
    rel=$(grep -E "(^|/)$m\.ko:" "$moddir/modules.dep" | head -n1 | cut -d: -f1)
    [ -n "$rel" ] || { echo "run.sh: module $m not found in $moddir" >&2; exit 1; }
    add_module "$rel"
done
(cd "$initrd_root" && find . | cpio -o -H newc -R 0:0 --quiet) | gzip -1 >"$work/initrd.gz"

# ---- payload disk ------------------------------------------------------------

payload=$work/payload
mkdir -p "$payload/bin" "$payload/bundles"
for b in "${bins[@]:0:3}"; do
    cp "$b" "$payload/bin/"
    strip --strip-debug "$payload/bin/$(basename "$b")"
done
install -m 644 "$here/guest-main.sh" "$here/guest-lib.sh" "$here/guest-tests.sh" "$payload/"
install -m 644 "$repo/tests/v2vm/guest-lib.sh" "$payload/v2vm-lib.sh"

mkdir -p "$work/spec"
"${bins[0]}" spec --bundle "$work/spec"
# Made on this host, used in the guest, a cgroup-v2-only host where `berth spec`
# (as runc's) also asks for a cgroup namespace.
jq '.linux.namespaces |= (map(select(.type != "cgroup")) + [{"type": "cgroup"}])' \
    "$work/spec"/config.json >"$work/spec"/config.json.v2 && mv "$work/spec"/config.json.v2 "$work/spec"/config.json
rootfs_template=$work/rootfs
install_busybox "$rootfs_template"
mkdir -p "$rootfs_template"/{proc,sys,dev,tmp,etc,root}
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$rootfs_template/etc/passwd"
printf 'root:x:0:\n' >"$rootfs_template/etc/group"
bundle() { # NAME ARGS_JSON [JQ_FILTER]
    local dir=$payload/bundles/$1
    mkdir -p "$dir"
    cp -a "$rootfs_template" "$dir/rootfs"
    jq --argjson args "$2" ".process.terminal = false | .process.args = \$args | ${3:-.}" \
        "$work/spec/config.json" >"$dir/config.json" || { echo "run.sh: bad bundle '$1'" >&2; exit 1; }
}
. "$here/bundles.sh"

# The busybox image (and its "pause" tag, the pod sandbox) for containerd.
"${bins[3]}" --store "$work/store" build-busybox "oci:$work/layout:latest" >/dev/null
umoci config --image "$work/layout:latest" --tag pause --config.entrypoint /bin/sleep --config.cmd 2147483647
tar -C "$work/layout" -cf "$payload/busybox.tar" .
rm -rf "$work/store" "$work/layout"

used=$(du -sm "$payload" | cut -f1)
mkfs.ext4 -q -F -L berth-payload -d "$payload" "$work/payload.img" "$((used + used / 4 + 16))M"
log "payload ${used} MiB, prepared in $(since "$t_start")s"

# ---- boot ---------------------------------------------------------------------

append="console=ttyS0 root=/dev/vda rw quiet loglevel=3 panic=-1 systemd.show_status=false"
append="$append systemd.unified_cgroup_hierarchy=1 sdtest.timeout=$case_timeout"
[ -n "$filter" ] && append="$append sdtest.filter=$filter"
[ $verbose = 1 ] && append="$append sdtest.verbose=1"
serial=$work/serial.log
log "booting qemu (tcg, ${mem} MiB), timeout ${timeout}s"
t_boot=$(date +%s.%N)
set +e
timeout --kill-after=10 "$timeout" qemu-system-x86_64 -machine q35,accel=tcg -cpu max -smp 1 \
    -m "$mem" -nographic -no-reboot -kernel "$kernel" -initrd "$work/initrd.gz" -append "$append" \
    -drive "file=$image,format=raw,if=virtio,snapshot=on" \
    -drive "file=$work/payload.img,format=raw,if=virtio,readonly=on" \
    -nic none </dev/null 2>&1 | sed -u 's/\r//g; s/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1bc//g' | tee "$serial" |
    while IFS= read -r line; do
        case $line in SDTEST-BOOT:*) since "$t_boot" >"$work/boot.secs" ;; esac
        if [ $verbose = 1 ] || [[ $line == SDTEST* ]] || [[ $line == '#'* ]]; then printf '%s\n' "$line"; fi
    done
qemu_rc=${PIPESTATUS[0]}
set -e

passed=$(grep -c '^SDTEST: ok - ' "$serial" || true)
failed=$(grep -c '^SDTEST: not ok - ' "$serial" || true)
skipped=$(grep -c '^SDTEST: skip - ' "$serial" || true)
summary=$(grep '^SDTEST-SUMMARY: ' "$serial" | tail -n1 || true)
boot=$(sed -n 's/^SDTEST-BOOT: tests start at uptime \([0-9.]*\)s.*/\1/p' "$serial")
echo
log "boot: the tests started ${boot:-?}s of guest uptime after power-on ($(cat "$work/boot.secs" 2>/dev/null || echo ?)s after qemu started)"
log "qemu ran $(since "$t_boot")s (exit $qemu_rc), total $(since "$t_start")s"
status=0
if [ -z "$summary" ]; then
    log "FAILED: no SDTEST-SUMMARY line in the serial log; its last lines:"
    tail -n 40 "$serial" | sed 's/^/    /'
    status=1
else
    log "$summary"
    [ "$summary" = "SDTEST-SUMMARY: $passed passed, $failed failed, $skipped skipped" ] ||
        { log "FAILED: the summary does not match the result lines"; status=1; }
    [ "$failed" = 0 ] || status=1
    [ $((passed + failed + skipped)) -gt 0 ] || { log "FAILED: no case ran"; status=1; }
fi
exit $status
