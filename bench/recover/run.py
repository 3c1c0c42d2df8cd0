#!/usr/bin/env python3
"""bench/recover: int8 accuracy with and without the recovery passes.

For each model, the float model and int8 variants built by qsim-opt:

  int8        --qsim-fold-batchnorm --qsim-calibrate --qsim-assign-precision
              --qsim-quantize                     (today's post-training int8)
  +cle        --qsim-equalize before calibrating
  +cle+bc     ... and --qsim-bias-correct before quantizing
  +cle+ar+bc  ... and --qsim-adaround before the bias correction
  +bc, +ar+bc without equalization

mAP@0.5 with qsim-run --eval (Darknet's `detector map` rules) and the SQNR
of the detection heads against the float model (qsim-run --compare, mean
over the heads). Calibration, bias correction and AdaRound use images that
are never evaluated on: the CAPP model is calibrated on coco128 and
evaluated on the 58 CAPP images, the COCO model the other way round (as
bench/quant does). The wall time of the qsim-opt pipeline is printed too.
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

def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--calib-images", type=int, default=100)
    ap.add_argument("--recover-images", type=int, default=32,
                    help="images for bias correction and AdaRound")
    ap.add_argument("--adaround-iterations", type=int, default=500)
    ap.add_argument("--models", default="yolo-fastest-1.1-xl,yolov3-tiny-aix2022")
    ap.add_argument("--weights", default="per-tensor", help="per-tensor or per-channel")
    ap.add_argument("--variants", default="int8,+bc,+ar+bc,+cle,+cle+bc,+cle+ar+bc")
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
    print("%-22s %-12s %8s %8s %12s %9s" % ("model", "variant", "mAP@0.5", "vs fp32", "head SQNR dB", "opt s"))
    for m in a.models.split(","):
        calib, evalImages, labels = setups[m]
        cfg = os.path.join(MODELS, "darknet", m + ".cfg")
        w = os.path.join(MODELS, "weights", m + ".weights")
        fp = os.path.join(tmp, m + ".mlirbc")
        qsim([tool("qsim-translate"), "--import-darknet", cfg, "--weights", w, "-o", fp])
        out, _ = qsim([tool("qsim-run"), fp, "--image", evalImages, "--eval", labels, "-q"])
        fpMap = map50(out)
        print("%-22s %-12s %8.2f %8s %12s %9s" % (m, "fp32", fpMap, "", "", ""))
        sys.stdout.flush()
        recover = "images=%s max-images=%d weights=%s progress=0 report=0" % (calib, a.recover_images, a.weights)
        for v in a.variants.split(","):
            steps = [fp, "--qsim-fold-batchnorm"]
            if "cle" in v:
                steps.append("--qsim-equalize=report=0")
            steps += ["--qsim-calibrate=images=%s max-images=%d progress=0" % (calib, a.calib_images),
                      "--qsim-assign-precision=preset=all-int8"]
            if "ar" in v:
                steps.append("--qsim-adaround=%s iterations=%d" % (recover, a.adaround_iterations))
            if "bc" in v:
                steps.append("--qsim-bias-correct=%s" % recover)
            q = os.path.join(tmp, "%s-%s.mlirbc" % (m, v.replace("+", "_")))
            steps += ["--qsim-quantize=weights=%s" % a.weights, "-o", q]
            t0 = time.time()
            qsim([tool("qsim-opt")] + steps)
            seconds = time.time() - t0
            out, _ = qsim([tool("qsim-run"), q, "--compare", fp, "--image", evalImages, "--eval", labels, "-q"])
            mq = map50(out)
            print("%-22s %-12s %8.2f %+8.2f %12.2f %9.1f" % (m, v, mq, mq - fpMap, head_sqnr(out), seconds))
            sys.stdout.flush()

if __name__ == "__main__":
    main()
