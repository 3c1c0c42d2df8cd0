#!/usr/bin/env python3
"""bench/lighten: the guideline on yolov3-tiny-aix2022 (see README.md).

1. The whole guideline as one pipeline (qsim-opt --qsim-lighten) under a
   mAP budget: its own table (SQNR, mAP, MACs, params, size, latency).
2. Each lightening step alone, at several strengths: MACs, parameters,
   weight size, mAP@0.5 on the CAPP subset, and the forward latency (median
   of --repeat runs, all variants measured in interleaved rounds in this
   invocation, 2 threads).

No fine-tuning anywhere: the mAP column is the cost before retraining.
"""
import argparse, os, re, subprocess, sys, tempfile
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import *


def check(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("failed: %s\n%s" % (" ".join(cmd), p.stderr))
    return p


def stats(model):
    out = check([tool("qsim-opt"), "--qsim-print-stats", model, "-o", "/dev/null"]).stdout
    total = re.search(r"^total\s+(\d+)\s+(\d+)", out, re.M)
    storage = re.search(r"weight bytes by storage:(.*)", out).group(1)
    size = sum(int(x) for x in re.findall(r"=(\d+)", storage))
    return int(total.group(2)), int(total.group(1)), size


def map50(model, capp):
    out = check([tool("qsim-run"), model, "--image", capp, "--eval", capp, "-q"]).stdout
    m = re.search(r"mAP@0.50 = [0-9.]+ \(([0-9.]+) %\)", out)
    return float(m.group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--map-budget", type=float, default=5.0,
                    help="max-map-drop of the pipeline run (points)")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp()
    coco = os.path.join(DATA, "coco128", "images", "train2017")
    capp = os.path.join(DATA, "capp-aix-subset")
    cfg = os.path.join(MODELS, "darknet", "yolov3-tiny-aix2022.cfg")
    nano = os.path.join(MODELS, "darknet", "MobileNetV2-YOLOv3-Nano-coco.cfg")
    nanoW = os.path.join(MODELS, "weights", "MobileNetV2-YOLOv3-Nano-coco.weights")
    base = os.path.join(tmp, "aix.mlirbc")
    check([tool("qsim-translate"), "--import-darknet", cfg, "--weights",
           os.path.join(MODELS, "weights", "yolov3-tiny-aix2022.weights"), "-o", base])

    # 1. The pipeline.
    print("== qsim-opt --qsim-lighten (max-map-drop=%g, calibration on coco128, mAP on the CAPP subset)" % a.map_budget)
    p = check([tool("qsim-opt"), base, "--qsim-lighten=max-map-drop=%g calib=%s calib-images=100 eval=%s latency-runs=%d threads=2"
               % (a.map_budget, coco, capp, a.repeat), "-o", os.path.join(tmp, "light.mlirbc")])
    print("\n".join(l for l in p.stderr.splitlines() if not l.startswith("calib")))
    sys.stdout.flush()

    # 2. Each step alone.
    variants = [("original", base, None)]
    def opt(name, passopt, quant=False):
        out = os.path.join(tmp, name.replace(" ", "_").replace("=", "") + ".mlirbc")
        check([tool("qsim-opt"), base, passopt, "-o", out])
        variants.append((name, out, None))
    opt("G1 backbone: Nano 0-57, cut 0-12", "--qsim-substitute-backbone=with=%s,weights=%s cut=0:12 take=0:57" % (nano, nanoW))
    for e in [0.9, 0.95, 0.975]:
        opt("G2 tucker2 top3 energy=%g" % e, "--qsim-factorize-conv=method=tucker2 top=3 energy=%g" % e)
    opt("G2 spatial-svd top3 energy=0.9", "--qsim-factorize-conv=method=spatial-svd top=3 energy=0.9")
    opt("G2 depthwise-separable top3", "--qsim-factorize-conv=method=depthwise-separable top=3")
    for r in [0.1, 0.2, 0.3]:
        opt("G5 prune channels ratio=%g" % r, "--qsim-prune=ratio=%g" % r)
    opt("G5 prune magnitude sparsity=0.5", "--qsim-prune=mode=magnitude sparsity=0.5")
    for mode in ["int8", "fp16"]:
        out = os.path.join(tmp, mode + ".mlirbc")
        check([tool("qsim-run"), base, "--mode", mode, "--calib", coco, "--calib-images", "100",
               "--repeat", "1", "--save-model", out])
        variants.append(("G%s %s (post-training)" % ("3" if mode == "int8" else "4", mode), out, None))

    lat = {name: [] for name, _, _ in variants}
    for _ in range(a.rounds):
        for name, model, _ in variants:
            lat[name].append(forward_ms(run([tool("qsim-run"), model, "--repeat", str(a.repeat), "--threads", "2"])[0]))
    print("\n== each step alone (latency: median of %d interleaved rounds x %d runs, 2 threads)" % (a.rounds, a.repeat))
    print("%-36s %9s %9s %10s %9s %7s" % ("variant", "MACs", "params", "size", "ms", "mAP"))
    for name, model, _ in variants:
        macs, params, size = stats(model)
        print("%-36s %8.1fM %8.1fK %8.0f KB %9.2f %7.2f" % (name, macs / 1e6, params / 1e3, size / 1e3,
                                                           median(lat[name]), map50(model, capp)))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
