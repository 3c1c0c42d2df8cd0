"""Imports every cfg of a Darknet model zoo folder (shape only, then with
random weights for the small ones) and prints one line per cfg:

  IMPORTED <name> BFLOPS <Darknet-style total> PARAMS <count> [RANDOM-OK]
  REFUSED <name> <first error, without the folder>

Anything else is a defect and printed as such: a crash or a signal
(CRASH), a run past the time limit (HANG), an error that does not start
with "<file>:<line>:" (UNLOCATED), or a random-weights import that fails
after the shape-only one succeeded (RANDOM-FAIL). The lit test checks the
lines with FileCheck.

usage: zoo-sweep.py ZOO_DIR WORK_DIR
"""
import os
import re
import subprocess
import sys

TIMEOUT_S = 60
# Random weights are generated for models up to this many parameters; the
# big ones are covered by the shape-only import (same code path, no values).
RANDOM_MAX_PARAMS = 8_000_000


def run(args):
    try:
        p = subprocess.run(args, capture_output=True, text=True,
                           timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return None
    return p


def first_error(stderr):
    for line in stderr.splitlines():
        if "error:" in line:
            return line
    return stderr.strip().splitlines()[0] if stderr.strip() else "(no message)"


def main():
    zoo, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    cfgs = []
    for root, _, files in os.walk(zoo):
        for f in files:
            if f.endswith(".cfg"):
                cfgs.append(os.path.join(root, f))
    cfgs.sort()
    imported = refused = defects = 0
    for cfg in cfgs:
        name = os.path.relpath(cfg, zoo)[:-len(".cfg")]
        out = os.path.join(work, name.replace("/", "_") + ".mlir")
        p = run(["qsim-translate", "--import-darknet", cfg, "-o", out])
        if p is None:
            print("HANG", name)
            defects += 1
            continue
        if p.returncode not in (0, 1):
            print("CRASH", name, "exit", p.returncode)
            defects += 1
            continue
        if p.returncode == 1:
            err = first_error(p.stderr)
            if os.path.exists(out):
                print("PARTIAL-OUTPUT", name)
                defects += 1
            if not err.startswith(cfg + ":") or not re.match(
                    re.escape(cfg) + r":\d+:\d+: error: ", err):
                print("UNLOCATED", name, err)
                defects += 1
            else:
                print("REFUSED", name, err[len(zoo):].lstrip("/"))
                refused += 1
            continue
        s = run(["qsim-opt", "--qsim-print-stats", out, "-o", os.devnull])
        if s is None or s.returncode != 0:
            print("STATS-FAIL", name, first_error(s.stderr) if s else "timeout")
            defects += 1
            continue
        text = s.stdout + s.stderr
        bflops = re.search(r"Total BFLOPS\s+([0-9.]+)", text)
        params = re.search(r"^\s*total\s.*?\s(\d+)\s+(\d+)", text, re.M)
        nparams = int(params.group(1)) if params else -1
        line = "IMPORTED %s BFLOPS %s PARAMS %d" % (
            name, bflops.group(1) if bflops else "?", nparams)
        if 0 <= nparams <= RANDOM_MAX_PARAMS:
            bc = os.path.join(work, name.replace("/", "_") + ".mlirbc")
            r = run(["qsim-translate", "--import-darknet", cfg,
                     "--random-weights=1", "-o", bc])
            if r is None or r.returncode != 0:
                print("RANDOM-FAIL", name,
                      first_error(r.stderr) if r else "timeout")
                defects += 1
            else:
                line += " RANDOM-OK"
                os.remove(bc)
        os.remove(out)
        print(line)
        imported += 1
    print("SUMMARY cfgs=%d imported=%d refused=%d defects=%d" %
          (len(cfgs), imported, refused, defects))


if __name__ == "__main__":
    main()
