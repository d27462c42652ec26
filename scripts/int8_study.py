#!/usr/bin/env python3
"""int8 (QDQ) CenterFace against fp32: quantisation, speed and single-pass recall (issue 12, 4).

A development study, not part of set-up. Runs in a venv with onnxruntime 1.31.1, onnx, numpy
and opencv (.cache/bench-venv); calibrates on the project's own fixtures/photos only; scores on
../shared/fixtures/annotated/wider_dev (WIDER protocol, IoU 0.5, as scripts/eval_detection.py).

    PY=.cache/bench-venv/bin/python
    $PY scripts/int8_study.py quantize OUT.onnx --u8 --exclude first10   # the variant kept
    $PY scripts/int8_study.py speed models/centerface.onnx OUT.onnx      # 1 thread, 1024x704, 2048x1408
    $PY scripts/int8_study.py recall models/centerface.onnx OUT.onnx --thresholds 0.05 0.15 0.3

quantize: models/centerface.onnx -> opset 13 -> quant_pre_process -> quantize_static (QDQ,
per-channel int8 weights; --u8: uint8 activations, else int8), calibrated (MinMax unless
--method) on the fixture photos at long side <= 1280 and <= 640 (or --crops: 512 px crops at
x0.5, x1, x2). --exclude keeps nodes in fp32: firstN (the first N Conv nodes of the fp32
model), heads (the output nodes), lastN, out:T1+T2 (nodes by output tensor). The output is
deterministic on one machine (two runs gave the same sha256).

Findings (AMD EPYC, 2 cores, AVX-512 VNNI, no AMX; ORT 1.31.1; other load on the cores):
- int8 activations (S8S8) are barely faster than fp32: ORT leaves 26 of 60 Convs in fp32.
  uint8 activations (U8S8): all 60 Convs become QLinearConv, ~2.1x faster at 1 thread.
- Fully quantised U8S8 loses recall in a single pass at native size (thr 0.3: easy -0.028,
  medium -0.011, hard -0.010). Excluding the heads or the first conv, crops, entropy /
  percentile / moving-average calibration, per-tensor or symmetric activations do not help
  (largest heatmap errors 0.15-0.4 in all of them). Most of the error comes from the first
  Conv layers: keeping the first 10 in fp32 (--exclude first10) brings single-pass recall to
  within 0.005 at thr 0.05 / 0.15 (hard -0.009 at thr 0.3) at ~1.5-1.7x the fp32 speed, and
  the full pipeline (scripts/eval_detection.sh, balanced) within +0.002 of fp32.
  1 thread, median ms, fp32 / int8 first10 / int8 all: 1024x704 119 / 76 / 56,
  2048x1408 516 / 309 / 222.
  eval_detection.sh recall e/m/h, FP/photo (int8 = first10 in a copy of models/ whose
  manifest names its sha256, blurgate --models DIR):
    balanced fp32 0.958/0.953/0.870 32.8   int8 0.958/0.955/0.872 31.9
    fast     fp32 0.940/0.919/0.673 11.9   int8 0.935/0.917/0.663 12.3 (hard -0.010)
"""
import argparse
import glob
import json
import os
import shutil
import sys
import tempfile
import time

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from eval_detection import iou_matrix  # noqa: E402 (the scripts folder is not a package)
import onnx
import onnxruntime as ort

FP32 = "models/centerface.onnx"
CALIB = "fixtures/photos"
DEV = "../shared/fixtures/annotated/wider_dev"


