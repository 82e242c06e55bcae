#!/usr/bin/env python3
"""Lifecycle benchmark: berth vs runc vs crun on one busybox bundle running /bin/true.

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
    if seccomp_profile:
        with open(seccomp_profile) as f:
            cfg["linux"]["seccomp"] = json.load(f)
    with open(os.path.join(root, "config.json"), "w") as f:
        json.dump(cfg, f)


def timed(cmd):
    """Run cmd; return (seconds, ru_maxrss KiB, exit status)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {err.strip()}")
    return dt, ru.ru_maxrss


def bench(runtimes, bundle, iterations, warmup):
    res = {name: {"lifecycle": [], "run": [], "rss": []} for name in runtimes}
    for i in range(warmup + iterations):
        for name, binary in runtimes.items():
            state = f"/run/berth-bench/{name}"
            cid = f"bench-{name}-{i}"
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


def table(res, title):
    ref = res.get("crun")
    ref_l = statistics.median(ref["lifecycle"]) if ref else None
    ref_r = statistics.median(ref["run"]) if ref else None
    lines = [f"### {title}", "",
             "| runtime | create+start+delete ms (median) | ratio to crun | run ms (median) | ratio to crun | create peak RSS MB |",
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
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--variants", default="plain,resources")
    ap.add_argument("--seccomp", help="add this OCI seccomp profile (JSON) to every bundle")
    ap.add_argument("--busybox", default="/bin/busybox")
    a = ap.parse_args()
    runtimes = {"berth": a.berth}
    if a.runc:
        runtimes["runc"] = a.runc
    if a.crun:
        runtimes["crun"] = a.crun
    work = tempfile.mkdtemp(prefix="berth-bench-")
    try:
        for variant in a.variants.split(","):
            bundle = os.path.join(work, variant)
            os.makedirs(bundle)
            make_bundle(bundle, a.busybox, variant, a.seccomp)
            res = bench(runtimes, bundle, a.iterations, a.warmup)
            extra = " + seccomp profile" if a.seccomp else ""
            print(table(res, f"{variant} bundle{extra}, {a.iterations} iterations, /bin/true"))
            print()
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree("/run/berth-bench", ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
