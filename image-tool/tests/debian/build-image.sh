#!/bin/bash
# Build, once, the three-layer Debian 12 image the rootfs comparison test pulls, and
# print the directory that holds it:
#
#   DIR/layout/              OCI image layout, tag "deb" (gzip layers)
#   DIR/docker-archive.tar   the same image as `docker save` writes it (skopeo)
#   DIR/oci-archive.tar      the same image as an OCI archive (for `ctr images import`)
#   DIR/stage/{base,features,deletions}/  the trees the layers were made from
#
# Layers (all written by GNU tar in PAX format, so mtimes keep their nanoseconds):
#   base       debootstrap --variant=minbase bookworm, minus documentation
#   features   hardlinks across directories, setuid/setgid/sticky files and directories,
#              security.capability and user.* xattrs, fifos, character and block devices,
#              sparse files in GNU's PAX formats 0.0, 0.1 and 1.0 (not old GNU 'S'
#              entries, which umoci 0.4.7 refuses: "unknown typeflag"; berth-image's
#              tests/large_files.rs has them), a file of zero runs stored densely,
#              long names and link targets,
#              owners beyond the octal fields, and root/.berth-profile whose parent
#              root/ (0700 below) the layer does not list, nor its own root
#   deletions  whiteouts of a file, a directory and one name of a hardlinked file; an
#              opaque directory with new contents
#
# Both products are cached under ${BERTH_TEST_CACHE:-/var/cache/berth-test}, keyed by
# their inputs: the debootstrap tree by suite, variant, mirror, architecture and the
# debootstrap version; the image by that key and this script. Concurrent callers wait
# on a lock; nothing is renamed into place until it is complete.
set -euo pipefail
export LC_ALL=C
CACHE=${BERTH_TEST_CACHE:-/var/cache/berth-test}
SUITE=bookworm
VARIANT=minbase
MIRROR=${BERTH_DEBIAN_MIRROR:-http://deb.debian.org/debian}
ARCH=$(dpkg --print-architecture)
mkdir -p "$CACHE"

key() { sha256sum | cut -c1-16; }
boot_key=$(printf '%s\n' "$SUITE" "$VARIANT" "$MIRROR" "$ARCH" \
    "$(dpkg-query -W -f='${Version}' debootstrap)" | key)
image_key=$( (echo "$boot_key"; cat "$0") | key)
ROOTFS=$CACHE/debootstrap-$SUITE-$VARIANT-$boot_key
OUT=$CACHE/debian-image-$image_key

exec 9>"$CACHE/debian-image.lock"
flock 9

if [ ! -d "$ROOTFS" ]; then
    rm -rf "$ROOTFS.tmp"
    timeout -k 10 1200 debootstrap --variant="$VARIANT" --arch="$ARCH" "$SUITE" \
        "$ROOTFS.tmp" "$MIRROR" >"$CACHE/debootstrap-$boot_key.log" 2>&1 || {
        tail -20 "$CACHE/debootstrap-$boot_key.log" >&2
        exit 1
    }
    rm -rf "$ROOTFS.tmp"/var/cache/apt/archives/*.deb "$ROOTFS.tmp"/var/lib/apt/lists/*_Packages
    mv "$ROOTFS.tmp" "$ROOTFS"
fi
if [ -f "$OUT/done" ]; then
    echo "$OUT"
    exit 0
fi
rm -rf "$OUT.tmp"
mkdir -p "$OUT.tmp/stage" "$OUT.tmp/layers"
T=$OUT.tmp
S=$T/stage

# --- base: the debootstrap tree without documentation (keeps the image small).
cp -a "$ROOTFS" "$S/base"
rm -rf "$S/base/usr/share/doc"/* "$S/base/usr/share/man"/* "$S/base/usr/share/info"/* \
    "$S/base/usr/share/locale"/* "$S/base/var/cache/debconf"/*-old
# A file whose mtime has nanoseconds in any case.
touch -d '2023-01-02 03:04:05.123456789' "$S/base/etc/debian_version"

# --- features
F=$S/features
mkdir -p "$F"/{usr/local/bin,opt/berth/bin,var/lib/berth,var/lib/berth-sparse,etc/berth,srv,dev,run/berth}
printf '#!/bin/sh\necho tool\n' >"$F/usr/local/bin/tool"
chmod 0755 "$F/usr/local/bin/tool"
ln "$F/usr/local/bin/tool" "$F/opt/berth/bin/tool-hard"
ln "$F/usr/local/bin/tool" "$F/var/lib/berth/tool-hard2"
echo data >"$F/etc/berth/linked"
ln "$F/etc/berth/linked" "$F/srv/linked-from-srv"
printf 'suid\n' >"$F/usr/local/bin/suid" && chmod 4755 "$F/usr/local/bin/suid"
printf 'sgid\n' >"$F/usr/local/bin/sgid" && chown 0:42 "$F/usr/local/bin/sgid" && chmod 2755 "$F/usr/local/bin/sgid"
printf 'both\n' >"$F/usr/local/bin/suid-sgid" && chown 1000:1000 "$F/usr/local/bin/suid-sgid" && chmod 6750 "$F/usr/local/bin/suid-sgid"
mkdir "$F/srv/shared" && chown 1000:1000 "$F/srv/shared" && chmod 2775 "$F/srv/shared"
echo in-shared >"$F/srv/shared/file" && chown 1000:1000 "$F/srv/shared/file"
mkdir "$F/srv/drop" && chmod 1777 "$F/srv/drop"
mkdir "$F/srv/drop-sgid" && chown 0:100 "$F/srv/drop-sgid" && chmod 3775 "$F/srv/drop-sgid"
printf 'sticky file\n' >"$F/srv/sticky-file" && chmod 1644 "$F/srv/sticky-file"
cp /usr/sbin/setcap "$F/usr/local/bin/netraw"
setcap cap_net_raw,cap_net_bind_service+ep "$F/usr/local/bin/netraw"
echo xattrs >"$F/etc/berth/xattrs"
python3 - "$F" <<'EOF'
import os, sys
f = sys.argv[1]
os.setxattr(f + "/etc/berth/xattrs", "user.berth.comment", b"a comment")
os.setxattr(f + "/etc/berth/xattrs", "user.berth.binary", bytes(range(256)))
os.setxattr(f + "/etc/berth", "user.berth.dir", b"on a directory")
os.setxattr(f + "/srv/shared", "user.berth.empty", b"")
EOF
mkfifo -m 0620 "$F/srv/fifo" && chown 1000:1000 "$F/srv/fifo"
mkfifo -m 0600 "$F/run/berth/fifo"
mknod -m 0666 "$F/dev/berth-null" c 1 3
mknod -m 0660 "$F/dev/berth-loop" b 7 200 && chown 0:6 "$F/dev/berth-loop"
mknod -m 0600 "$F/dev/berth-big" c 511 1048575
# Sparse files: data blocks of 0x5a at chosen offsets, holes elsewhere.
sparse() { # FILE SIZE OFFSET...
    local file=$1 size=$2
    shift 2
    truncate -s "$size" "$file"
    for off in "$@"; do
        head -c 12288 /dev/zero | tr '\0' 'Z' | dd of="$file" bs=4096 seek=$((off / 4096)) conv=notrunc status=none
    done
}
for v in pax00 pax01 pax10; do
    sparse "$F/var/lib/berth-sparse/$v" 16M 0 4194304 16764928 # data at start, middle, end
    sparse "$F/var/lib/berth-sparse/$v-lead" 8M 6291456        # leading and trailing holes
done
truncate -s 8M "$F/var/lib/berth-sparse/all-hole"
# Zero runs stored densely in the tar (not a sparse file on disk).
{ head -c 1048576 /dev/zero; echo middle; head -c 2097152 /dev/zero; echo end; } >"$F/var/lib/berth/zeros"
# Names and targets beyond ustar's 100 bytes, non-ASCII names, big owners.
long=$F/opt/berth/a-directory-with-a-rather-long-name-to-push-paths-past-one-hundred-bytes
mkdir -p "$long/and-then-some-more-characters-in-a-subdirectory"
echo long >"$long/and-then-some-more-characters-in-a-subdirectory/file-with-a-long-name-too.txt"
ln -s "/opt/berth/a-directory-with-a-rather-long-name-to-push-paths-past-one-hundred-bytes/and-then-some-more-characters-in-a-subdirectory/file-with-a-long-name-too.txt" \
    "$F/opt/berth/long-link"
echo grüße >"$F/opt/berth/grüße-ünïcode" && chown 3000000:3000001 "$F/opt/berth/grüße-ünïcode"
ln -s ../usr/local/bin/tool "$F/opt/berth/rel-link"
: >"$F/opt/berth/empty"
# An implicit parent: root/ (0700 in the base) is not listed, nor is the layer root.
mkdir -p "$F/root" && echo 'export BERTH=1' >"$F/root/.berth-profile"
# Nanosecond mtimes everywhere in this layer (directories last, after their contents).
find "$F" -mindepth 1 ! -type d -exec touch -h -d '2024-02-03 04:05:06.987654321' {} +
find "$F" -mindepth 1 -type d -exec touch -d '2024-02-03 04:05:07.000000001' {} +
touch -d '2024-02-03 04:05:08.5' "$F/srv/shared"

# --- deletions
D=$S/deletions
mkdir -p "$D/etc/berth" "$D/usr/share" "$D/opt/berth/bin" "$D/var/lib/berth"
: >"$D/etc/.wh.motd"
: >"$D/usr/share/.wh.doc"
: >"$D/opt/berth/bin/.wh.tool-hard"
: >"$D/etc/berth/.wh..wh..opq"
echo replaced >"$D/etc/berth/after-opaque"
python3 -c 'import os,sys; os.setxattr(sys.argv[1], "user.berth.dir", b"replaced")' "$D/etc/berth"
echo appended >"$D/var/lib/berth/new"
find "$D" -mindepth 1 -exec touch -h -d '2024-03-04 05:06:07.222333444' {} +
touch -d '2021-01-01 00:00:00.000000007' "$D/etc" "$D/usr" "$D/usr/share" "$D/opt" "$D/var"

# --- layer tars. GNU tar writes one sparse format per archive; the features layer is
# cut from several archives joined with --concatenate.
TAR=(tar --numeric-owner --xattrs --xattrs-include='*' --sort=name)
"${TAR[@]}" --format=pax -C "$S/base" -cf "$T/layers/base.tar" .
(
    cd "$F"
    find . -mindepth 1 ! -path './var/lib/berth-sparse/*' ! -path ./root \
        | sort >"$T/features.list"
)
"${TAR[@]}" --format=pax --no-recursion -C "$F" -cf "$T/layers/features.tar" -T "$T/features.list"
for v in 0.0:pax00 0.1:pax01 1.0:pax10; do
    "${TAR[@]}" --format=pax --sparse --sparse-version="${v%%:*}" -C "$F" \
        -cf "$T/part.tar" "./var/lib/berth-sparse/${v#*:}" "./var/lib/berth-sparse/${v#*:}-lead"
    tar -A -f "$T/layers/features.tar" "$T/part.tar"
done
"${TAR[@]}" --format=pax --sparse --sparse-version=1.0 -C "$F" -cf "$T/part.tar" ./var/lib/berth-sparse/all-hole
tar -A -f "$T/layers/features.tar" "$T/part.tar"
rm "$T/part.tar"
"${TAR[@]}" --format=pax -C "$D" -cf "$T/layers/deletions.tar" .

# --- the OCI layout
L=$T/layout
mkdir -p "$L/blobs/sha256"
echo '{"imageLayoutVersion":"1.0.0"}' >"$L/oci-layout"
put() { # FILE -> prints "sha256:HEX SIZE", the file moved into the layout
    local d s
    d=$(sha256sum "$1" | cut -d' ' -f1)
    s=$(stat -c %s "$1")
    mv "$1" "$L/blobs/sha256/$d"
    echo "sha256:$d $s"
}
diff_ids=() layers=()
for l in base features deletions; do
    diff_ids+=("sha256:$(sha256sum "$T/layers/$l.tar" | cut -d' ' -f1)")
    gzip -n -6 "$T/layers/$l.tar"
    layers+=("$(put "$T/layers/$l.tar.gz")")
done
jq -n -c --arg a "$ARCH" --args '{architecture: $a, os: "linux",
    config: {Cmd: ["/bin/sh"], Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
    rootfs: {type: "layers", diff_ids: $ARGS.positional}}' "${diff_ids[@]}" >"$T/config.json"
read -r cd cs < <(put "$T/config.json")
{
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
    printf '"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[' "$cd" "$cs"
    sep=
    for l in "${layers[@]}"; do
        read -r d s <<<"$l"
        printf '%s{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%s}' "$sep" "$d" "$s"
        sep=,
    done
    printf ']}'
} >"$T/manifest.json"
read -r md ms < <(put "$T/manifest.json")
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"deb"}}]}\n' \
    "$md" "$ms" >"$L/index.json"
skopeo copy -q "oci:$L:deb" "docker-archive:$T/docker-archive.tar:berth-test/debian:12"
skopeo copy -q "oci:$L:deb" "oci-archive:$T/oci-archive.tar:deb"
rm -rf "$T/layers" "$T/features.list"
touch "$T/done"
rm -rf "$OUT"
mv "$T" "$OUT"
echo "$OUT"
