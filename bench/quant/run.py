#!/usr/bin/env python3
"""bench/quant: what quantization buys and costs (see README.md).

1. Speed: yolov3-tiny 416x416 (synthetic weights) fp32 vs all-int8, median
   forward time, 2 threads, measured interleaved in the same invocation;
   weight sizes.
2. Calibration time: 100 images at 416x416 (minmax and entropy).
3. Accuracy: mAP@0.5 of the real models in fp32, int8, hybrid, fp16 and
   bf16 (CAPP models calibrated on coco128, COCO models on the CAPP images,
   never on the evaluation images), and per-channel vs per-tensor weights.
4. bf16 (--only bf16 runs this alone): fp32 vs every layer bf16 (heads
   fp32), mAP@0.5 on yolov3-tiny-aix2022 and yolo-fastest-1.1-xl, and the
   forward time of both, 1 and 2 threads, interleaved rounds, medians.
"""
import argparse, os, re, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import *

def qrun(args):
    p = subprocess.run([tool("qsim-run")] + args, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("qsim-run failed: %s\n%s" % (" ".join(args), p.stderr))
    return p.stdout

def map50(out):
    m = re.search(r"mAP@0.50 = [0-9.]+ \(([0-9.]+) %\)", out)
    return float(m.group(1)) if m else float("nan")

def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--only", choices=["bf16"], help="run one section")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp()
    coco = os.path.join(DATA, "coco128", "images", "train2017")
    cocoLabels = os.path.join(DATA, "coco128", "labels", "train2017")
    capp = os.path.join(DATA, "capp-aix-subset")
    if a.only == "bf16":
        bf16(a, tmp, coco, cocoLabels, capp)
        return

    # 1. Speed.
    y3t = os.path.join(tmp, "yolov3-tiny.mlirbc")
    subprocess.run([tool("qsim-translate"), "--import-darknet",
                    os.path.join(MODELS, "darknet", "yolov3-tiny.cfg"), "--random-weights=1", "-o", y3t], check=True)
    y3tq = os.path.join(tmp, "yolov3-tiny-int8.mlirbc")
    qrun([y3t, "--mode", "int8", "--calib", coco, "--calib-images", "20", "--repeat", "1", "--save-model", y3tq])
    f32, i8 = [], []
    for _ in range(a.rounds):
        f32.append(forward_ms(run([tool("qsim-run"), y3t, "--repeat", str(a.repeat), "--threads", "2"])[0]))
        i8.append(forward_ms(run([tool("qsim-run"), y3tq, "--repeat", str(a.repeat), "--threads", "2"])[0]))
    sf = model_macs(y3t)
    wf = int(re.search(r"f32=(\d+)", subprocess.run([tool("qsim-opt"), "--qsim-print-stats", y3t, "-o", "/dev/null"], capture_output=True, text=True).stdout).group(1))
    st = subprocess.run([tool("qsim-opt"), "--qsim-print-stats", y3tq, "-o", "/dev/null"], capture_output=True, text=True).stdout
    wq = sum(int(x) for x in re.findall(r"(?:i8|i32)=(\d+)", st))
    print("== speed: yolov3-tiny 416, 2 threads, median of %d interleaved rounds x %d runs" % (a.rounds, a.repeat))
    print("fp32  %7.2f ms   (%.1f GFLOP/s)" % (median(f32), 2 * sf / 1e9 / (median(f32) / 1e3)))
    print("int8  %7.2f ms   (%.1f GOP/s)  -> %.2fx faster than fp32" % (median(i8), 2 * sf / 1e9 / (median(i8) / 1e3), median(f32) / median(i8)))
    print("weights: fp32 %.2f MB, int8 %.2f MB (%.2fx smaller)" % (wf / 1e6, wq / 1e6, wf / wq))
    sys.stdout.flush()

    # 2. Calibration time.
    print("== calibration of 100 images at 416x416 (qsim-opt --qsim-calibrate)")
    for method in ["minmax", "entropy"]:
        t0 = time.time()
        subprocess.run([tool("qsim-opt"), y3t, "--qsim-fold-batchnorm",
                        "--qsim-calibrate=images=%s max-images=100 method=%s progress=0" % (coco, method),
                        "-o", "/dev/null"], check=True)
        print("%-8s %.1f s" % (method, time.time() - t0))
    sys.stdout.flush()
    if a.skip_accuracy:
        return

    # 3. Accuracy.
    print("== accuracy (mAP@0.5, %)")
    for m, evalImages, labels, calib in [
            ("yolov3-tiny-aix2022", capp, capp, coco),
            ("yolov4-tiny-aix2023", capp, capp, coco)]:
        cfg = os.path.join(MODELS, "darknet", m + ".cfg")
        w = os.path.join(MODELS, "weights", m + ".weights")
        row = []
        for mode in ["float", "int8", "hybrid", "fp16", "bf16"]:
            out = qrun([cfg, "--weights", w, "--mode", mode, "--calib", calib, "--calib-images", "100",
                        "--image", evalImages, "--eval", labels, "-q"])
            row.append(map50(out))
        print("%-30s fp32 %.2f  int8 %.2f (%+.2f)  hybrid %.2f (%+.2f)  fp16 %.2f (%+.2f)  bf16 %.2f (%+.2f)   [calibration: coco128, evaluation: CAPP subset]" % (
            m, row[0], row[1], row[1] - row[0], row[2], row[2] - row[0], row[3], row[3] - row[0], row[4], row[4] - row[0]))
        sys.stdout.flush()
    for m in ["MobileNetV2-YOLOv3-Nano-coco", "yolo-fastest-1.1-xl"]:
        cfg = os.path.join(MODELS, "darknet", m + ".cfg")
        w = os.path.join(MODELS, "weights", m + ".weights")
        fp = map50(qrun([cfg, "--weights", w, "--image", coco, "--eval", cocoLabels, "-q"]))
        res = []
        for wq in ["per-channel", "per-tensor"]:
            res.append(map50(qrun([cfg, "--weights", w, "--mode", "int8", "--calib", capp, "--calib-images", "58",
                                   "--quantize", "weights=" + wq, "--image", coco, "--eval", cocoLabels, "-q"])))
        print("%-30s fp32 %.2f  int8 per-channel %.2f (%+.2f)  per-tensor %.2f (%+.2f)   [calibration: CAPP subset, evaluation: coco128]" % (
            m, fp, res[0], res[0] - fp, res[1], res[1] - fp))
        sys.stdout.flush()

def bf16(a, tmp, coco, cocoLabels, capp):
    """fp32 vs all-bf16: accuracy, then speed (interleaved rounds)."""
    print("== bf16 accuracy (mAP@0.5, %; every layer bf16 but the heads)")
    cases = [("yolov3-tiny-aix2022", capp, capp, "evaluation: CAPP subset"),
             ("yolo-fastest-1.1-xl", coco, cocoLabels, "evaluation: coco128")]
    for m, images, labels, what in cases:
        cfg = os.path.join(MODELS, "darknet", m + ".cfg")
        w = os.path.join(MODELS, "weights", m + ".weights")
        fp = map50(qrun([cfg, "--weights", w, "--image", images, "--eval", labels, "-q"]))
        bf = map50(qrun([cfg, "--weights", w, "--mode", "bf16", "--image", images, "--eval", labels, "-q"]))
        print("%-30s fp32 %.2f  bf16 %.2f (%+.2f)   [%s]" % (m, fp, bf, bf - fp, what))
        sys.stdout.flush()
    print("== bf16 speed: forward ms, median of %d interleaved rounds x %d runs" % (a.rounds, a.repeat))
    for m in ["yolov3-tiny-aix2022", "yolo-fastest-1.1-xl"]:
        cfg = os.path.join(MODELS, "darknet", m + ".cfg")
        w = os.path.join(MODELS, "weights", m + ".weights")
        f32 = os.path.join(tmp, m + ".mlirbc")
        b16 = os.path.join(tmp, m + "-bf16.mlirbc")
        subprocess.run([tool("qsim-translate"), "--import-darknet", cfg, "--weights", w, "-o", f32], check=True)
        qrun([f32, "--mode", "bf16", "--repeat", "1", "--save-model", b16])
        for threads in [1, 2]:
            t = {"fp32": [], "bf16": []}
            for _ in range(a.rounds):
                for name, model in [("fp32", f32), ("bf16", b16)]:
                    t[name].append(forward_ms(run([tool("qsim-run"), model, "--repeat", str(a.repeat),
                                                   "--threads", str(threads)])[0]))
            print("%-30s %d thread(s): fp32 %7.2f ms  bf16 %7.2f ms  (bf16/fp32 %.2f)" % (
                m, threads, median(t["fp32"]), median(t["bf16"]), median(t["bf16"]) / median(t["fp32"])))
            sys.stdout.flush()

if __name__ == "__main__":
    main()
