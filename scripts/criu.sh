#!/bin/bash
# A working CRIU for checkpoint/restore (berth checkpoint/restore, the shim's
# Checkpoint call, berth-image checkpoint/restore, their tests and benchmark).
#
# Debian 12's criu 3.17.1 fails `criu check` on recent kernels ("vdso:
# Unexpected rt vDSO area bounds"), and unstable's binary package needs a
# newer glibc and libnet than Debian 12 has. CRIU's source as Debian unstable
# ships it builds against Debian 12's own libraries (the -dev packages
# scripts/install-deps.sh installs), so this script builds it:
#
#   1. apt, with a private configuration (its own sources list with a deb-src
#      line for unstable on the mirror the host already uses, its own lists,
#      cache and an empty dpkg status; /etc/apt is never read or written),
#      resolves the source package and its files;
#   2. the upstream tarball (criu_VERSION.orig.tar.xz) is downloaded through
#      apt's helper, which checks it against the SHA-256 of the signed index,
#      and it must also match the hash pinned below;
#   3. `make criu` builds the binary alone (no docs, no python, no plugins).
#
# Debian's packaging part (criu_VERSION-N.debian.tar.xz) is not served by the
# mirror this machine reaches (404), so Debian's patches are not applied: the
# binary is upstream's 4.2.1 built with Debian 12's compiler and libraries.
#
# The binary is cached outside the clone, keyed by its inputs (source hash,
# versions of the compiler and of the -dev packages it links, the recipe):
#   $CACHE/criu-<version>-<key>/bin/criu
# A cached binary needs no network. Each run checks that the kernel passes
# `criu check`. Prints the binary's path on stdout; progress goes to stderr.
#
# Usage (root): scripts/criu.sh
# Environment: BERTH_CRIU_CACHE (default /var/cache/berth-test)
set -euo pipefail

CACHE=${BERTH_CRIU_CACHE:-/var/cache/berth-test}
VERSION=4.2.1
DEBIAN_VERSION=$VERSION-1
ORIG=criu_$VERSION.orig.tar.xz
ORIG_SHA256=29ec0ee09e296479fe7048c80980e8ef1d0684d0b0204c2b101dfea19f6725b9
# What the binary links (Debian 12's packages) and what builds it.
BUILD_DEPS=(libbsd-dev libcap-dev libgnutls28-dev libnet1-dev libnftables-dev libnl-3-dev
    libprotobuf-c-dev libprotobuf-dev protobuf-c-compiler protobuf-compiler pkgconf uuid-dev gcc make)
RECIPE="make -j2 criu"

die() { echo "criu.sh: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "run as root"
[[ $(dpkg --print-architecture) == amd64 ]] || die "only amd64 is supported"
for tool in apt-get flock sha256sum dpkg-query tar; do
    command -v "$tool" >/dev/null || die "$tool missing"
done
missing=()
for p in "${BUILD_DEPS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
((${#missing[@]} == 0)) || die "build dependencies missing: ${missing[*]} (scripts/install-deps.sh)"

inputs=$(
    echo "$ORIG_SHA256 $RECIPE"
    dpkg-query -W -f='${Package} ${Version}\n' "${BUILD_DEPS[@]}"
)
key=$(sha256sum <<<"$inputs" | cut -c1-16)
prefix=$CACHE/criu-$VERSION-$key
bin=$prefix/bin/criu

check_kernel() {
    local out
    out=$("$bin" check 2>&1) || die "criu check fails on kernel $(uname -r): $out"
}

mkdir -p "$CACHE"
if [[ -f $prefix/.complete ]]; then
    check_kernel
    echo "$bin"
    exit 0
fi
exec 9>"$CACHE/criu.lock"
flock -w 900 9 || die "another build holds $CACHE/criu.lock"
if [[ -f $prefix/.complete ]]; then
    check_kernel
    echo "$bin"
    exit 0
fi

# The first Debian mirror of the host's sources that serves a release suite
# (not -security or -updates), in one-line or deb822 format.
host_mirror() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
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
                     if (uris !~ /debian/) next
                     n = split(suites, s, /[ \t]+/)
                     for (j = 1; j <= n; j++) if (s[j] != "" && s[j] !~ /-/) { split(uris, u, /[ \t]+/); print u[1]; exit }
                 }' "$f"
            ;;
        *)
            awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                               if ($i ~ /debian/ && $(i + 1) !~ /-/) { print $i; exit } }' "$f"
            ;;
        esac
    done | head -n 1
}

