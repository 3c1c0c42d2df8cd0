#!/usr/bin/env python3
"""bench/import: wall time and peak RSS of importing yolov3.cfg with 248 MB of
synthetic weights into MLIR bytecode (see README.md here)."""
import argparse, os, resource, statistics, subprocess, sys, tempfile, time

def measure(cmd):
    # A fresh python per run so that ru_maxrss belongs to this run only.
    code = ("import resource,subprocess,sys,time;t=time.perf_counter();"
            "r=subprocess.run(sys.argv[1:],stdout=subprocess.DEVNULL);"
            "d=time.perf_counter()-t;"
            "print(r.returncode,d,resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss*1024)")
    out = subprocess.run([sys.executable, "-c", code] + cmd, capture_output=True, text=True).stdout.split()
    if not out or out[0] != "0":
        sys.exit("failed: " + " ".join(cmd))
    return float(out[1]), int(out[2])

def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "../../build/bin"))
    ap.add_argument("--cfg", default=None, help="default: $QSIM_MODELS_DIR/darknet/yolov3.cfg")
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    cfg = a.cfg or os.path.join(os.environ.get("QSIM_MODELS_DIR", "../shared/models"), "darknet/yolov3.cfg")
    if not os.path.exists(cfg):
        sys.exit("no %s (set QSIM_MODELS_DIR or --cfg)" % cfg)
    tr = os.path.join(a.bin, "qsim-translate")
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR", "/tmp")) as d:
        synth = os.path.join(d, "synth.mlirbc")
        w = os.path.join(d, "yolov3-synthetic.weights")
        subprocess.run([tr, "--import-darknet", cfg, "--random-weights=1", "-o", synth], check=True)
        subprocess.run([tr, "--export-darknet", synth, "-o", os.path.join(d, "y.cfg"), "--weights-out", w], check=True)
        os.remove(synth)
        size = os.path.getsize(w)
        out = os.path.join(d, "yolov3.mlirbc")
        cmd = [tr, "--import-darknet", cfg, "--weights", w, "-o", out]
        measure(cmd)  # warm the page cache
        times, rss = [], []
        for _ in range(a.runs):
            t, m = measure(cmd)
            times.append(t); rss.append(m)
        print("model:        %s" % cfg)
        print("weights:      %.1f MB (%d bytes)" % (size / 1e6, size))
        print("output:       %.1f MB bytecode" % (os.path.getsize(out) / 1e6))
        print("runs:         %d" % a.runs)
        print("wall time:    median %.3f s (min %.3f, max %.3f)" % (statistics.median(times), min(times), max(times)))
        print("peak RSS:     median %.1f MB = %.2fx the weights (max %.1f MB)" % (
            statistics.median(rss) / 1e6, statistics.median(rss) / size, max(rss) / 1e6))
        print("targets:      < 3 s, < 2.5x weights -> %s" % (
            "met" if statistics.median(times) < 3 and statistics.median(rss) < 2.5 * size else "NOT met"))

if __name__ == "__main__":
    main()
