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

def capp_halves(capp, tmp):
    """The one split of the CAPP subset that every benchmark uses.

    Images sorted by name; the first half (29 close-range shots,
    CAPP_testset_close_*) may be used for calibration, reconstruction or
    training, the second half (29 long-range shots, CAPP_testset_long_*) is
    only evaluated on. Contiguous halves and not alternating positions: the
    subset is every 4th frame of a few capture sequences, so neighbouring
    frames show the same shelves and an alternating split would evaluate on
    near-copies of the images used. Returns (half1, half2): directories of
    symbolic links (images and their YOLO labels) under `tmp`.
    """
    names = sorted(f for f in os.listdir(capp) if f.lower().endswith((".jpg", ".jpeg", ".png")))
    cut = len(names) // 2
    dirs = []
    for part, chosen in (("capp-half1", names[:cut]), ("capp-half2", names[cut:])):
        d = os.path.join(tmp, part)
        os.makedirs(d, exist_ok=True)
        for name in chosen:
            stem = os.path.splitext(name)[0]
            for f in (name, stem + ".txt"):
                if os.path.exists(os.path.join(capp, f)):
                    os.symlink(os.path.join(capp, f), os.path.join(d, f))
        dirs.append(d)
    return dirs[0], dirs[1]