APT_DIR=$CACHE/criu-src/apt
mkdir -p "$APT_DIR"/{etc/apt.conf.d,etc/preferences.d,etc/sources.list.d,lists/partial,archives/partial}
touch "$APT_DIR/status"
mirror=$(host_mirror)
[[ -n $mirror ]] || die "no Debian mirror found in the host's apt sources"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[[ -r $keyring ]] || die "$keyring missing (debian-archive-keyring)"
echo "deb-src [signed-by=$keyring] $mirror unstable main" >"$APT_DIR/etc/sources.list"
# Dir::Etc::Parts points into the private directory, so nothing of /etc/apt
# applies. The index signature is checked as always; Valid-Until is not,
# because the mirror's snapshot of unstable can be older than its validity
# window on this machine's clock, and the tarball's hash is pinned above.
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
Acquire::Check-Valid-Until "false";
EOF
export APT_CONFIG=$APT_DIR/apt.conf

echo "criu.sh: apt-get update (deb-src unstable from $mirror)" >&2
apt-get -q update >&2 || die "apt-get update of the private unstable source index failed"

work=$(mktemp -d "$CACHE/criu-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
chmod 0755 "$work" # apt's download user may write into it
# apt-get source --print-uris lists each file of the source package as
#   'URI' NAME SIZE SHA256:HASH
uris=$(cd "$work" && apt-get -q source --print-uris "criu=$DEBIAN_VERSION" 2>/dev/null) ||
    die "source package criu $DEBIAN_VERSION not found in unstable's index"
line=$(grep -F " $ORIG " <<<"$uris") || die "$ORIG is not part of source package criu $DEBIAN_VERSION"
uri=$(awk '{ gsub(/'"'"'/, "", $1); print $1 }' <<<"$line")
hash=$(awk '{ print $4 }' <<<"$line")
[[ $hash == "SHA256:$ORIG_SHA256" ]] || die "unstable's index lists $ORIG as $hash, not the pinned SHA256:$ORIG_SHA256"
echo "criu.sh: downloading $uri" >&2
/usr/lib/apt/apt-helper download-file "$uri" "$work/$ORIG" "$hash" >&2 || die "download of $uri failed"
echo "$ORIG_SHA256  $work/$ORIG" | sha256sum -c --quiet - || die "$ORIG does not match its pinned hash"

tar -xf "$work/$ORIG" -C "$work"
src=$work/criu-$VERSION
[[ -d $src ]] || die "$ORIG did not unpack to criu-$VERSION"
echo "criu.sh: building criu $VERSION in $src (log: $work/build.log)" >&2
if ! (cd "$src" && nice -n 10 $RECIPE) >"$work/build.log" 2>&1; then
    tail -n 30 "$work/build.log" >&2
    die "build of criu $VERSION failed"
fi

tmp=$prefix.tmp.$$
rm -rf "$tmp"
mkdir -p "$tmp/bin"
install -m 0755 "$src/criu/criu" "$tmp/bin/criu"
echo "$inputs" >"$tmp/inputs"
"$tmp/bin/criu" --version >/dev/null 2>&1 || { rm -rf "$tmp"; die "the built criu does not run"; }
rm -rf "$prefix"
mv "$tmp" "$prefix"
touch "$prefix/.complete"
# The source index (70 MB) is needed again only for a new build.
rm -rf "$APT_DIR/lists" "$APT_DIR"/*.bin
# Builds of other inputs, made by this script.
for old in "$CACHE"/criu-*-*/.complete; do
    d=$(dirname "$old")
    [[ $d == "$prefix" ]] || rm -rf "$d"
done
check_kernel
echo "$bin"
