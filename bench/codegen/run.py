#!/usr/bin/env python3
"""bench/codegen: the generated code against qsim-run (see README.md).

yolov3-tiny 416x416 (synthetic weights), fp32 and all-int8:
1. host-native timing of the code qsim-compile generates (examples/arm-deploy
   built around it, on 1 and 2 threads: qsim_init_threads) against
   qsim-run's fast kernels (oneDNN) with 1 and 2 threads, medians of
   interleaved rounds in the same invocation;
2. the ARM64 object (cortex-a72, +neon): .text and constant data sizes.
"""
import argparse, os, re, shutil, subprocess, sys, tempfile
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import *

SRC = os.path.abspath(os.path.join(HERE, ".."))
EXAMPLE = os.path.join(SRC, "examples", "arm-deploy")

def compile_model(model, out, target):
    os.makedirs(out, exist_ok=True)
    subprocess.run([tool("qsim-compile"), model, "-o", os.path.join(out, "model.o"),
                    "--header", os.path.join(out, "model.h")] + target,
                   check=True, capture_output=True)

def sizes(obj):
    size = shutil.which("llvm-size-19") or shutil.which("size")
    out = subprocess.run([size, "-A", obj], capture_output=True, text=True, check=True).stdout
    text = sum(int(m.group(1)) for m in re.finditer(r"^\.text\S*\s+(\d+)", out, re.M))
    ro = sum(int(m.group(1)) for m in re.finditer(r"^\.(?:l?rodata|data\.rel\.ro)\S*\s+(\d+)", out, re.M))
    return text, ro

def memory_bytes(header):
    """Arena + scratch of a generated header (<PREFIX>_MEMORY_BYTES)."""
    return int(re.search(r"_MEMORY_BYTES \((\d+) \+", open(header).read()).group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=10)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp()
    image = os.path.join(DATA, "coco128", "images", "train2017", "000000000009.jpg")
    calib = os.path.join(DATA, "coco128", "images", "train2017")
    if not os.path.exists(image):
        sys.exit("needs %s (set QSIM_DATA_DIR)" % image)
    f32 = os.path.join(tmp, "yolov3-tiny.mlirbc")
    subprocess.run([tool("qsim-translate"), "--import-darknet",
                    os.path.join(MODELS, "darknet", "yolov3-tiny.cfg"), "--random-weights=1", "-o", f32], check=True)
    i8 = os.path.join(tmp, "yolov3-tiny-int8.mlirbc")
    subprocess.run([tool("qsim-run"), f32, "--mode", "int8", "--calib", calib, "--calib-images", "20",
                    "--repeat", "1", "--save-model", i8], check=True, capture_output=True)

    # Each twice: with the convolution micro-kernels (f32 FMA tiles; int8
    # on the host's packed 8-bit dot products, VNNI, where it has them) and
    # with the generic vector kernels (--generic-kernels).
    variants = [("fp32", f32, []), ("fp32-generic", f32, ["--generic-kernels"]),
                ("int8", i8, []), ("int8-generic", i8, ["--generic-kernels"])]
    models = {name: model for name, model, _ in variants}
    programs = {}
    for name, model, extra in variants:
        out = os.path.join(tmp, "host-" + name)
        compile_model(model, out, ["--target", "host"] + extra)
        subprocess.run(["make", "-s", "-C", EXAMPLE, "MODEL_DIR=" + out, "RT_DIR=" + os.path.join(tmp, "rt"),
                        "QSIM_SRC=" + SRC], check=True)
        programs[name] = os.path.join(out, "qsim-deploy")

    times = {}
    for _ in range(a.rounds):
        for name, model, _ in variants:
            times.setdefault((name, "gen"), []).append(forward_ms(run(
                [programs[name], image, "--repeat", str(a.repeat), "--threads", "1"])[0]))
            if name.endswith("-generic"):
                continue  # same qsim-run model as without -generic
            # Each layer's work split between 2 threads (qsim-split-layers).
            times.setdefault((name, "gen2"), []).append(forward_ms(run(
                [programs[name], image, "--repeat", str(a.repeat), "--threads", "2"])[0]))
            for t in (1, 2):
                times.setdefault((name, t), []).append(forward_ms(run(
                    [tool("qsim-run"), model, "--image", image, "--repeat", str(a.repeat), "--threads", str(t)])[0]))
    print("== yolov3-tiny 416x416 on this host: median forward ms of %d interleaved rounds x %d runs" % (a.rounds, a.repeat))
    print("%-13s %13s %13s %17s %17s %13s %13s" % ("", "generated 1T", "generated 2T", "qsim-run fast 1T",
                                                    "qsim-run fast 2T", "gen 1T / 1T", "gen 2T / 2T"))
    for name, _, _ in variants:
        ref = name.split("-")[0]
        g, r1, r2 = median(times[(name, "gen")]), median(times[(ref, 1)]), median(times[(ref, 2)])
        g2 = median(times[(name, "gen2")]) if (name, "gen2") in times else None
        print("%-13s %13.2f %13s %17.2f %17.2f %12.2fx %13s" % (
            name, g, "%.2f" % g2 if g2 else "-", r1, r2, g / r1, "%.2fx" % (g2 / r2) if g2 else "-"))

    print("== ARM64 objects (aarch64-linux-gnu, cortex-a72; +neon, and +neon,+dotprod for sdot kernels)")
    for name, model, features in [("fp32", f32, "+neon"), ("int8", i8, "+neon"),
                                  ("int8-dotprod", i8, "+neon,+dotprod")]:
        out = os.path.join(tmp, "arm-" + name)
        compile_model(model, out, ["--target", "aarch64-linux-gnu", "--cpu", "cortex-a72", "--features", features])
        text, ro = sizes(os.path.join(out, "model.o"))
        mem = memory_bytes(os.path.join(out, "model.h"))
        # Run-only memory: the same model with --reuse-buffers (the header
        # is all that is read; LLVM IR output skips the backend).
        reuse = os.path.join(tmp, "arm-reuse-" + name)
        os.makedirs(reuse)
        subprocess.run([tool("qsim-compile"), model, "--target", "aarch64-linux-gnu", "--features", features, "--reuse-buffers",
                        "--emit", "llvm", "-o", os.devnull, "--header", os.path.join(reuse, "model.h")],
                       check=True, capture_output=True)
        mem_reuse = memory_bytes(os.path.join(reuse, "model.h"))
        print("%-13s .text %8.1f KiB   weights/constants %8.1f KiB   arena+scratch %6.1f MiB"
              "   run-only (--reuse-buffers) %6.1f MiB" % (
                  name, text / 1024, ro / 1024, mem / 1048576, mem_reuse / 1048576))
    shutil.rmtree(tmp)

if __name__ == "__main__":
    main()
