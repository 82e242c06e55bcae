#!/bin/bash
# Runs the cases of guest-tests.sh on a real pure cgroup-v2 kernel: Debian's
# linux-image-amd64 booted under qemu (TCG) with cgroup_no_v1=all, from an
# initramfs holding busybox, the berth binaries and the test bundles.
# See README.md. Needs root (installs Debian packages, makes device nodes).
set -euo pipefail

usage() {
    cat <<'EOF'
usage: tests/v2vm/run.sh [options]
  --build             (re)build berth and the v2check example with cargo first
                      (without it, binaries are built only when missing)
  --filter ERE        run only the cases whose name matches ERE
  --verbose           print the output of passing cases and the whole serial log
  --timeout SECS      kill qemu after SECS (default 600)
  --case-timeout SECS per-case limit inside the guest (default 180)
  --mem MIB           guest memory (default 1024)
  --smp N             guest CPUs (default 1)
  --accel NAME        qemu accelerator (default tcg; kvm hangs on some hosts)
  --target-dir DIR    cargo target dir (default $CARGO_TARGET_DIR or <repo>/target)
  --keep              keep the work directory (initramfs tree, serial log)
  -h, --help          this text
Exit status: 0 when every case passed or was skipped, 1 otherwise
(a failure, a missing V2TEST-SUMMARY line, a qemu timeout).
EOF
}

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=0 filter="" verbose=0 timeout=600 case_timeout=180 mem=1024 smp=1 accel=tcg keep=0
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
        --smp) need_arg "$@"; is_number "$1" "$2"; smp=$2; shift ;;
        --accel) need_arg "$@"; accel=$2; shift ;;
        --target-dir) need_arg "$@"; target_dir=$2; shift ;;
        --keep) keep=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "run.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
if [[ $filter =~ [[:space:]] ]]; then
    echo "run.sh: --filter must not contain spaces (it goes on the kernel command line)" >&2
    exit 2
fi
if [ "$(id -u)" != 0 ]; then
    echo "run.sh: must run as root (installs packages, creates device nodes)" >&2
    exit 2
fi

t_start=$(date +%s.%N)
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
log() { echo "v2vm: $*"; }

# ---- packages ---------------------------------------------------------------

packages=(qemu-system-x86 linux-image-amd64 cpio busybox-static jq)
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

# The kernel the linux-image-amd64 metapackage points at (never the host's own).
kver=$(dpkg-query -W -f='${Depends}' linux-image-amd64 | sed -n 's/^linux-image-\([^ ,]*\).*/\1/p')
kernel=/boot/vmlinuz-$kver
moddir=/lib/modules/$kver
for f in "$kernel" "$moddir/modules.dep"; do
    [ -e "$f" ] || { echo "run.sh: $f is missing (linux-image-$kver not installed?)" >&2; exit 1; }
done

# ---- binaries ---------------------------------------------------------------

berth_bin=$target_dir/x86_64-unknown-linux-gnu/debug/berth
v2check_bin=$target_dir/x86_64-unknown-linux-gnu/debug/examples/v2check
if [ $build = 1 ] || [ ! -x "$berth_bin" ] || [ ! -x "$v2check_bin" ]; then
    t_build=$(date +%s.%N)
    log "cargo build (target dir $target_dir)"
    (cd "$repo" && CARGO_TARGET_DIR=$target_dir cargo build -p berth --bin berth &&
        CARGO_TARGET_DIR=$target_dir cargo build -p berth-cgroups --example v2check)
    log "build took $(since "$t_build")s"
fi

# ---- initramfs --------------------------------------------------------------

work=$(mktemp -d /tmp/v2vm.XXXXXX)
cleanup() {
    if [ $keep = 1 ]; then log "work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
root=$work/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,etc,dev,proc,sys,run,tmp,newroot,v2vm/bundles}
chmod 1777 "$root/tmp"

# Install a file at the same path inside the image.
copy_in() { mkdir -p "$root$(dirname "$1")" && cp -L "$1" "$root$1"; }

# busybox and its applet links.
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
install_busybox "$root"
mknod -m 600 "$root/dev/console" c 5 1
mknod -m 666 "$root/dev/null" c 1 3
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"

# The test binaries (stripped, they only need to run) and their shared libraries.
install_binary() { # SRC NAME
    local dst=$root/usr/local/bin/$2 lib
    cp "$1" "$dst"
    strip --strip-debug "$dst" 2>/dev/null || true
    for lib in $(ldd "$1" | grep -o '/[^ ]*'); do
        [ -e "$root$lib" ] || copy_in "$lib"
    done
}
install_binary "$berth_bin" berth
install_binary "$v2check_bin" v2check

# Kernel modules the guest loads, dependencies first (overlay is =m in Debian's config;
# loop and bfq give the io cases a real block device with a proportional scheduler).
modules=(overlay loop bfq)
: >"$root/v2vm/modules.list"
add_module() { # MODULE_PATH (relative to moddir, as in modules.dep)
    local rel=$1 out dep
    out=${rel%.xz}
    out=${out%.zst}
    grep -qxF "$out" "$root/v2vm/modules.list" && return
    for dep in $(grep "^$rel:" "$moddir/modules.dep" | cut -d: -f2); do add_module "$dep"; done
    mkdir -p "$root$moddir/$(dirname "$rel")"
    case $rel in
        *.xz) xz -dc "$moddir/$rel" >"$root$moddir/$out" ;;
        *.zst) zstd -qdc "$moddir/$rel" >"$root$moddir/$out" ;;
        *) cp "$moddir/$rel" "$root$moddir/$out" ;;
    esac
    echo "$out" >>"$root/v2vm/modules.list"
}
for m in "${modules[@]}"; do
    grep -qE "/$m\.ko$" "$moddir/modules.builtin" && continue
    rel=$(grep -E "(^|/)$m\.ko(\.[a-z]+)?:" "$moddir/modules.dep" | head -n1 | cut -d: -f1)
    [ -n "$rel" ] || { echo "run.sh: module $m is neither built in nor in $moddir" >&2; exit 1; }
    add_module "$rel"
