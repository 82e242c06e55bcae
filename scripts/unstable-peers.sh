#!/bin/bash
# Fresher peers from Debian's unstable suite: containerd 2.x (containerd, ctr,
# containerd-shim-runc-v2), runc 1.3 and crun 1.28, for the shim's containerd
# matrix, the conformance comparison and the benchmarks.
#
# The host's package state is never touched: apt runs with a private
# configuration (its own sources list naming unstable on the mirror the host
# already uses, its own lists, cache and an empty dpkg status), downloads the
# packages and their dependencies, and `dpkg-deb -x` unpacks them into a
# private prefix. containerd's binaries need glibc 2.34 and run against the
# host's libc; runc and crun need glibc 2.38 (Debian 12 has 2.36), so private
# copies of them get unstable's own loader as ELF interpreter and unstable's
# library directory as DT_RPATH (patchelf). The loader is not run as a command
# in front of the binary because runc re-executes /proc/self/exe for `runc
# init`, which would then be the loader.
#
# The prefix is cached outside the clone, keyed by the resolved package
# versions: $CACHE/<key>/ with
#   bin/      containerd ctr containerd-shim-runc-v2 runc crun
#   root/     the unpacked packages
#   versions  "package version" lines
# The package lists are refreshed when older than a day (BERTH_UNSTABLE_REFRESH=1
# forces it). Prints the prefix on stdout; progress goes to stderr.
#
# Usage (root): scripts/unstable-peers.sh
# Environment: BERTH_UNSTABLE_CACHE (default /var/cache/berth-test/unstable)
set -euo pipefail

CACHE=${BERTH_UNSTABLE_CACHE:-/var/cache/berth-test/unstable}
PACKAGES=(containerd runc crun)
LIBDIR=usr/lib/x86_64-linux-gnu
LOADER=$LIBDIR/ld-linux-x86-64.so.2

die() { echo "unstable-peers: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "run as root"
for tool in apt-get dpkg-deb patchelf flock sha256sum; do
    command -v "$tool" >/dev/null || die "$tool missing (scripts/install-deps.sh)"
done
[[ $(dpkg --print-architecture) == amd64 ]] || die "only amd64 is supported"

mkdir -p "$CACHE"
exec 9>"$CACHE/lock"
flock -w 600 9 || die "another run holds $CACHE/lock"

# The first Debian mirror of the host's sources that serves a release suite
# (not -security or -updates), one-line or deb822 format.
host_mirror() {
    local files=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources)
    local f
    for f in "${files[@]}"; do
        [[ -r $f ]] || continue
        case $f in
        *.sources)
            awk 'BEGIN { RS = ""; FS = "\n" }
                 /(^|\n)Types:[^\n]*deb([ \n]|$)/ {
                     uris = ""; suites = ""
                     for (i = 1; i <= NF; i++) {
                         if ($i ~ /^URIs:/) { uris = $i; sub(/^URIs:[ \t]*/, "", uris) }
                         if ($i ~ /^Suites:/) { suites = $i; sub(/^Suites:[ \t]*/, "", suites) }
                     }
                     n = split(suites, s, /[ \t]+/)
                     for (j = 1; j <= n; j++) if (s[j] != "" && s[j] !~ /-/) { split(uris, u, /[ \t]+/); print u[1]; exit }
                 }' "$f"
            ;;
        *)
            awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                               if ($(i + 1) !~ /-/) { print $i; exit } }' "$f"
            ;;
        esac
    done | head -n 1
}

