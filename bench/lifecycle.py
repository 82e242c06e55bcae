#!/usr/bin/env python3
"""Lifecycle benchmark: berth vs runc vs crun on one busybox bundle running /bin/true.

runc and crun are Debian 12's; --runc-new/--crun-new add fresher ones (runc 1.3
and crun 1.28 from Debian unstable, see scripts/unstable-peers.sh) as more rows.
Rows are named with each runtime's version; ratios are to Debian 12's crun.

Times, interleaved in one run (round-robin per iteration so load drifts hit every
runtime alike):
  * create + start + delete -f  (three commands, the way containerd drives a runtime)
  * run                          (one command, foreground, waits for the exit)
and records the peak RSS of the `create` process (ru_maxrss from wait4).

Run as root through bench/lifecycle.sh, which puts every runtime under the same
cgroup setup (crun refuses this host's hybrid layout).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

RESOURCES = {
    "memory": {"limit": 256 * 1024 * 1024},
    "cpu": {"shares": 512, "quota": 50000, "period": 100000},
    "pids": {"limit": 256},
}


def make_bundle(root, busybox, variant, seccomp_profile):
    rootfs = os.path.join(root, "rootfs")
    os.makedirs(os.path.join(rootfs, "bin"))
    shutil.copy(busybox, os.path.join(rootfs, "bin", "busybox"))
    for applet in ("sh", "true"):
        os.symlink("busybox", os.path.join(rootfs, "bin", applet))
    for d in ("proc", "sys", "dev", "tmp", "etc"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    subprocess.run(["runc", "spec", "--bundle", root], check=True)
    with open(os.path.join(root, "config.json")) as f:
        cfg = json.load(f)
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["/bin/true"]
    if variant == "resources":
        cfg["linux"].setdefault("resources", {}).update(RESOURCES)
    if variant == "ptrace":
        # A process that may trace others: berth runs from a protected copy
        # of its binary (see runtime/src/exe_seal.rs); this prices that.
        for k in ("bounding", "effective", "permitted"):
            cfg["process"]["capabilities"][k].append("CAP_SYS_PTRACE")
    if seccomp_profile:
        with open(seccomp_profile) as f:
            cfg["linux"]["seccomp"] = json.load(f)
    with open(os.path.join(root, "config.json"), "w") as f:
        json.dump(cfg, f)


SPAWN = None  # bench/spawn.c, compiled by lifecycle.sh


def timed(cmd):
    """Run cmd through the small `spawn` launcher; return (seconds, peak RSS KiB).

    The launcher forks from a ~1 MB process, so ru_maxrss is the command's own
    (a fork of this Python process would report Python's RSS). stderr goes to a
    file, not a pipe: after `create` the container's init holds the runtime's
    stdio, so reading a pipe to EOF would wait for the container."""
    with tempfile.TemporaryFile() as errf, tempfile.NamedTemporaryFile() as out:
        subprocess.run([SPAWN, out.name] + cmd, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=errf, check=True)
        ns, rss, code = (int(x) for x in open(out.name).read().split())
        if code != 0:
            errf.seek(0)
            err = errf.read().decode(errors="replace")
            raise RuntimeError(f"{' '.join(cmd)} failed ({code}): {err.strip()}")
    return ns / 1e9, rss


STATE = f"/run/berth-bench-{os.getpid()}"


def bench(runtimes, bundle, iterations, warmup, variant):
    res = {name: {"lifecycle": [], "run": [], "rss": []} for name in runtimes}
    for i in range(warmup + iterations):
        for name, binary in runtimes.items():
            state = f"{STATE}/{name}"
            cid = f"bench-{os.getpid()}-{variant}-{i}"
            base = [binary, "--root", state]
            t_create, rss = timed(base + ["create", "--bundle", bundle, cid])
            t_start, _ = timed(base + ["start", cid])
            t_delete, _ = timed(base + ["delete", "-f", cid])
            t_run, _ = timed(base + ["run", "--bundle", bundle, cid + "r"])
            if i >= warmup:
                res[name]["lifecycle"].append((t_create + t_start + t_delete) * 1000)
                res[name]["run"].append(t_run * 1000)
                res[name]["rss"].append(rss / 1024)
    return res


def table(res, title, ref_name):
    ref = res.get(ref_name)
    ref_l = statistics.median(ref["lifecycle"]) if ref else None
    ref_r = statistics.median(ref["run"]) if ref else None
    lines = [f"### {title}", "",
             f"| runtime | create+start+delete ms (median) | ratio to {ref_name} | run ms (median) | ratio to {ref_name} | create peak RSS MB |",
             "|---|---|---|---|---|---|"]
    for name, r in res.items():
        l = statistics.median(r["lifecycle"])
        rn = statistics.median(r["run"])
        rl = f"{l / ref_l:.2f}x" if ref_l else "-"
        rr = f"{rn / ref_r:.2f}x" if ref_r else "-"
        lines.append(f"| {name} | {l:.1f} | {rl} | {rn:.1f} | {rr} | {max(r['rss']):.1f} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--berth", required=True)
    ap.add_argument("--runc", default=shutil.which("runc"))
    ap.add_argument("--crun", default=shutil.which("crun"))
    ap.add_argument("--runc-new", help="a fresher runc (another row)")
    ap.add_argument("--crun-new", help="a fresher crun (another row)")
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--variants", default="plain,resources")
    ap.add_argument("--seccomp", help="add this OCI seccomp profile (JSON) to every bundle")
    ap.add_argument("--busybox", default="/bin/busybox")
    ap.add_argument("--spawn", required=True, help="the compiled bench/spawn.c")
    a = ap.parse_args()
    global SPAWN
    SPAWN = a.spawn
    runtimes = {}
    for binary in (a.berth, a.runc, a.runc_new, a.crun, a.crun_new):
        if binary:
            name = labelled(binary)
            if name in runtimes:
                sys.exit(f"{binary}: {name} is given twice")
            runtimes[name] = binary
    ref_name = labelled(a.crun) if a.crun else None
    work = tempfile.mkdtemp(prefix="berth-bench-")
    try:
        for variant in a.variants.split(","):
            bundle = os.path.join(work, variant)
            os.makedirs(bundle)
            make_bundle(bundle, a.busybox, variant, a.seccomp)
            res = bench(runtimes, bundle, a.iterations, a.warmup, variant)
            extra = " + seccomp profile" if a.seccomp else ""
            print(table(res, f"{variant} bundle{extra}, {a.iterations} iterations, /bin/true", ref_name))
            print()
    finally:
        cleanup(runtimes)
        shutil.rmtree(work, ignore_errors=True)


def labelled(binary):
    """`NAME VERSION` of a runtime binary, from the first line of --version."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    first = out.splitlines()[0].split() if out.strip() else ["?"]
    return f"{os.path.basename(binary)} {first[-1]}"


def cleanup(runtimes):
    """Force-delete whatever a failed iteration left behind, then the state roots."""
    for name, binary in runtimes.items():
        state = f"{STATE}/{name}"
        if not os.path.isdir(state):
            continue
        for cid in os.listdir(state):
            subprocess.run([binary, "--root", state, "delete", "-f", cid],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shutil.rmtree(STATE, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
