"""Writes YOLO labels for a qsim-run --json file: every other detection of
each image (class, box_rel) as ground truth, so that the mAP of the model
against them is neither 0 nor 1."""
import json, os, sys
run, out = json.load(open(sys.argv[1])), sys.argv[2]
os.makedirs(out, exist_ok=True)
for image in run["images"]:
    stem = os.path.splitext(os.path.basename(image["image"]))[0]
    with open(os.path.join(out, stem + ".txt"), "w") as f:
        for d in image.get("detections", [])[::2]:
            b = d["box_rel"]
            f.write("%d %f %f %f %f\n" % (d["class_id"], b["x"], b["y"], b["w"], b["h"]))
