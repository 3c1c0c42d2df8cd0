#!/usr/bin/env python3
"""bench/train: lighten yolov3-tiny-aix2022 (channel pruning, the G1
backbone substitution or a depthwise-separable factorization), fine-tune it
with qsim-train by distillation from the original, and measure mAP@0.5
before and after (see README.md).

The 58-image CAPP subset is split by bench/common.py capp_halves (the rule
every bench script uses): the first half by name (29 close-range shots)
trains (images and their labels), the second half (29 long-range shots)
evaluates; no evaluation image is ever seen by qsim-train. mAP is
qsim-run --eval (Darknet's `detector map` rules) on the held-out half, and on all 58 for comparison with
bench/lighten (that figure includes the training images).
"""
import argparse, csv, os, re, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import *


def check(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("failed: %s\n%s%s" % (" ".join(cmd), p.stdout, p.stderr))
    return p


def map50(model, images, threads):
    out = check([tool("qsim-run"), model, "--image", images, "--eval", images,
                 "--threads", str(threads), "-q"]).stdout
    return float(re.search(r"mAP@0.50 = [0-9.]+ \(([0-9.]+) %\)", out).group(1))


def macs_params(model):
    out = check([tool("qsim-opt"), "--qsim-print-stats", model, "-o", "/dev/null"]).stdout
    total = re.search(r"^total\s+(\d+)\s+(\d+)", out, re.M)
    return int(total.group(2)), int(total.group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--lighten", choices=("prune", "backbone", "dwsep"), default="prune",
                    help="prune: --qsim-prune ratio=--prune-ratio; backbone: G1, "
                    "MobileNetV2-YOLOv3-Nano layers 0-57 (COCO weights) in place of "
                    "layers 0-12; dwsep: depthwise-separable factorization of the "
                    "3 heaviest convolutions")
    ap.add_argument("--prune-ratio", type=float, default=0.3)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=0.0001)
    ap.add_argument("--optimizer", default="adam")
    ap.add_argument("--schedule", default="cosine")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-labels", action="store_true",
                    help="distillation only (no YOLO loss on the labels)")
    ap.add_argument("--keep", help="keep the models and the log in this folder")
    a = ap.parse_args()
    tmp = a.keep or tempfile.mkdtemp()
    os.makedirs(tmp, exist_ok=True)
    capp = os.path.join(DATA, "capp-aix-subset")
    cfg = os.path.join(MODELS, "darknet", "yolov3-tiny-aix2022.cfg")
    weights = os.path.join(MODELS, "weights", "yolov3-tiny-aix2022.weights")
    train, held = capp_halves(capp, tempfile.mkdtemp(dir=tmp))
    n = len([f for f in os.listdir(capp) if f.endswith(".jpg")])
    aix = os.path.join(tmp, "aix.mlirbc")
    lightened = os.path.join(tmp, "lightened.mlirbc")
    tuned = os.path.join(tmp, "tuned.mlirbc")
    log = os.path.join(tmp, "train.csv")
    check([tool("qsim-translate"), "--import-darknet", cfg, "--weights", weights, "-o", aix])
    if a.lighten == "prune":
        step = "--qsim-prune=ratio=%g report=false" % a.prune_ratio
        what = "pruned %d%%" % round(100 * a.prune_ratio)
    elif a.lighten == "backbone":
        nano = os.path.join(MODELS, "darknet", "MobileNetV2-YOLOv3-Nano-coco.cfg")
        nano_w = os.path.join(MODELS, "weights", "MobileNetV2-YOLOv3-Nano-coco.weights")
        step = ("--qsim-substitute-backbone=with=%s,weights=%s cut=0:12 take=0:57"
                % (nano, nano_w))
        what = "G1 Nano backbone"
    else:
        step = "--qsim-factorize-conv=method=depthwise-separable top=3"
        what = "depthwise-separable top 3"
    check([tool("qsim-opt"), aix, step, "-o", lightened])

    cmd = [tool("qsim-train"), lightened, "--teacher", aix, "--images", train,
           "--steps", str(a.steps), "--batch", str(a.batch), "--lr", str(a.lr),
           "--optimizer", a.optimizer, "--schedule", a.schedule,
           "--threads", str(a.threads), "--log", log, "-q", "-o", tuned]
    if not a.no_labels:
        cmd[4:4] = ["--labels", train]
    print("$ " + " ".join(os.path.relpath(c) if os.path.exists(c) else c for c in cmd))
    start = time.time()
    out = check(cmd).stdout
    wall = time.time() - start
    print(out.rstrip())
    with open(log) as f:
        rows = list(csv.DictReader(f))
    print("training wall time %.0f s (%d steps, batch %d, %d threads: %.3f steps/s, "
          "median step %.2f s: data %.2f, teacher %.2f, forward %.2f, backward %.2f)"
          % (wall, len(rows), a.batch, a.threads, len(rows) / wall,
             median([float(r["seconds"]) for r in rows]),
             median([float(r["data"]) for r in rows]),
             median([float(r["teacher"]) for r in rows]),
             median([float(r["forward"]) for r in rows]),
             median([float(r["backward"]) for r in rows])))
    k = max(1, len(rows) // 10)
    print("loss (mean over %d-step windows): %s" % (k, " ".join(
        "%.3g" % (sum(float(r["loss"]) for r in rows[i:i + k]) / len(rows[i:i + k]))
        for i in range(0, len(rows), k))))

    print("\nmAP@0.5 (%%): held-out = the %d CAPP images qsim-train never saw; all = the %d"
          % (n - n // 2, n))
    print("%-42s %10s %8s %10s %8s" % ("model", "MACs", "params", "held-out", "all"))
    for name, model in (("original", aix),
                        ("%s (no training)" % what, lightened),
                        ("%s + qsim-train %d steps" % (what, len(rows)), tuned)):
        macs, params = macs_params(model)
        print("%-42s %9.1fM %7.1fK %10.2f %8.2f" % (
            name, macs / 1e6, params / 1e3, map50(model, held, a.threads),
            map50(model, capp, a.threads)))


if __name__ == "__main__":
    main()
