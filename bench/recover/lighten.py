#!/usr/bin/env python3
"""bench/recover/lighten.py: channel pruning and factorization with and
without the least-squares refit (--qsim-prune images=,
--qsim-factorize-conv refit) on yolov3-tiny-aix2022.

For each variant: MACs, parameters and mAP@0.5 on the 58-image CAPP subset
(qsim-run --eval, Darknet's `detector map` rules) without the refit and
with it. The refit uses coco128 images only (no label
is read, and never the evaluation images). Nothing is fine-tuned.
"""
import argparse, os, re, subprocess, sys, tempfile, time
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
    return int(total.group(2)), int(total.group(1))


def map50(model, capp):
    out = check([tool("qsim-run"), model, "--image", capp, "--eval", capp, "-q"]).stdout
    return float(re.search(r"mAP@0.50 = [0-9.]+ \(([0-9.]+) %\)", out).group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ratios", default="0.1,0.2,0.3")
    ap.add_argument("--images", type=int, default=32, help="coco128 images for the refit")
    ap.add_argument("--samples", type=int, default=256, help="positions per image and layer")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp()
    coco = os.path.join(DATA, "coco128", "images", "train2017")
    capp = os.path.join(DATA, "capp-aix-subset")
    cfg = os.path.join(MODELS, "darknet", "yolov3-tiny-aix2022.cfg")
    base = os.path.join(tmp, "aix.mlirbc")
    check([tool("qsim-translate"), "--import-darknet", cfg, "--weights",
           os.path.join(MODELS, "weights", "yolov3-tiny-aix2022.weights"), "-o", base])
    macs0, params0 = stats(base)
    print("yolov3-tiny-aix2022: mAP@0.5 on the CAPP subset; refit on %d coco128 images, %d positions each"
          % (a.images, a.samples))
    print("%-36s %9s %9s %8s %9s" % ("variant", "MACs", "params", "mAP", "time s"))
    print("%-36s %8.1fM %8.1fK %8.2f %9s" % ("original", macs0 / 1e6, params0 / 1e3, map50(base, capp), "-"))
    variants = []
    for r in [float(x) for x in a.ratios.split(",")]:
        variants.append(("prune %g" % r, "--qsim-prune=ratio=%g" % r,
                         " images=%s max-images=%d samples=%d" % (coco, a.images, a.samples)))
    variants.append(("magnitude sparsity 0.5", "--qsim-prune=mode=magnitude sparsity=0.5",
                     " images=%s max-images=%d samples=%d" % (coco, a.images, a.samples)))
    refit = " images=%s max-images=%d samples=%d refit report=0" % (coco, a.images, a.samples)
    variants.append(("tucker2 top3 energy=0.9", "--qsim-factorize-conv=method=tucker2 top=3 energy=0.9", refit))
    variants.append(("depthwise-separable top3", "--qsim-factorize-conv=method=depthwise-separable top=3", refit))
    for name, opt, extra in variants:
        for with_refit in [False, True]:
            out = os.path.join(tmp, "v%d.mlirbc" % len(os.listdir(tmp)))
            t0 = time.time()
            check([tool("qsim-opt"), base, opt + (extra if with_refit else ""), "-o", out])
            took = time.time() - t0
            macs, params = stats(out)
            print("%-36s %8.1fM %8.1fK %8.2f %9.1f" % (
                name + (" + refit" if with_refit else ""), macs / 1e6, params / 1e3,
                map50(out, capp), took))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
