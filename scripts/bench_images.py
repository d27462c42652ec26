#!/usr/bin/env python3
"""Builds the benchmark image set for scripts/bench.sh: the source photos (hard-linked, or
copied across file systems) plus an event-sized rendition of each, upscaled with Lanczos to
about MEGAPIXELS (default 12) and saved as JPEG quality 92 (`<stem>_12mp.jpg`). Idempotent:
existing renditions of the right size are kept. Prints one line per image of the set.

usage: bench_images.py OUTDIR SOURCE... [--megapixels N]
(runs in the bench venv: needs Pillow)
"""
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


def main(argv):
    megapixels = 12.0
    if "--megapixels" in argv:
        i = argv.index("--megapixels")
        megapixels = float(argv[i + 1])
        del argv[i:i + 2]
    if len(argv) < 2:
        sys.exit(__doc__)
    out, sources = argv[0], sorted(argv[1:])
    os.makedirs(out, exist_ok=True)
    wanted = set()
    for src in sources:
        name = os.path.basename(src)
        link_or_copy(src, os.path.join(out, name))
        stem = os.path.splitext(name)[0]
        big = f"{stem}_{megapixels:g}mp.jpg"
        rendition(src, os.path.join(out, big), megapixels)
        wanted.update((name, big))
    # Leftovers of an earlier set would be benchmarked too.
    for name in os.listdir(out):
        if name not in wanted:
            os.remove(os.path.join(out, name))
    for name in sorted(wanted):
        path = os.path.join(out, name)
        with Image.open(path) as im:
            w, h = im.size
        print(f"  {name:34s} {w:5d}x{h:<5d} {w * h / 1e6:5.1f} MP {os.path.getsize(path) / 1e6:6.2f} MB")


if __name__ == "__main__":
    main(sys.argv[1:])