def to_input(rgb):
    h, w = rgb.shape[:2]
    ph, pw = -(-h // 32) * 32, -(-w // 32) * 32
    x = np.zeros((1, 3, ph, pw), np.float32)
    x[0, :, :h, :w] = rgb.transpose(2, 0, 1)
    return x


def calib_inputs(max_sides=(1280, 640)):
    out = []
    for path in sorted(glob.glob(os.path.join(CALIB, "*"))):
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32)
        for side in max_sides:
            s = min(1.0, side / max(rgb.shape[:2]))
            img = cv2.resize(rgb, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else rgb
            out.append(to_input(img))
    return out


def calib_crops(size=512, scales=(0.5, 1.0, 2.0), per_image=4):
    """Fixed-size crops (for histogram calibration) of each fixture photo at several scales."""
    rng = np.random.default_rng(0)
    out = []
    for path in sorted(glob.glob(os.path.join(CALIB, "*"))):
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32)
        for s in scales:
            img = cv2.resize(rgb, None, fx=s, fy=s, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
            h, w = img.shape[:2]
            for _ in range(per_image):
                y = int(rng.integers(0, max(1, h - size + 1)))
                x = int(rng.integers(0, max(1, w - size + 1)))
                crop = np.zeros((size, size, 3), np.float32)
                c = img[y:y + size, x:x + size]
                crop[:c.shape[0], :c.shape[1]] = c
                out.append(to_input(crop))
    return out


def quantize(args):
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src = onnx.load(FP32)
    if src.opset_import[0].version < 13:
        src = onnx.version_converter.convert_version(src, 13)
    for n in src.graph.node:
        n.name = n.name or f"{n.op_type}_{n.output[0]}"
    tmp = tempfile.mkdtemp()
    tmp13 = os.path.join(tmp, "opset13.onnx")
    onnx.save(src, tmp13)
    pre = os.path.join(tmp, "pre.onnx")
    quant_pre_process(tmp13, pre, skip_symbolic_shape=True)
    inputs = calib_crops(per_image=args.per_image) if args.crops else calib_inputs()

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(inputs)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {"input.1": x}

    m = onnx.load(pre)
    convs = [n.name for n in m.graph.node if n.op_type in ("Conv", "ConvTranspose")]
    exclude = []
    for spec in filter(None, (args.exclude or "").split(",")):
        if spec.startswith("first"):
            # the first N Conv nodes of the fp32 model (the stem and the first backbone blocks)
            k = int(spec[5:] or 1)
            exclude += [n.name for n in src.graph.node if n.op_type == "Conv"][:k]
        elif spec == "heads":
            # the four output heads: nodes producing graph outputs
            outs = {o.name for o in m.graph.output}
            exclude += [n.name for n in m.graph.node if set(n.output) & outs]
        elif spec.startswith("out:"):
            # nodes by output tensor name
            exclude += [n.name for n in m.graph.node if n.output[0] in spec[4:].split("+")]
        elif spec.startswith("last"):
            k = int(spec[4:] or 1)
            exclude += convs[-k:]
        else:
            exclude.append(spec)
    print("nodes:", len(m.graph.node), "convs:", len(convs), "excluded:", exclude)
    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[args.method]
    extra = {}
    if args.method == "percentile":
        extra["CalibPercentile"] = args.percentile
    if args.moving_average:
        extra["CalibMovingAverage"] = True
    if args.sym:
        extra["ActivationSymmetric"] = True
    quantize_static(pre, args.out, Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=not args.per_tensor, activation_type=QuantType.QUInt8 if args.u8 else QuantType.QInt8,
                    weight_type=QuantType.QInt8, calibrate_method=method, nodes_to_exclude=exclude,
                    op_types_to_quantize=args.ops.split(",") if args.ops else None, extra_options=extra)
    shutil.rmtree(tmp)
    print("wrote", args.out)


def session(path, threads=1):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def speed(args):
    for path in args.models:
        s = session(path)
        for (h, w) in ((704, 1024), (1408, 2048)):
            x = np.random.default_rng(0).uniform(0, 255, (1, 3, h, w)).astype(np.float32)
            s.run(None, {"input.1": x})
            ts = []
            for _ in range(args.reps):
                t = time.perf_counter()
                s.run(None, {"input.1": x})
                ts.append(time.perf_counter() - t)
            print(f"{path:40s} {w}x{h}: median {np.median(ts)*1000:8.1f} ms  min {min(ts)*1000:8.1f} ms")
        sys.stdout.flush()


def nms(boxes, scores, thr=0.3):
    order = scores.argsort()[::-1]
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        xx1 = np.maximum(boxes[i, 0], boxes[order[1:], 0])
        yy1 = np.maximum(boxes[i, 1], boxes[order[1:], 1])
        xx2 = np.minimum(boxes[i, 2], boxes[order[1:], 2])
        yy2 = np.minimum(boxes[i, 3], boxes[order[1:], 3])
        inter = np.maximum(0, xx2 - xx1) * np.maximum(0, yy2 - yy1)
        a = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        iou = inter / np.maximum(a[i] + a[order[1:]] - inter, 1e-9)
        order = order[1:][iou < thr]
    return keep


def decode(outs, thr, w, h):
    heat, scale, off = outs[0][0, 0], outs[1][0], outs[2][0]
    r, c = np.where(heat > thr)
    if not len(r):
        return np.zeros((0, 4)), np.zeros(0)
    bh, bw = np.exp(scale[0, r, c]) * 4, np.exp(scale[1, r, c]) * 4
    x1 = np.clip((c + off[1, r, c] + 0.5) * 4 - bw / 2, 0, w)
    y1 = np.clip((r + off[0, r, c] + 0.5) * 4 - bh / 2, 0, h)
    boxes = np.stack([x1, y1, np.minimum(x1 + bw, w), np.minimum(y1 + bh, h)], 1)
    s = heat[r, c]
    k = nms(boxes, s)
    return boxes[k], s[k]


def recall(args):
    ann = json.load(open(os.path.join(DEV, "annotations.json")))
    sess = {m: session(m, args.threads) for m in args.models}
    levels = ("easy", "medium", "hard")
    res = {m: {t: {"hits": dict.fromkeys(levels, 0), "fp": 0} for t in args.thresholds} for m in args.models}
    counted = dict.fromkeys(levels, 0)
    heat_diff = {m: [] for m in args.models}
    for name, a in ann.items():
        bgr = cv2.imread(os.path.join(DEV, "images", name))
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32)
        h, w = rgb.shape[:2]
        if args.zoom != 1:
            rgb = cv2.resize(rgb, None, fx=args.zoom, fy=args.zoom, interpolation=cv2.INTER_LINEAR)
        x = to_input(rgb)
        gt = np.array(a["boxes"], float).reshape(-1, 4)
        gt = np.c_[gt[:, :2], gt[:, :2] + gt[:, 2:]]
        for lv in levels:
            counted[lv] += len(a[lv])
        ref = None
        for m, s in sess.items():
            outs = s.run(None, {"input.1": x})
            if ref is None:
                ref = outs[0]
            heat_diff[m].append(float(np.abs(outs[0] - ref).max()))
            for t in args.thresholds:
                det, _ = decode(outs, t, rgb.shape[1], rgb.shape[0])
                det = det / args.zoom
                r = res[m][t]
                if len(det):
                    iou = iou_matrix(gt, det)
                    hit = iou.max(1) >= 0.5
                    r["fp"] += int((iou.max(0) < 0.5).sum())
                else:
                    hit = np.zeros(len(gt), bool)
                for lv in levels:
                    r["hits"][lv] += int(hit[a[lv]].sum())
    n = len(ann)
    print(f"zoom {args.zoom}: counted " + ", ".join(f"{lv} {counted[lv]}" for lv in levels))
    for m in args.models:
        for t in args.thresholds:
            r = res[m][t]
            rec = " / ".join(f"{r['hits'][lv] / counted[lv]:.4f}" for lv in levels)
            print(f"{m:40s} thr {t:.2f}: recall e/m/h {rec}  FP/photo {r['fp'] / n:.1f}")
        print(f"{m:40s} max |heat - fp32 heat| per photo: median {np.median(heat_diff[m]):.4f} max {max(heat_diff[m]):.4f}")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("quantize")
    q.add_argument("out")
    q.add_argument("--method", default="minmax")
    q.add_argument("--exclude")
    q.add_argument("--per-tensor", action="store_true")
    q.add_argument("--u8", action="store_true")
    q.add_argument("--crops", action="store_true")
    q.add_argument("--sym", action="store_true")
    q.add_argument("--ops")
    q.add_argument("--moving-average", action="store_true")
    q.add_argument("--per-image", type=int, default=4)
    q.add_argument("--percentile", type=float, default=99.999)
    s = sub.add_parser("speed")
    s.add_argument("models", nargs="+")
    s.add_argument("--reps", type=int, default=5)
    r = sub.add_parser("recall")
    r.add_argument("models", nargs="+")
    r.add_argument("--thresholds", type=float, nargs="+", default=[0.1, 0.3])
    r.add_argument("--zoom", type=float, default=1.0)
    r.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    {"quantize": quantize, "speed": speed, "recall": recall}[args.cmd](args)


if __name__ == "__main__":
    main()