APT_DIR=$CACHE/apt
mkdir -p "$APT_DIR"/{etc/apt.conf.d,etc/preferences.d,etc/sources.list.d,lists/partial,archives/partial}
touch "$APT_DIR/status"
mirror=$(host_mirror)
[[ -n $mirror ]] || die "no Debian mirror found in the host's apt sources"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[[ -r $keyring ]] || die "$keyring missing (debian-archive-keyring)"
sources="deb [signed-by=$keyring] $mirror unstable main"
if [[ $(cat "$APT_DIR/etc/sources.list" 2>/dev/null) != "$sources" ]]; then
    echo "$sources" >"$APT_DIR/etc/sources.list"
    rm -f "$APT_DIR"/lists/*_InRelease
fi
# Read before the host's configuration parts (Dir::Etc::Parts points into the
# private directory), so nothing of /etc/apt applies.
cat >"$APT_DIR/apt.conf" <<EOF
Dir::Etc "$APT_DIR/etc";
Dir::Etc::SourceList "$APT_DIR/etc/sources.list";
Dir::Etc::SourceParts "$APT_DIR/etc/sources.list.d";
Dir::Etc::Parts "$APT_DIR/etc/apt.conf.d";
Dir::Etc::Preferences "$APT_DIR/etc/preferences";
Dir::Etc::PreferencesParts "$APT_DIR/etc/preferences.d";
Dir::State "$APT_DIR";
Dir::State::Lists "$APT_DIR/lists";
Dir::State::status "$APT_DIR/status";
Dir::Cache "$APT_DIR";
Dir::Cache::Archives "$APT_DIR/archives";
Debug::NoLocking "true";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
APT::Install-Recommends "false";
APT::Install-Suggests "false";
EOF
export APT_CONFIG=$APT_DIR/apt.conf

if [[ ${BERTH_UNSTABLE_REFRESH:-0} == 1 ]] ||
    [[ -z $(find "$APT_DIR/lists" -maxdepth 1 -name '*_InRelease' -mmin -1440 2>/dev/null) ]]; then
    echo "unstable-peers: apt-get update (unstable from $mirror)" >&2
    apt-get -q update >&2 || die "apt-get update of the private unstable sources failed"
fi

# The packages and their dependencies as unstable has them now (resolved
# against an empty package state: the whole closure).
resolved=$(apt-get -s -q install "${PACKAGES[@]}" 2>&1 | awk '$1 == "Inst" { gsub(/[()]/, "", $3); print $2, $3 }' | sort)
[[ -n $resolved ]] || die "could not resolve ${PACKAGES[*]} in unstable"
key=$(sha256sum <<<"$resolved" | cut -c1-16)
prefix=$CACHE/$key
if [[ -f $prefix/.complete ]]; then
    ln -sfn "$key" "$CACHE/current"
    echo "$prefix"
    exit 0
fi

echo "unstable-peers: downloading $(wc -l <<<"$resolved") packages into $prefix" >&2
apt-get -q -y -d install "${PACKAGES[@]}" >&2 || die "download failed"
tmp=$prefix.tmp.$$
rm -rf "$tmp"
mkdir -p "$tmp/root" "$tmp/bin"
trap 'rm -rf "$tmp"' EXIT
while read -r name version; do
    # apt names the file name_version_arch.deb with ':' (epochs) escaped.
    debs=("$APT_DIR/archives/${name}_${version//:/%3a}_"*.deb)
    deb=${debs[0]}
    [[ -f $deb ]] || die "no downloaded .deb for $name $version"
    dpkg-deb -x "$deb" "$tmp/root"
done <<<"$resolved"
echo "$resolved" >"$tmp/versions"

# Paths inside the final prefix (the tmp dir is renamed into place).
root=$prefix/root
for b in containerd ctr containerd-shim-runc-v2; do
    [[ -x $tmp/root/usr/bin/$b ]] || die "$b not in the containerd package"
    ln -s "../root/usr/bin/$b" "$tmp/bin/$b"
done
for b in runc crun; do
    src=$(readlink -f "$tmp/root/usr/bin/$b")
    [[ -x $src ]] || die "$b not unpacked"
    cp "$src" "$tmp/bin/$b"
    patchelf --set-interpreter "$root/$LOADER" --force-rpath --set-rpath "$root/$LIBDIR" "$tmp/bin/$b"
done
mv "$tmp" "$prefix"
trap - EXIT
for b in containerd ctr runc crun; do
    "$prefix/bin/$b" --version >/dev/null 2>&1 || { rm -rf "$prefix"; die "$b from unstable does not run here"; }
done
"$prefix/bin/containerd-shim-runc-v2" -v >/dev/null 2>&1 || { rm -rf "$prefix"; die "containerd-shim-runc-v2 from unstable does not run here"; }
touch "$prefix/.complete"
# Prefixes of older package versions, and the downloaded archives.
for old in "$CACHE"/*/.complete; do
    d=$(dirname "$old")
    [[ -L $d || $d == "$prefix" ]] || rm -rf "$d"
done
rm -f "$APT_DIR"/archives/*.deb
ln -sfn "$key" "$CACHE/current"
echo "$prefix"
