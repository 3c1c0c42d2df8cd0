# The layer output error (column "output err") and the model output SQNR of
# the refit run must be better than those of the plain run.
import re, sys

def measures(path):
    text = open(path).read()
    row = re.search(r"^\s+1\s+1\s+.*?\s(\d\.\d+)\s+(\d\.\d+)\s", text, re.M)
    sqnr = re.search(r"model output SQNR vs the original on \d+ image\(s\): ([0-9.]+) dB", text)
    return float(row.group(2)), float(sqnr.group(1))

plain, refit = measures(sys.argv[1]), measures(sys.argv[2])
print("plain: output err %.4f, SQNR %.2f dB; refit: output err %.4f, SQNR %.2f dB" % (plain + refit))
if not (refit[0] < plain[0] and refit[1] > plain[1]):
    sys.exit("the refit did not improve the layer and the model outputs")
