#!/usr/bin/env python3
"""qsim-run's forward time per model: fp32 and int8, 1 and 2 threads, on an
idle machine and beside a second `qsim-run --threads 2` (issue 17).

For each model the configurations are measured in interleaved rounds (one
qsim-run --repeat N per configuration and round; the median of the rounds'
medians is reported), first with the machine otherwise idle, then with a
second qsim-run of the same model and precision looping on 2 threads. The
"2t spin" column is the 2-thread run beside the second one with
OMP_WAIT_POLICY=active in both (libgomp's spinning waits, qsim's previous
default) for comparison with the passive default.

Ratios: int8/fp32 at the same threads (< 1: int8 faster), 2t/1t on the idle
machine and beside the second run (issue 17's goal: <= 1.2 beside it).

Run it while holding the shared CPU lock, e.g.
  flock /tmp/qsim-cpu.lock python3 bench/speed/run.py
"""
import argparse, os, subprocess, sys, tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import DATA, MODELS, forward_ms, median, run, tool  # noqa: E402

# (label, cfg, weights or None for synthetic weights)
MODEL_SET = [
    ("yolov3-tiny-aix2022 (320)", "yolov3-tiny-aix2022", "yolov3-tiny-aix2022"),
    ("yolov3-tiny synthetic (416)", "yolov3-tiny", None),
    ("yolov4-tiny-aix2023 (256)", "yolov4-tiny-aix2023", "yolov4-tiny-aix2023"),
    ("yolo-fastest-1.1-xl (320)", "yolo-fastest-1.1-xl", "yolo-fastest-1.1-xl"),
]


def calibration_dir():
    for sub in ("coco128/images/train2017", "coco128/images", "coco128"):
        d = os.path.join(DATA, sub)
        if os.path.isdir(d) and any(f.endswith(".jpg") for f in os.listdir(d)):
            return d
    sys.exit("no coco128 images under %s (QSIM_DATA_DIR)" % DATA)


def prepare(tmp, cfg, weights, calib):
    """The float and all-int8 bytecode of a model (kept if already in tmp)."""
    src = os.path.join(MODELS, "darknet", cfg + ".cfg")
    f32 = os.path.join(tmp, cfg + "-f32.mlirbc")
    i8 = os.path.join(tmp, cfg + "-i8.mlirbc")
    if os.path.exists(f32) and os.path.exists(i8):
        return f32, i8
    load = [src] + (["--weights", os.path.join(MODELS, "weights", weights + ".weights")]
                    if weights else ["--random-weights", "1"])
    run([tool("qsim-run")] + load + ["--repeat", "1", "-q", "--save-model", f32])
    run([tool("qsim-run"), f32, "--mode", "int8", "--calib", calib, "--calib-images", "20",
         "--repeat", "1", "-q", "--save-model", i8])
    return f32, i8


def time_run(model, threads, repeat, env=None):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([tool("qsim-run"), model, "--repeat", str(repeat), "--threads", str(threads), "-q"],
                       capture_output=True, text=True, env=e)
    if p.returncode != 0:
        sys.exit("failed: %s\n%s" % (model, p.stderr))
    return forward_ms(p.stdout)


class Beside:
    """A second qsim-run --threads 2 on `model`, looping until stopped."""

    def __init__(self, model, env=None):
        e = dict(os.environ)
        e.update(env or {})
        loop = "while :; do \"$0\" \"$1\" --repeat 1000 --threads 2 -q >/dev/null || exit 1; done"
        self.p = subprocess.Popen(["sh", "-c", loop, tool("qsim-run"), model], env=e,
                                  start_new_session=True)

    def stop(self):
        os.killpg(self.p.pid, 15)
        self.p.wait()


