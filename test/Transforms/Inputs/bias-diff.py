# Prints, for each qsim.conv2d/connected of two textual modules (in order),
# whether its bias is the same in both: "<n>: kept" or "<n>: changed".
import re
import sys


def biases(path):
    out = []
    for line in open(path):
        if "qsim.conv2d" in line or "qsim.connected" in line:
            m = re.search(r"bias = (dense<[^>]*>|dense_resource<[^>]*>)", line)
            out.append(m.group(1) if m else None)
    return out


before, after = biases(sys.argv[1]), biases(sys.argv[2])
assert len(before) == len(after), "different ops"
for i, (b, a) in enumerate(zip(before, after)):
    print("%d: %s" % (i, "kept" if a == b else "changed"))
