#!/usr/bin/env bash
# Runs the conformance suite against several runtimes and prints a side-by-side table.
#
#   conformance/compare.sh /path/to/berth /usr/sbin/runc /usr/bin/crun
#   conformance/compare.sh        # berth built from this checkout, Debian 12's runc and
#                                 # crun, and runc 1.3 / crun 1.28 from Debian unstable
#                                 # (scripts/unstable-peers.sh)
#
# Each column is named after the runtime and its version (runc-1.1.5+ds1, runc-1.3.6+ds1).
#
# Each runtime runs inside its own mount namespace (`unshare -m`) in which the cgroup2
# mount at /sys/fs/cgroup/unified is removed: crun refuses a hybrid v1/v2 host, so every
# runtime is compared on the same pure-v1 view. The host's mounts are not changed.
#
# Environment:
#   BERTH_CONFORMANCE_BIN  use this runner (and the runtimetest beside it) instead of building
#   FILTER                 passed as --filter to every run
#   OUT                    directory for the per-runtime TAP files (default: a temp dir)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
target=x86_64-unknown-linux-gnu
if [ $# -eq 0 ]; then
    (cd "$here/.." && cargo build -q -p berth)
    debug_dir="${CARGO_TARGET_DIR:-$(cd "$here" && cargo metadata --format-version 1 --no-deps | sed 's/.*"target_directory":"\([^"]*\)".*/\1/')}/debug"
    unstable="$(bash "$here/../scripts/unstable-peers.sh")"
    set -- "$debug_dir/berth" /usr/sbin/runc /usr/bin/crun "$unstable/bin/runc" "$unstable/bin/crun"
fi

if [ -z "${BERTH_CONFORMANCE_BIN:-}" ]; then
    # runtimetest is copied into busybox root filesystems, so it must be static.
    (cd "$here" && RUSTFLAGS="-C target-feature=+crt-static" \
        cargo build -j2 -q -p berth-conformance --target "$target")
    target_dir="${CARGO_TARGET_DIR:-$(cd "$here" && cargo metadata --format-version 1 --no-deps | sed 's/.*"target_directory":"\([^"]*\)".*/\1/')}"
    BERTH_CONFORMANCE_BIN="$target_dir/$target/debug/berth-conformance"
fi
[ -x "$BERTH_CONFORMANCE_BIN" ] || { echo "$0: runner $BERTH_CONFORMANCE_BIN not found" >&2; exit 2; }

out="${OUT:-$(mktemp -d /tmp/berth-compare.XXXXXX)}"
mkdir -p "$out"
filter_args=()
[ -n "${FILTER:-}" ] && filter_args=(--filter "$FILTER")

names=()
status=0
for rt in "$@"; do
    path="$(command -v "$rt" || true)"
    [ -n "$path" ] || { echo "$0: runtime $rt not found" >&2; exit 2; }
    version="$("$path" --version 2>/dev/null | awk 'NR == 1 { print $NF }')"
    name="$(basename "$path")${version:+-$version}"
    case " ${names[*]} " in *" $name "*) echo "$0: $name given twice" >&2; exit 2 ;; esac
    names+=("$name")
    echo "== $name ($path)" >&2
    # A private tmpfs over the emptied mount point: crun still finds a directory there
    # and writes into it, which must not land in the host's /sys/fs/cgroup tmpfs.
    unshare -m sh -c 'umount /sys/fs/cgroup/unified 2>/dev/null &&
        mount -t tmpfs -o size=1m,mode=755 tmpfs /sys/fs/cgroup/unified; exec "$@"' sh \
        "$BERTH_CONFORMANCE_BIN" --runtime "$path" "${filter_args[@]}" >"$out/$name.tap" || status=1
    tail -n 1 "$out/$name.tap" >&2
done

# Table: one row per case, one column per runtime (ok / FAIL / SKIP).
awk -v names="${names[*]}" '
    BEGIN {
        n = split(names, col, " ")
        for (i = 1; i <= n; i++) { colidx[col[i]] = i; w[i] = length(col[i]) < 8 ? 8 : length(col[i]) }
    }
    FNR == 1 { file = FILENAME; sub(/.*\//, "", file); sub(/\.tap$/, "", file); file = colidx[file] }
    /^(not )?ok [0-9]+ - / {
        line = $0
        res = "ok"
        if (line ~ /^not ok/) res = "FAIL"
        else if (line ~ /# SKIP/) res = "SKIP"
        sub(/^(not )?ok [0-9]+ - /, "", line)
        sub(/ # .*$/, "", line)
        if (!(line in seen)) { seen[line] = 1; order[++rows] = line }
        cell[line, file] = res
        if (length(line) > width) width = length(line)
    }
    /^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$/ { total[file] = $0 }
    END {
        if (width > 100) width = 100
        printf "%-" width "s", "case"
        for (i = 1; i <= n; i++) printf "  %-" w[i] "s", col[i]
        printf "\n"
        for (r = 1; r <= rows; r++) {
            printf "%-" width "s", substr(order[r], 1, width)
            for (i = 1; i <= n; i++) {
                c = cell[order[r], i]
                printf "  %-" w[i] "s", (c == "" ? "-" : c)
            }
            printf "\n"
        }
        printf "\n"
        for (i = 1; i <= n; i++) printf "%s: %s\n", col[i], total[i]
    }
' $(for n in "${names[@]}"; do printf "%s/%s.tap " "$out" "$n"; done)
echo "TAP files: $out" >&2
exit $status
