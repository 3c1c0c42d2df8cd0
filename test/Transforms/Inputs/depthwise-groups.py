"""Counts the grouped convolutions of a Darknet cfg that are still depthwise
(groups == filters) and those that are not, for the pruning tests."""
import sys

depthwise = broken = 0
section, keys = None, {}


def finish():
    global depthwise, broken
    if section == "convolutional" and int(keys.get("groups", "1")) > 1:
        if keys["groups"] == keys.get("filters"):
            depthwise += 1
        else:
            broken += 1


for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if line.startswith("["):
        finish()
        section, keys = line.strip("[]"), {}
    elif "=" in line:
        k, v = line.split("=", 1)
        keys[k.strip()] = v.strip()
finish()
print("depthwise %d, not depthwise %d" % (depthwise, broken))
