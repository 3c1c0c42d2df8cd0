#!/usr/bin/env python3
"""bench/sweep: sharded evaluation of coco128 (see README.md).

yolov3-tiny-aix2022 (the Darknet cfg and weights of $QSIM_MODELS_DIR)
evaluated on the 128 coco128 images with their labels, through qsim-sweep in
1, 2, 4 and 8 shards, on the local backend and on a single-node Slurm
(slurmctld + slurmd on localhost, started by test/Sweep/Inputs/local-slurm.py
as the tests start it). Every task runs one thread; the machine's cores run
the tasks (local: --jobs = min(shards, cores); Slurm: one CPU per task on a
node of all the cores).

From the measurements: the per-image cost and the fixed cost of a shard
(two 1-shard runs, on 128 images and on 2: their difference is 126 images),
the Slurm overhead (Slurm wall time minus local wall time, same shards),
and the projected time of COCO val2017 (5000 images) on 8 and 64 nodes like
this one.

Local and Slurm runs of the same shard count run one after the other,
round after round (--rounds, medians quoted), all under one single-node
Slurm. With QSIM_BENCH_LOCK=FILE, every measured run holds flock(FILE) (one
run per hold: on a shared machine, nothing else runs during a measurement).
"""
import argparse, fcntl, json, os, re, shutil, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import *

HERE = os.path.dirname(os.path.abspath(__file__))
LOCAL_SLURM = os.path.join(HERE, "..", "..", "test", "Sweep", "Inputs", "local-slurm.py")


def locked(fn):
    """Runs fn() holding $QSIM_BENCH_LOCK when set."""
    path = os.environ.get("QSIM_BENCH_LOCK")
    if not path:
        return fn()
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            return fn()
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def sweep(a, work, shards, backend, max_images=0):
    """One qsim-sweep of the float model; returns (wall s, table row)."""
    cmd = [tool("qsim-sweep"), a.cfg, "--weights", a.weights, "--image", a.images,
           "--eval", a.labels, "--precision", "float", "--shards", str(shards),
           "--threads", "1", "--work", work]
    if max_images:
        cmd += ["--max-images", str(max_images)]
    if backend == "local":
        cmd += ["--jobs", str(min(shards, a.cores))]
    else:
        cmd += ["--backend", "slurm", "--cpus-per-task", "1", "--poll", str(a.poll)]
    shutil.rmtree(work, ignore_errors=True)

    def measure():
        t0 = time.time()
        p = subprocess.run(cmd, capture_output=True, text=True)
        return time.time() - t0, p
    wall, p = locked(measure)
    if p.returncode != 0:
        sys.exit("failed: %s\n%s%s" % (" ".join(cmd), p.stdout, p.stderr))
    row = p.stdout.splitlines()[1].split()
    return wall, {"map50": float(row[3]), "ms_per_image": float(row[5])}


def run_all(a, slurm):
    """Every run, round after round, local and Slurm interleaved (the same
    shard count one after the other); returns {backend: {key: [walls]}}."""
    res = {"local": {}, "slurm": {}}
    tmp = tempfile.mkdtemp(dir=a.tmp)
    for r in range(a.rounds):
        for shards in a.shards:
            for backend in ["local"] + (["slurm"] if slurm else []):
                wall, row = sweep(a, os.path.join(tmp, "%s%d" % (backend, shards)), shards, backend)
                res[backend].setdefault("s%d" % shards, []).append(dict(row, wall=wall))
                print("round %d %-6s %2d shards: %7.2f s wall, mAP@0.5 %.4f, forward %.2f ms/image"
                      % (r, backend, shards, wall, row["map50"], row["ms_per_image"]), flush=True)
        wall, row = sweep(a, os.path.join(tmp, "small"), 1, "local", max_images=2)
        res["local"].setdefault("small", []).append(dict(row, wall=wall))
        print("round %d local   1 shard, 2 images: %.2f s wall" % (r, wall), flush=True)
    return res


def medians(runs):
    """{key: [rows]} -> {key: {"wall": median, "map50": set of values}}."""
    return {k: {"wall": median([r["wall"] for r in v]),
                "maps": {round(r["map50"], 4) for r in v}} for k, v in runs.items()}


