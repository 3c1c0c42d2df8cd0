#!/usr/bin/env python3
"""bench/fp32: qsim-run's fp32 forward time (median of --repeat runs, model
load and image decode excluded) on yolov3-tiny 416x416 with synthetic
weights and on the real models, 1 and 2 threads, as GFLOP/s (2 x MACs from
--qsim-print-stats) next to the machine's GEMM peak measured in the same
invocation (interleaved, because this shared VM's speed drifts), plus peak
RSS. See README.md."""
import argparse, os, sys, tempfile
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import *

def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds per configuration")
    ap.add_argument("--repeat", type=int, default=30, help="forward passes per qsim-run call")
    ap.add_argument("--kernels", default="fast")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp()
    cases = []
    y3t = os.path.join(MODELS, "darknet", "yolov3-tiny.cfg")
    if not os.path.exists(y3t):
        sys.exit("no %s (set QSIM_MODELS_DIR)" % y3t)
    synth = os.path.join(tmp, "yolov3-tiny-416-synthetic.mlirbc")
    subprocess.run([tool("qsim-translate"), "--import-darknet", y3t, "--random-weights=1", "-o", synth], check=True)
    cases.append(("yolov3-tiny 416 (synthetic weights)", synth, [1, 2]))
    for m in ["yolov3-tiny-aix2022", "yolov4-tiny-aix2023", "yolo-fastest-1.1-xl", "MobileNetV2-YOLOv3-Nano-coco"]:
        w = os.path.join(MODELS, "weights", m + ".weights")
        if os.path.exists(w):
            out = os.path.join(tmp, m + ".mlirbc")
            subprocess.run([tool("qsim-translate"), "--import-darknet",
                            os.path.join(MODELS, "darknet", m + ".cfg"), "--weights", w, "-o", out], check=True)
            cases.append((m, out, [2]))
    print("%-38s %3s %10s %9s %11s %8s %9s" % ("model", "thr", "median ms", "GFLOP/s", "peak GF/s", "of peak", "peak RSS"))
    for name, model, threads in cases:
        gflop = 2 * model_macs(model) / 1e9
        for t in threads:
            times, peaks, rss = [], [], []
            for _ in range(a.rounds):
                peaks.append(peak(t))
                out, r = run([tool("qsim-run"), model, "--repeat", str(a.repeat), "--threads", str(t),
                              "--kernels", a.kernels])
                times.append(forward_ms(out)); rss.append(r)
            ms, pk = median(times), median(peaks)
            print("%-38s %3d %10.2f %9.1f %11.1f %7.0f%% %7.1f MB" % (
                name, t, ms, gflop / (ms / 1e3), pk, 100 * gflop / (ms / 1e3) / pk, max(rss) / 1e6))
            sys.stdout.flush()

if __name__ == "__main__":
    main()
