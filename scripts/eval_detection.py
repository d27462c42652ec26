#!/usr/bin/env python3
"""Scores face-detection reports against WIDER FACE ground truth (the protocol of
shared/fixtures/annotated/wider_dev/README.md), side by side, one line per tool.

usage: eval_detection.py ANNOTATIONS.json NAME=REPORT.json [NAME=REPORT.json ...]

A report is blurgate's (`redact --report`) or one in the same shape (scripts/deface_boxes.py):
{"files": [{"input": PATH, "faces": [{"box": [x1, y1, x2, y2], "mask": [x1, y1, x2, y2]?}]}]}.

Printed per tool:
- recall easy / medium / hard: a counted face is found when a detection overlaps it with
  IoU >= 0.5 (the official +1 pixel area convention); faces a level does not count are neither
  hits nor misses there;
- hard recall by face height: < 16, 16-32, 32-64, >= 64 px;
- false positives per photo: detections overlapping no annotated face (of any level) at
  IoU >= 0.5; many are real faces the annotators left out, so read them as an upper bound;
- coverage: the share of counted (hard) faces at least 10 px tall whose box lies at least 90%
  inside the union of the tool's redaction masks, and how many were left below that. Masks
  are ellipses inscribed in the report's `mask` rectangle (clipped to the photo, so a face at
  the border is under-counted, never over-counted), or with no `mask`, in the box scaled by
  MASK_SCALE (deface's 1.3). Pass MASK_SHAPE=box for `--boxes` runs.
"""
import json
import os
import sys

import numpy as np

HEIGHT_BINS = (0, 16, 32, 64, float("inf"))
MIN_COVERED_HEIGHT = 10
COVERED_SHARE = 0.9


def iou_matrix(gt, det):
    """IoU of every ground-truth box with every detection, +1 convention (x1, y1, x2, y2)."""
    ix = np.maximum(0, np.minimum(gt[:, None, 2], det[None, :, 2]) - np.maximum(gt[:, None, 0], det[None, :, 0]) + 1)
    iy = np.maximum(0, np.minimum(gt[:, None, 3], det[None, :, 3]) - np.maximum(gt[:, None, 1], det[None, :, 1]) + 1)
    inter = ix * iy
    area = lambda b: (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    return inter / (area(gt)[:, None] + area(det)[None, :] - inter)


def mask_canvas(masks, width, height, shape):
    canvas = np.zeros((height, width), bool)
    for x1, y1, x2, y2 in masks:
        c0, r0 = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
        c1, r1 = min(width, int(np.ceil(x2))), min(height, int(np.ceil(y2)))
        if c1 <= c0 or r1 <= r0:
            continue
        if shape == "box":
            canvas[r0:r1, c0:c1] = True
            continue
        cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
        yy, xx = np.mgrid[r0:r1, c0:c1]
        canvas[r0:r1, c0:c1] |= ((xx + 0.5 - cx) / rx) ** 2 + ((yy + 0.5 - cy) / ry) ** 2 <= 1
    return canvas


def score(annotations, report, shape, mask_scale):
    found = {os.path.basename(f["input"]): f for f in report["files"]}
    levels = ("easy", "medium", "hard")
    hits, counted = dict.fromkeys(levels, 0), dict.fromkeys(levels, 0)
    bin_hits, bin_counted = np.zeros(4), np.zeros(4)
    false_pos = covered = coverable = missing = failed = 0
    for name, a in annotations.items():
        gt = np.array(a["boxes"], float).reshape(-1, 4)
        gt = np.c_[gt[:, :2], gt[:, :2] + gt[:, 2:]]
        f = found.get(name)
        if f is None or f.get("status") == "failed":
            missing += f is None
            failed += f is not None
            faces = []
        else:
            faces = f["faces"]
        det = np.array([x["box"] for x in faces], float).reshape(-1, 4)
        if len(det):
            iou = iou_matrix(gt, det)
            hit = iou.max(1) >= 0.5
            false_pos += int((iou.max(0) < 0.5).sum())
        else:
            hit = np.zeros(len(gt), bool)
        for level in levels:
            hits[level] += int(hit[a[level]].sum())
            counted[level] += len(a[level])
        hard = np.array(a["hard"], int)
        heights = gt[hard, 3] - gt[hard, 1]
        for k in range(4):
            in_bin = (heights >= HEIGHT_BINS[k]) & (heights < HEIGHT_BINS[k + 1])
            bin_counted[k] += in_bin.sum()
            bin_hits[k] += hit[hard][in_bin].sum()
        masks = []
        for x in faces:
            if x.get("mask"):
                masks.append(x["mask"])
            elif x.get("action", "redacted") == "redacted":
                b = x["box"]
                cx, cy, hw, hh = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2, (b[2] - b[0]) * mask_scale / 2, (b[3] - b[1]) * mask_scale / 2
                masks.append([cx - hw, cy - hh, cx + hw, cy + hh])
        width = int(np.ceil(max(gt[:, 2].max(), f.get("width") or 0 if f else 0))) + 1
        height = int(np.ceil(max(gt[:, 3].max(), f.get("height") or 0 if f else 0))) + 1
        canvas = mask_canvas(masks, width, height, shape)
        for i in hard:
            x1, y1, x2, y2 = gt[i]
            if y2 - y1 < MIN_COVERED_HEIGHT:
                continue
            coverable += 1
            region = canvas[int(y1):int(np.ceil(y2)), int(x1):int(np.ceil(x2))]
            covered += bool(region.size) and region.mean() >= COVERED_SHARE
    recall = {level: hits[level] / max(counted[level], 1) for level in levels}
    return {
        "recall": recall,
        "bins": [bin_hits[k] / max(bin_counted[k], 1) for k in range(4)],
        "fp_per_photo": false_pos / len(annotations),
        "coverage": covered / max(coverable, 1),
        "left": coverable - covered,
        "coverable": coverable,
        "missing": missing,
        "failed": failed,
    }


def main(argv):
    if len(argv) < 2 or any("=" not in a for a in argv[1:]):
        sys.exit(__doc__)
    annotations = json.load(open(argv[0]))
    shape = os.environ.get("MASK_SHAPE", "ellipse")
    mask_scale = float(os.environ.get("MASK_SCALE", "1.3"))
    print(f"{len(annotations)} photos; counted faces: "
          + ", ".join(f"{lv} {sum(len(a[lv]) for a in annotations.values())}" for lv in ("easy", "medium", "hard")))
    print(f"{'tool':<28} {'recall e / m / h':>20} {'<16 / 16-32 / 32-64 / >=64 px':>32} {'FP/photo':>9} {'coverage (left)':>18}")
    for arg in argv[1:]:
        name, path = arg.split("=", 1)
        r = score(annotations, json.load(open(path)), shape, mask_scale)
        rec, bins = r["recall"], r["bins"]
        print(f"{name:<28} {rec['easy']:>6.3f} / {rec['medium']:.3f} / {rec['hard']:.3f}"
              f" {' / '.join(f'{b:.2f}' for b in bins):>32} {r['fp_per_photo']:>9.1f}"
              f" {r['coverage']:>9.3f} ({r['left']:>4})")
        if r["missing"] or r["failed"]:
            print(f"  warning: {r['missing']} photos missing from the report, {r['failed']} failed (counted as finding nothing)")


if __name__ == "__main__":
    main(sys.argv[1:])
