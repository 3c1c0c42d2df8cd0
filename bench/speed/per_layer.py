#!/usr/bin/env python3
"""Per layer: how far qsim-run is from this machine's peak (issue 17).

For each model of bench/speed (fp32 and all-int8, prepared as run.py does),
`qsim-run --time-layers` (median per layer over --repeat runs) in interleaved
rounds, fp32 and int8, and in the same rounds the machine's practical peak
(`qsim-bench-peak`: oneDNN sgemm and u8s8s32 GEMM on 2048^3, same threads).
Per layer: MACs (qsim-opt --qsim-print-stats), time, GOP/s (2 ops per MAC)
and the share of the peak, and "lost ms" = time - 2*MACs/peak, the time the
layer takes beyond a GEMM-speed run of its arithmetic (all of it for layers
without MACs). The table is sorted by the int8 lost time; the summary line
gives the whole model's share of the peak.

  flock /tmp/qsim-cpu.lock python3 bench/speed/per_layer.py \\
      --models yolo-fastest-1.1-xl --threads 1 --work /tmp/qsim-speed
"""
import argparse, json, os, re, subprocess, sys, tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import median, peak, tool  # noqa: E402
from run import MODEL_SET, calibration_dir, prepare  # noqa: E402


def layer_macs(model):
    out = subprocess.run([tool("qsim-opt"), "--qsim-print-stats=json=1", model, "-o", "/dev/null"],
                         capture_output=True, text=True, check=True).stdout
    return {l["index"]: (l["type"], l.get("macs", 0)) for l in json.loads(out)["layers"]}


def layer_times(model, threads, repeat):
    p = subprocess.run([tool("qsim-run"), model, "--threads", str(threads), "--repeat",
                        str(repeat), "--time-layers", "-q"], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("failed: %s\n%s" % (model, p.stderr))
    times = {}
    for line in p.stdout.splitlines():
        m = re.match(r"\s*(\d+)\s+\S+\s+\S+\s+([0-9.]+)\s", line)
        if m:
            times[int(m.group(1))] = float(m.group(2))
    if not times:
        sys.exit("no per-layer times from qsim-run --time-layers on " + model)
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="yolo-fastest-1.1-xl",
                    help="comma-separated cfg names of bench/speed's set, or all")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--top", type=int, default=15, help="layers listed (most int8 time lost first)")
    ap.add_argument("--work", help="directory of prepared models (kept and reused)")
    a = ap.parse_args()
    models = [m for m in MODEL_SET if a.models == "all" or m[1] in a.models.split(",")]
    if not models:
        sys.exit("no model of bench/speed's set matches --models " + a.models)
    calib = calibration_dir()
    tmp = a.work or tempfile.mkdtemp(prefix="qsim-per-layer-")
    os.makedirs(tmp, exist_ok=True)
    for label, cfg, weights in models:
        f32, i8 = prepare(tmp, cfg, weights, calib)
        macs = layer_macs(f32)
        runs = {"fp32": [], "int8": []}
        peaks = {"fp32": [], "int8": []}
        for _ in range(a.rounds):
            for prec, model in (("fp32", f32), ("int8", i8)):
                peaks[prec].append(peak(a.threads, int8=prec == "int8"))
                runs[prec].append(layer_times(model, a.threads, a.repeat))
        pk = {p: median(v) for p, v in peaks.items()}
        ms = {p: {i: median([r[i] for r in rs if i in r]) for i in rs[0]} for p, rs in runs.items()}
        rows = []
        for i, (kind, m) in sorted(macs.items()):
            row = [i, kind, m]
            for p in ("fp32", "int8"):
                t = ms[p].get(i, float("nan"))
                ideal = 2 * m / (pk[p] * 1e9) * 1e3
                gops = 2 * m / (t * 1e-3) / 1e9 if t > 0 else float("nan")
                row += [t, gops, 100 * gops / pk[p], t - ideal]
            rows.append(row)
        print("== %s, %d thread(s): per-layer medians of %d interleaved rounds x %d runs"
              % (label, a.threads, a.rounds, a.repeat))
        print("peak (qsim-bench-peak, same rounds): sgemm %.1f GFLOP/s, u8s8s32 %.1f GOP/s"
              % (pk["fp32"], pk["int8"]))
        print("%5s  %-15s %10s | %8s %7s %6s %8s | %8s %7s %6s %8s" % (
            "layer", "type", "MACs", "fp32 ms", "GFLOP/s", "peak%", "lost ms",
            "int8 ms", "GOP/s", "peak%", "lost ms"))
        for r in sorted(rows, key=lambda r: -r[10])[:a.top]:
            print("%5d  %-15s %10d | %8.3f %7.1f %5.1f%% %8.3f | %8.3f %7.1f %5.1f%% %8.3f" % tuple(r))
        total_macs = sum(r[2] for r in rows)
        for p, col in (("fp32", 3), ("int8", 7)):
            t = sum(r[col] for r in rows)
            lost = sum(r[col + 3] for r in rows)
            nomac = sum(r[col] for r in rows if r[2] == 0)
            print("%s: layers sum %.2f ms, %.1f GOP/s = %.1f%% of peak; lost %.2f ms "
                  "(%.2f ms in layers without MACs)" % (
                      p, t, 2 * total_macs / (t * 1e-3) / 1e9,
                      100 * 2 * total_macs / (t * 1e-3) / 1e9 / pk[p], lost, nomac))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