done

# Guest scripts.
install -m 755 "$here/init" "$root/init"
install -m 644 "$here/guest-lib.sh" "$here/guest-tests.sh" "$root/v2vm/"

# Bundles: busybox rootfs + `berth spec`, edited with jq.
base_config=$work/spec
mkdir -p "$base_config"
"$berth_bin" spec --bundle "$base_config"
# Made on this host, used in the guest, a cgroup-v2-only host where `berth spec`
# (as runc's) also asks for a cgroup namespace.
jq '.linux.namespaces |= (map(select(.type != "cgroup")) + [{"type": "cgroup"}])' \
    "$base_config"/config.json >"$base_config"/config.json.v2 && mv "$base_config"/config.json.v2 "$base_config"/config.json
rootfs_template=$work/rootfs
install_busybox "$rootfs_template"
mkdir -p "$rootfs_template"/{proc,sys,dev,tmp,etc,root}
cp "$root/etc/passwd" "$root/etc/group" "$rootfs_template/etc/"
bundle() { # NAME ARGS_JSON [JQ_FILTER]
    local dir=$root/v2vm/bundles/$1
    mkdir -p "$dir"
    cp -a "$rootfs_template" "$dir/rootfs"
    jq --argjson args "$2" ".process.terminal = false | .process.args = \$args | ${3:-.}" \
        "$base_config/config.json" >"$dir/config.json" ||
        { echo "run.sh: bad bundle definition '$1'" >&2; exit 1; }
}
. "$here/bundles.sh"

initrd=$work/initrd.gz
(cd "$root" && find . | cpio -o -H newc -R 0:0 --quiet) | gzip -1 >"$initrd"
log "initramfs $(du -h "$initrd" | cut -f1) (kernel $kver), prepared in $(since "$t_start")s"

# ---- boot -------------------------------------------------------------------

append="console=ttyS0 cgroup_no_v1=all panic=-1 quiet loglevel=3 v2test.timeout=$case_timeout"
[ -n "$filter" ] && append="$append v2test.filter=$filter"
[ $verbose = 1 ] && append="$append v2test.verbose=1"
serial=$work/serial.log
log "booting qemu ($accel, ${mem} MiB, $smp CPU), timeout ${timeout}s"
t_boot=$(date +%s.%N)
set +e
timeout --kill-after=10 "$timeout" qemu-system-x86_64 -machine "q35,accel=$accel" -cpu max -smp "$smp" \
    -m "$mem" -nographic -no-reboot -kernel "$kernel" -initrd "$initrd" -append "$append" \
    -nic none </dev/null 2>&1 | sed -u 's/\r//g; s/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1bc//g' | tee "$serial" |
    while IFS= read -r line; do
        case $line in V2TEST-BOOT:*) since "$t_boot" >"$work/boot.secs" ;; esac
        if [ $verbose = 1 ] || [[ $line == V2TEST* ]] || [[ $line == '#'* ]]; then
            printf '%s\n' "$line"
        fi
    done
qemu_rc=${PIPESTATUS[0]}
set -e
qemu_secs=$(since "$t_boot")

# ---- results ----------------------------------------------------------------

passed=$(grep -c '^V2TEST: ok - ' "$serial" || true)
failed=$(grep -c '^V2TEST: not ok - ' "$serial" || true)
skipped=$(grep -c '^V2TEST: skip - ' "$serial" || true)
summary=$(grep '^V2TEST-SUMMARY: ' "$serial" | tail -n1 || true)
boot=$(sed -n 's/^V2TEST-BOOT: init at uptime \([0-9.]*\)s.*/\1/p' "$serial")
end=$(sed -n 's/^V2TEST-END: uptime \([0-9.]*\)s.*/\1/p' "$serial")
echo
host_boot=$(cat "$work/boot.secs" 2>/dev/null || echo "?")
log "boot: /init started ${host_boot}s after qemu started (${boot:-?}s of guest uptime); tests ended at ${end:-?}s of guest uptime"
log "qemu ran ${qemu_secs}s (exit $qemu_rc), total ${t_start:+$(since "$t_start")}s"
status=0
if [ -z "$summary" ]; then
    log "FAILED: no V2TEST-SUMMARY line in the serial log; its last lines:"
    tail -n 40 "$serial" | sed 's/^/    /'
    [ "$qemu_rc" = 124 ] || [ "$qemu_rc" = 137 ] && log "qemu was killed after ${timeout}s"
    status=1
else
    log "$summary"
    want="V2TEST-SUMMARY: $passed passed, $failed failed, $skipped skipped"
    if [ "$summary" != "$want" ]; then
        log "FAILED: the summary does not match the result lines ($want)"
        status=1
    fi
    [ "$failed" = 0 ] || status=1
    if [ $((passed + failed + skipped)) = 0 ]; then
        log "FAILED: no case ran${filter:+ (does --filter '$filter' match any case?)}"
        status=1
    fi
fi
if [ $keep = 1 ]; then log "serial log: $serial"; fi
exit $status
