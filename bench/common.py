"""Shared helpers of qsim's benchmarks (see bench/README.md)."""
import json, os, re, statistics, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.environ.get("QSIM_BIN", os.path.join(HERE, "..", "build", "bin"))
MODELS = os.environ.get("QSIM_MODELS_DIR", os.path.join(HERE, "..", "..", "shared", "models"))
DATA = os.environ.get("QSIM_DATA_DIR", os.path.join(HERE, "..", "..", "shared", "data"))

def tool(name):
    path = os.path.join(BIN, name)
    if not os.path.exists(path):
        sys.exit("missing %s: build qsim first (scripts/build.sh)" % path)
    return path

_WRAP = ("import resource,subprocess,sys;"
         "r=subprocess.run(sys.argv[1:],capture_output=True,text=True);"
         "sys.stdout.write(r.stdout);sys.stderr.write(r.stderr);"
         "print('@@rss',resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss*1024);"
         "sys.exit(r.returncode)")

def run(cmd):
    """Runs cmd in a fresh wrapper; returns (stdout, peak RSS bytes)."""
    p = subprocess.run([sys.executable, "-c", _WRAP] + cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("failed: %s\n%s%s" % (" ".join(cmd), p.stdout, p.stderr))
    m = re.search(r"@@rss (\d+)", p.stdout)
    return p.stdout, int(m.group(1)) if m else 0

def forward_ms(out):
    m = re.search(r"forward: median ([0-9.]+) ms", out)
    if not m:
        sys.exit("no forward time in:\n" + out)
    return float(m.group(1))

def peak(threads, int8=False):
    out, _ = run([tool("qsim-bench-peak"), "--threads", str(threads)] + (["--int8"] if int8 else []))
    return float(re.search(r"median ([0-9.]+)", out).group(1))

def model_macs(model):
    out = subprocess.run([tool("qsim-opt"), "--qsim-print-stats=json=1", model, "-o", "/dev/null"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)["totals"]["macs"]

def median(v):
    return statistics.median(v) if v else float("nan")
