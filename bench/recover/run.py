#!/usr/bin/env python3
"""bench/recover: int8 accuracy with and without the recovery passes.

For each model, the float model and int8 variants built by qsim-opt:

  int8        --qsim-fold-batchnorm --qsim-calibrate --qsim-assign-precision
              --qsim-quantize                     (today's post-training int8)
  +cle        --qsim-equalize before calibrating
  +cle+bc     ... and --qsim-bias-correct before quantizing
  +cle+ar+bc  ... and --qsim-adaround before the bias correction
  +bc, +ar+bc without equalization
  +abc        --qsim-bias-correct=mode=analytic (from the folded batch norms'
              statistics, no images) instead of the empirical +bc
  w4, w4+ar, w4+ar+bc, ...
              --qsim-quantize weight-bits=4 (any w2..w8; --qsim-adaround and
              --qsim-bias-correct get the same weight-bits)
  +mse        weight-range=mse (least-squares clipped weight scales) for
              --qsim-quantize and the recovery passes
  +ar         --qsim-adaround (target=float, its default); +arq with
              target=quantized (before this option: fitted to the layer's
              own float weights on the quantized input); +arb with its own
              bias correction (bias-correct=true)
  +ss         --qsim-adaround search-scales=true (per-channel scales chosen
              on the layer's loss)
  +fl8        w8-layers=first,last: the first layer and the heads keep
              8-bit weights (under w4 etc.)
  a16, ...    --qsim-quantize activation-bits=16 (W8A16 wherever it applies)

mAP@0.5 with qsim-run --eval (Darknet's `detector map` rules) and the SQNR
of the detection heads against the float model (qsim-run --compare, mean
over the heads). Calibration, bias correction and AdaRound use images that
are never evaluated on: the CAPP model is calibrated on coco128 and
evaluated on the 58 CAPP images, the COCO model the other way round (as
bench/quant does). The wall time of the qsim-opt pipeline is printed, and
the time of each recovery pass in it (qsim-opt --mlir-timing). With
--eval-half, the CAPP images are split in two (sorted by name,
bench/common.py capp_halves) and mAP is also given on the second half alone.

Each variant is one qsim-opt run; to keep runs short on a shared machine,
call the script once per variant (--variants w4+ar) and per model.
"""
import argparse, os, re, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import *

