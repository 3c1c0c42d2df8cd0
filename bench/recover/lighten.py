#!/usr/bin/env python3
"""bench/recover/lighten.py: channel pruning and factorization with and
without the least-squares refit (--qsim-prune images=,
--qsim-factorize-conv refit) on yolov3-tiny-aix2022.

For each variant: MACs, parameters and mAP@0.5 (qsim-run --eval, Darknet's
`detector map` rules) without the refit and with it, on the second half of
the CAPP subset (bench/common.py capp_halves: never used for a refit) and
on all 58 CAPP images. The refit reads no label; its images (--refit):
`coco` the first --images coco128 images (out of domain: street scenes),
`capp` the first CAPP half (29 images, in domain), `both` the CAPP half
then the coco128 images. With `capp` or `both` the all-58 figure includes
the refit images: read the half-2 column. Nothing is fine-tuned.
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


def map50(model, images):
    out = check([tool("qsim-run"), model, "--image", images, "--eval", images, "-q"]).stdout
    return float(re.search(r"mAP@0.50 = [0-9.]+ \(([0-9.]+) %\)", out).group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ratios", default="0.1,0.2,0.3")
    ap.add_argument("--images", type=int, default=32, help="coco128 images for the refit")
    ap.add_argument("--refit", default="coco", choices=("coco", "capp", "both"),
                    help="refit images: coco128, the first CAPP half, or both")
    ap.add_argument("--samples", type=int, default=0,
                    help="positions per image and layer (0: the passes' automatic count, at least 256 per image and 32768 in all)")
    ap.add_argument("--only", default="", help="only the variants whose name contains one of these (separated by |)")
    ap.add_argument("--no-original", action="store_true", help="skip the original's row (already measured)")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp()
    coco = os.path.join(DATA, "coco128", "images", "train2017")
    capp = os.path.join(DATA, "capp-aix-subset")
    cfg = os.path.join(MODELS, "darknet", "yolov3-tiny-aix2022.cfg")
    half1, half2 = capp_halves(capp, tempfile.mkdtemp())
    base = os.path.join(tmp, "aix.mlirbc")
    check([tool("qsim-translate"), "--import-darknet", cfg, "--weights",
           os.path.join(MODELS, "weights", "yolov3-tiny-aix2022.weights"), "-o", base])
    macs0, params0 = stats(base)
    refit = {"coco": [coco], "capp": [half1], "both": [half1, coco]}[a.refit]
    count = {"coco": a.images, "capp": len(os.listdir(half1)) // 2,
             "both": len(os.listdir(half1)) // 2 + a.images}[a.refit]
    print("yolov3-tiny-aix2022: mAP@0.5 on the second CAPP half (29 images) and on all 58;"
          " refit on %s (%d images), %s positions each"
          % ({"coco": "coco128", "capp": "the first CAPP half",
              "both": "the first CAPP half + coco128"}[a.refit], count,
             a.samples or max(256, -(-32768 // count))))
    print("%-40s %9s %9s %8s %8s %9s" % ("variant", "MACs", "params", "half2", "all58", "time s"))
    if not a.no_original:
        print("%-40s %8.1fM %8.1fK %8.2f %8.2f %9s" % ("original", macs0 / 1e6, params0 / 1e3,
                                                     map50(base, half2), map50(base, capp), "-"))
    sys.stdout.flush()
    # Directories are listed sorted and in the order given, then cut to
    # max-images (lib/Lighten/Reconstruction.cpp loadRefitImages).
    img = " images=%s max-images=%d samples=%d" % (",".join(refit), count, a.samples)
    rows = []
    for r in [float(x) for x in a.ratios.split(",")]:
        rows.append(("prune %g (l1)" % r, "--qsim-prune=ratio=%g" % r))
        rows.append(("prune %g (l1) + refit" % r, "--qsim-prune=ratio=%g" % r + img))
        rows.append(("prune %g (contribution) + refit" % r,
                     "--qsim-prune=ratio=%g criterion=contribution" % r + img))
        rows.append(("prune %g (reconstruction) + refit" % r,
                     "--qsim-prune=ratio=%g criterion=reconstruction" % r + img))
    rows.append(("magnitude 0.5", "--qsim-prune=mode=magnitude sparsity=0.5"))
    rows.append(("magnitude 0.5, second-order + refit",
                 "--qsim-prune=mode=magnitude sparsity=0.5" + img))
    rows.append(("magnitude 0.5 total, sensitivity allocation",
                 "--qsim-prune=mode=magnitude sparsity=0.5 allocation=sensitivity" + img))
    for name, opt in [("tucker2 top3 energy=0.9", "--qsim-factorize-conv=method=tucker2 top=3 energy=0.9"),
                      ("depthwise-separable top3", "--qsim-factorize-conv=method=depthwise-separable top=3")]:
        rows.append((name, opt))
        rows.append((name + " + refit", opt + img + " refit report=0"))
    if a.only:
        rows = [r for r in rows if any(o in r[0] for o in a.only.split("|"))]
    for name, opt in rows:
        out = os.path.join(tmp, "v%d.mlirbc" % len(os.listdir(tmp)))
        t0 = time.time()
        check([tool("qsim-opt"), base, opt, "-o", out])
        took = time.time() - t0
        macs, params = stats(out)
        print("%-40s %8.1fM %8.1fK %8.2f %8.2f %9.1f" % (name, macs / 1e6, params / 1e3,
                                                       map50(out, half2), map50(out, capp), took))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