def measure(model, rounds, repeat):
    """Medians (ms) of: 1t, 2t idle; 1t, 2t beside; 2t beside, both spinning."""
    spin = {"OMP_WAIT_POLICY": "active"}
    idle = {1: [], 2: []}
    for _ in range(rounds):
        for t in (1, 2):
            idle[t].append(time_run(model, t, repeat))
    busy = {1: [], 2: [], "spin": []}
    second = Beside(model)
    try:
        time_run(model, 1, 3)  # let the second run reach its loop
        for _ in range(rounds):
            for t in (1, 2):
                busy[t].append(time_run(model, t, repeat))
    finally:
        second.stop()
    second = Beside(model, spin)
    try:
        time_run(model, 1, 3, spin)
        for _ in range(rounds):
            busy["spin"].append(time_run(model, 2, repeat, spin))
    finally:
        second.stop()
    return [median(idle[1]), median(idle[2]), median(busy[1]), median(busy[2]),
            median(busy["spin"])]


def measure_idle(models, rounds, repeat):
    """Idle medians (ms) per (precision, threads), fp32 and int8 interleaved
    within each round so both see the same machine state."""
    times = {(p, t): [] for p in models for t in (1, 2)}
    for _ in range(rounds):
        for t in (1, 2):
            for p, model in models.items():
                times[(p, t)].append(time_run(model, t, repeat))
    return {k: median(v) for k, v in times.items()}


def main_idle(a, models, calib, tmp):
    """--idle: the idle columns only, fp32 and int8 interleaved."""
    print("== qsim-run forward ms (idle), medians of %d interleaved rounds x %d runs"
          % (a.rounds, a.repeat))
    print("%-28s %9s %9s %9s %9s   %8s %8s" % (
        "model", "fp32 1t", "int8 1t", "fp32 2t", "int8 2t", "i8/fp32 1t", "2t"))
    for label, cfg, weights in models:
        f32, i8 = prepare(tmp, cfg, weights, calib)
        r = measure_idle({"fp32": f32, "int8": i8}, a.rounds, a.repeat)
        print("%-28s %9.2f %9.2f %9.2f %9.2f   %8.2f %8.2f" % (
            label, r[("fp32", 1)], r[("int8", 1)], r[("fp32", 2)], r[("int8", 2)],
            r[("int8", 1)] / r[("fp32", 1)], r[("int8", 2)] / r[("fp32", 2)]))
        sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--models", default="all", help="comma-separated cfg names, or all")
    ap.add_argument("--idle", action="store_true",
                    help="only the idle columns, fp32 and int8 interleaved round by round")
    ap.add_argument("--work", help="keep the prepared models in this directory and reuse "
                    "them (so a long measurement can be split into several short runs)")
    a = ap.parse_args()
    calib = calibration_dir()
    models = [m for m in MODEL_SET if a.models == "all" or m[1] in a.models.split(",")]
    if a.work:
        os.makedirs(a.work, exist_ok=True)
        return (main_idle if a.idle else main_full)(a, models, calib, a.work)
    with tempfile.TemporaryDirectory(prefix="qsim-speed-") as tmp:
        (main_idle if a.idle else main_full)(a, models, calib, tmp)


def main_full(a, models, calib, tmp):
    """Idle, beside a second run, and beside it with spinning waits."""
    print("== qsim-run forward ms, medians of %d interleaved rounds x %d runs" % (a.rounds, a.repeat))
    print("%-28s %-5s %8s %8s %9s %9s %9s   %6s %6s %8s" % (
        "model", "prec", "1t idle", "2t idle", "1t beside", "2t beside", "2t spin",
        "2t/1t", "beside", "i8/fp32"))
    for label, cfg, weights in models:
        f32, i8 = prepare(tmp, cfg, weights, calib)
        res = {}
        for prec, model in (("fp32", f32), ("int8", i8)):
            res[prec] = measure(model, a.rounds, a.repeat)
        for prec in ("fp32", "int8"):
            r = res[prec]
            print("%-28s %-5s %8.2f %8.2f %9.2f %9.2f %9.2f   %6.2f %6.2f %8s" % (
                label, prec, r[0], r[1], r[2], r[3], r[4], r[1] / r[0], r[3] / r[2],
                "%.2f/%.2f" % (res["int8"][1] / res["fp32"][1], res["int8"][0] / res["fp32"][0])
                if prec == "int8" else ""))
        sys.stdout.flush()
    print("2t/1t: idle 2-thread / 1-thread time; beside: the same beside a second run "
          "(goal <= 1.2); i8/fp32: int8 / fp32 time at 2 / 1 threads (goal <= 1)")


if __name__ == "__main__":
    main()