def qsim(args):
    p = subprocess.run(args, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("failed: %s\n%s" % (" ".join(args), p.stderr))
    return p.stdout, p.stderr

def map50(out):
    m = re.search(r"mAP@0.50 = [0-9.]+ \(([0-9.]+) %\)", out)
    return float(m.group(1)) if m else float("nan")

def head_sqnr(out):
    v = [float(m.group(1)) for m in re.finditer(r"^\s*\d+\s+yolo\s+\S+\s+([-0-9.inf]+)", out, re.M)]
    return sum(v) / len(v) if v else float("nan")

PASS_TIMES = [("equalize", "Equalize"), ("calibrate", "Calibrate"),
              ("adaround", "AdaRound"), ("bias-correct", "BiasCorrect"),
              ("quantize", "Quantize")]

def pass_seconds(stderr):
    """Wall seconds per pass from qsim-opt --mlir-timing."""
    out = {}
    for m in re.finditer(r"^\s*([0-9.]+) \(\s*[0-9.]+%\)\s+(\S+)\s*$", stderr, re.M):
        for key, name in PASS_TIMES:
            if m.group(2) == name + "Pass":
                out[key] = float(m.group(1))
    return out

def parse_variant(v):
    """'w4+ar+bc' -> (weight bits, activation bits, {'ar', 'bc'})."""
    bits, abits, steps = 8, 8, set()
    for t in [t for t in v.split("+") if t and t != "int8"]:
        if re.fullmatch(r"w[2-8]", t):
            bits = int(t[1:])
        elif t == "a16":
            abits = 16
        elif t in ("cle", "bc", "abc", "ar", "arq", "arb", "mse", "fl8", "ss"):
            steps.add(t)
        else:
            sys.exit("unknown variant step '%s' in '%s'" % (t, v))
    return bits, abits, steps

def half_dir(tmp, images):
    """The second half (by name) of `images` as a directory of links: the
    held-out half of bench/common.py capp_halves for the CAPP subset, the
    same rule for other image folders (their labels stay where they are)."""
    return capp_halves(images, tempfile.mkdtemp(dir=tmp))[1]

def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--calib-images", type=int, default=100)
    ap.add_argument("--recover-images", type=int, default=32,
                    help="images for bias correction and AdaRound")
    ap.add_argument("--adaround-iterations", type=int, default=500)
    ap.add_argument("--adaround-regularization", type=float, default=None,
                    help="--qsim-adaround regularization= (default: the pass's)")
    ap.add_argument("--models", default="yolo-fastest-1.1-xl,yolov3-tiny-aix2022")
    ap.add_argument("--weights", default="per-tensor", help="per-tensor or per-channel")
    ap.add_argument("--variants", default="int8,+bc,+ar+bc,+cle,+cle+bc,+cle+ar+bc")
    ap.add_argument("--eval-half", action="store_true",
                    help="also mAP on the second half of the evaluation images")
    ap.add_argument("--no-fp32", action="store_true",
                    help="skip the float model's row (already measured)")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp()
    coco = os.path.join(DATA, "coco128", "images", "train2017")
    cocoLabels = os.path.join(DATA, "coco128", "labels", "train2017")
    capp = os.path.join(DATA, "capp-aix-subset")
    setups = {
        "yolov3-tiny-aix2022": (coco, capp, capp),
        "yolo-fastest-1.1-xl": (capp, coco, cocoLabels),
    }
    print("weights=%s calibration images=%d recovery images=%d adaround iterations=%d" % (
        a.weights, a.calib_images, a.recover_images, a.adaround_iterations))
    sys.stdout.flush()
    print("%-22s %-12s %8s %8s %8s %12s %9s  %s" % ("model", "variant", "mAP@0.5", "vs fp32", "half2",
                                                  "head SQNR dB", "opt s", "pass s"))
    for m in a.models.split(","):
        calib, evalImages, labels = setups[m]
        cfg = os.path.join(MODELS, "darknet", m + ".cfg")
        w = os.path.join(MODELS, "weights", m + ".weights")
        fp = os.path.join(tmp, m + ".mlirbc")
        qsim([tool("qsim-translate"), "--import-darknet", cfg, "--weights", w, "-o", fp])
        half = half_dir(tmp, evalImages) if a.eval_half else None
        fpMap = float("nan")
        if not a.no_fp32:
            out, _ = qsim([tool("qsim-run"), fp, "--image", evalImages, "--eval", labels, "-q"])
            fpMap = map50(out)
            fpHalf = float("nan")
            if half:
                out, _ = qsim([tool("qsim-run"), fp, "--image", half, "--eval", labels, "-q"])
                fpHalf = map50(out)
            print("%-22s %-12s %8.2f %8s %8.2f" % (m, "fp32", fpMap, "", fpHalf))
            sys.stdout.flush()
        for v in a.variants.split(","):
            bits, abits, todo = parse_variant(v)
            grid = "weights=%s weight-bits=%d weight-range=%s" % (
                a.weights, bits, "mse" if "mse" in todo else "max")
            if "fl8" in todo:
                grid += " w8-layers=first,last"
            recover = "images=%s max-images=%d %s progress=0 report=0" % (
                calib, a.recover_images, grid)
            steps = [fp, "--qsim-fold-batchnorm", "--mlir-timing"]
            if "cle" in todo:
                steps.append("--qsim-equalize=report=0")
            steps += ["--qsim-calibrate=images=%s max-images=%d progress=0" % (calib, a.calib_images),
                      "--qsim-assign-precision=preset=all-int8"]
            for ar, extra in (("ar", ""), ("arq", " target=quantized"),
                              ("arb", " bias-correct=true")):
                if ar in todo:
                    if "ss" in todo:
                        extra += " search-scales=true"
                    if a.adaround_regularization is not None:
                        extra += " regularization=%g" % a.adaround_regularization
                    steps.append("--qsim-adaround=%s iterations=%d%s" % (
                        recover, a.adaround_iterations, extra))
            if "bc" in todo:
                steps.append("--qsim-bias-correct=%s" % recover)
            if "abc" in todo:
                steps.append("--qsim-bias-correct=mode=analytic %s report=0" % grid)
            q = os.path.join(tmp, "%s-%s.mlirbc" % (m, v.replace("+", "_")))
            steps += ["--qsim-quantize=%s activation-bits=%d" % (grid, abits),
                      "-o", q]
            t0 = time.time()
            _, err = qsim([tool("qsim-opt")] + steps)
            seconds = time.time() - t0
            passes = " ".join("%s=%.1f" % kv for kv in pass_seconds(err).items())
            out, _ = qsim([tool("qsim-run"), q, "--compare", fp, "--image", evalImages, "--eval", labels, "-q"])
            mq = map50(out)
            mh = float("nan")
            if half:
                hout, _ = qsim([tool("qsim-run"), q, "--image", half, "--eval", labels, "-q"])
                mh = map50(hout)
            print("%-22s %-12s %8.2f %+8.2f %8.2f %12.2f %9.1f  %s" % (
                m, v, mq, mq - fpMap, mh, head_sqnr(out), seconds, passes))
            sys.stdout.flush()

if __name__ == "__main__":
    main()