def report(a, res):
    local, slurm = medians(res["local"]), medians(res["slurm"])
    n = a.image_count
    per_image = (local["s1"]["wall"] - local["small"]["wall"]) / (n - 2)
    fixed = local["small"]["wall"] - 2 * per_image
    print("== medians of %d rounds" % a.rounds)
    print("== per-image cost %.3f s (one thread: decode, forward, NMS, candidates)" % per_image)
    print("== fixed cost of a shard %.2f s (process, import of cfg+weights, part, merge)" % fixed)
    print("%-7s %10s %10s %12s %12s" % ("shards", "local s", "model s", "slurm s", "slurm-local"))
    over = []
    for s in a.shards:
        k = "s%d" % s
        par = min(s, a.cores)
        model = -(-s // par) * fixed + n * per_image / par
        sl = slurm.get(k, {}).get("wall")
        if sl is not None:
            over.append(sl - local[k]["wall"])
        print("%-7d %10.1f %10.1f %12s %12s" % (
            s, local[k]["wall"], model, "%.1f" % sl if sl is not None else "-",
            "%.1f" % (sl - local[k]["wall"]) if sl is not None else "-"))
    maps = set()
    for k, r in list(local.items()) + list(slurm.items()):
        if k != "small":
            maps |= r["maps"]
    print("mAP@0.5 of every run with all images: %s" % ", ".join("%.4f" % m for m in sorted(maps)))
    slurm_over = median(over) if over else 0.0
    print("== projected COCO val2017 (5000 images), nodes like this one (%d cores, "
          "%d one-thread tasks per node, one shard per task)" % (a.cores, a.cores))
    for nodes in (8, 64):
        tasks = nodes * a.cores
        t = fixed + 5000 * per_image / tasks + slurm_over
        print("%3d nodes: %4d shards, %.0f images each: %.1f s (= %.2f s fixed + %.1f s "
              "images + %.1f s Slurm)" % (nodes, tasks, 5000 / tasks, t, fixed,
                                          5000 * per_image / tasks, slurm_over))
    print("one thread on one node: %.0f s" % (fixed + 5000 * per_image))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--poll", type=float, default=0.5, help="Slurm: seconds between squeue polls")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--skip-slurm", action="store_true")
    ap.add_argument("--inner", help=argparse.SUPPRESS)  # under local-slurm.py
    a = ap.parse_args()
    a.cfg = os.path.join(MODELS, "darknet", "yolov3-tiny-aix2022.cfg")
    a.weights = os.path.join(MODELS, "weights", "yolov3-tiny-aix2022.weights")
    a.images = os.path.join(DATA, "coco128", "images", "train2017")
    a.labels = os.path.join(DATA, "coco128", "labels", "train2017")
    for p in (a.cfg, a.weights, a.images, a.labels):
        if not os.path.exists(p):
            sys.exit("missing %s (set QSIM_MODELS_DIR / QSIM_DATA_DIR)" % p)
    a.cores = os.cpu_count() or 1
    a.image_count = len([f for f in os.listdir(a.images) if f.lower().endswith((".jpg", ".png", ".ppm"))])
    if a.inner:  # under local-slurm.py: SLURM_CONF is set
        a.tmp = os.path.dirname(a.inner)
        json.dump(run_all(a, True), open(a.inner, "w"))
        return
    a.tmp = tempfile.mkdtemp(prefix="qsim-bench-sweep-")
    print("== yolov3-tiny-aix2022 on coco128 (%d images), %d cores, one thread per task"
          % (a.image_count, a.cores), flush=True)
    if a.skip_slurm or not shutil.which("slurmctld"):
        if not a.skip_slurm:
            print("slurmctld not found: Slurm runs skipped (Debian slurm-wlm)")
        res = run_all(a, False)
    else:
        out = os.path.join(a.tmp, "runs.json")
        cmd = [sys.executable, LOCAL_SLURM, os.path.join(a.tmp, "slurm"), "--",
               sys.executable, os.path.abspath(__file__), "--inner", out,
               "--poll", str(a.poll), "--rounds", str(a.rounds),
               "--shards"] + [str(s) for s in a.shards]
        if subprocess.call(cmd) != 0:
            sys.exit("the runs under the single-node Slurm failed")
        res = json.load(open(out))
    report(a, res)
    shutil.rmtree(a.tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
