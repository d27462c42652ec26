#!/usr/bin/env python3
"""Builds the two benchmark image sets for scripts/bench.sh:
- WEB: the source photos (hard-linked, or copied across file systems) and the photos of any
  --extra DIR (the annotated WIDER FACE dev set), as published on the web (up to 1280 px);
- LARGE: an event-sized rendition of each source, upscaled with Lanczos to about MEGAPIXELS
  (default 12) and saved as JPEG quality 92 (`<stem>_12mp.jpg`), and two composites of a
  speaker's close-up (obama.jpg filling the frame's height) in front of an audience (t1.jpg's
  group): `speaker_and_audience_12mp.jpg` with the group at native scale bottom right and at
  40% and 15% bottom left (faces of 18-22 px), and `speaker_and_far_audience_12mp.jpg` with
  the group at 12% only (faces of 14-17 px). Their faces are written to
  LARGE/../large-annotations.json in the layout of wider_dev's annotations.json (every face
  counted at every level), from the faces of obama.jpg and t1.jpg below.
Idempotent: existing renditions of the right size are kept. Prints one line per image.

usage: bench_images.py WEB LARGE SOURCE... [--extra DIR] [--megapixels N]
(runs in the bench venv: needs Pillow)
"""
import json
import math
import os
import shutil
import sys

from PIL import Image


def link_or_copy(src, dst):
    if os.path.exists(dst):
        if os.path.samefile(src, dst) or os.path.getsize(src) == os.path.getsize(dst):
            return
        os.remove(dst)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def rendition(src, dst, megapixels):
    with Image.open(src) as im:
        w, h = im.size
    s = math.sqrt(megapixels * 1e6 / (w * h))
    size = (round(w * s), round(h * s))
    if os.path.exists(dst):
        with Image.open(dst) as done:
            if done.size == size:
                return size
    with Image.open(src) as im:
        rgb = im.convert("RGB")
        big = rgb.resize(size, Image.Resampling.LANCZOS)
    tmp = dst + ".tmp"
    big.save(tmp, format="JPEG", quality=92)
    os.replace(tmp, dst)
    return size


# Faces (x, y, w, h) of the fixture photos the composites are made of, as CenterFace boxes them
# on each photo alone (checked by eye; the photos are pinned by sha256 in fixtures/MANIFEST.tsv).
SPEAKER_FACE = (372, 112, 228, 308)  # obama.jpg, 910x1137
GROUP_FACES = [(62, 268, 103, 124), (748, 345, 99, 137), (465, 265, 106, 146),
               (1132, 266, 99, 136), (904, 59, 109, 142), (272, 153, 100, 114)]  # t1.jpg, 1280x886
COMPOSITES = {"speaker_and_audience": (1.0, 0.4, 0.15), "speaker_and_far_audience": (0.12,)}


def composite(speaker_path, group_path, scales, dst, size=(4000, 3000)):
    """Draws the composite (if missing) and returns its faces."""
    w, h = size
    with Image.open(speaker_path) as im:
        speaker = im.convert("RGB")
    with Image.open(group_path) as im:
        group = im.convert("RGB")
    side = h * speaker.width // speaker.height
    k = h / speaker.height
    x0 = (w - side) // 2
    sx, sy, sw, sh = SPEAKER_FACE
    faces = [(x0 + sx * side / speaker.width, sy * k, sw * side / speaker.width, sh * k)]
    canvas = Image.new("RGB", size, (90, 96, 104))
    canvas.paste(speaker.resize((side, h), Image.Resampling.BILINEAR), (x0, 0))
    left = right = h
    for scale in scales:
        gw, gh = int(group.width * scale), int(group.height * scale)
        copy = group.resize((gw, gh), Image.Resampling.LANCZOS)
        if scale == 1.0:
            right -= gh
            x, y = w - gw, right
        else:
            left -= gh
            x, y = 0, left
        canvas.paste(copy, (x, y))
        fx, fy = gw / group.width, gh / group.height
        faces += [(x + fx * a, y + fy * b, fx * c, fy * d) for a, b, c, d in GROUP_FACES]
    if not os.path.exists(dst):
        tmp = dst + ".tmp"
        canvas.save(tmp, format="JPEG", quality=92)
        os.replace(tmp, dst)
    return faces


def fill(out, files):
    """Leaves exactly `files` ({name: source or None for made here}) in `out`."""
    os.makedirs(out, exist_ok=True)
    for name, src in files.items():
        if src:
            link_or_copy(src, os.path.join(out, name))
    # Leftovers of an earlier set would be benchmarked too.
    for name in os.listdir(out):
        if name not in files:
            os.remove(os.path.join(out, name))
    for name in sorted(files):
        path = os.path.join(out, name)
        with Image.open(path) as im:
            w, h = im.size
        print(f"  {name:40s} {w:5d}x{h:<5d} {w * h / 1e6:5.1f} MP {os.path.getsize(path) / 1e6:6.2f} MB")


def option(argv, name, default):
    if name not in argv:
        return default
    i = argv.index(name)
    value = argv[i + 1]
    del argv[i:i + 2]
    return value


def main(argv):
    megapixels = float(option(argv, "--megapixels", 12.0))
    extra = option(argv, "--extra", None)
    if len(argv) < 3:
        sys.exit(__doc__)
    web, large, sources = argv[0], argv[1], sorted(argv[2:])
    web_files = {os.path.basename(s): s for s in sources}
    if extra:
        web_files.update({n: os.path.join(extra, n) for n in sorted(os.listdir(extra))})
    print(f"web ({web}):")
    fill(web, web_files)
    os.makedirs(large, exist_ok=True)
    large_files = {}
    for src in sources:
        big = f"{os.path.splitext(os.path.basename(src))[0]}_{megapixels:g}mp.jpg"
        rendition(src, os.path.join(large, big), megapixels)
        large_files[big] = None
    by_name = {os.path.basename(s): s for s in sources}
    annotations = {}
    if "obama.jpg" in by_name and "t1.jpg" in by_name:
        for stem, scales in COMPOSITES.items():
            name = f"{stem}_{megapixels:g}mp.jpg"
            faces = composite(by_name["obama.jpg"], by_name["t1.jpg"], scales, os.path.join(large, name))
            every = list(range(len(faces)))
            annotations[name] = {"boxes": [[round(v, 1) for v in f] for f in faces], "invalid": [0] * len(faces),
                                 "easy": every, "medium": every, "hard": every}
            large_files[name] = None
    print(f"large ({large}):")
    fill(large, large_files)
    with open(os.path.join(os.path.dirname(os.path.abspath(large)), "large-annotations.json"), "w") as f:
        json.dump(annotations, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1:])
