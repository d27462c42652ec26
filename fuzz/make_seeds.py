#!/usr/bin/env python3
"""Writes the tiny seed inputs in fuzz/seeds/ (committed; run again only to change them).

Needs Pillow and PyNaCl (`python3 -m venv /tmp/v && /tmp/v/bin/pip install pillow pynacl`).
Every picture is synthetic (no photo of anyone), a few hundred bytes to a few KB.

seeds/decode_preprocess/: one small file per format and feature the decoder handles:
  JPEG baseline/progressive/grey/CMYK/EXIF orientation/ICC, PNG of every colour type,
  16-bit, palette with transparency, GIF still and animated, WebP lossy/lossless/alpha/
  animated, TIFF with each compression and layout, BMP 1/4/8/24/32-bit.
seeds/register_open/: first byte even = a sealed register file (key 0x11 * 32),
  first byte odd = the register's plaintext JSON.
"""

import io
import json
import os
import sys

from PIL import Image, ImageCms, ImageDraw
from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_encrypt

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = bytes([0x11] * 32)


def picture(mode, size=(16, 12)):
    img = Image.new("RGB", size, (200, 180, 160))
    d = ImageDraw.Draw(img)
    d.ellipse((3, 2, size[0] - 3, size[1] - 2), fill=(90, 60, 40))
    d.line((0, 0, size[0], size[1]), fill=(10, 200, 30))
    if mode == "RGBA":
        img = img.convert("RGBA")
        img.putalpha(Image.linear_gradient("L").resize(size))
        return img
    if mode == "LA":
        img = img.convert("LA")
        img.putalpha(Image.linear_gradient("L").resize(size))
        return img
    return img.convert(mode)


def exif(orientation):
    e = Image.Exif()
    e[0x0112] = orientation
    return e.tobytes()


def save(out, name, img, fmt, **kw):
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    with open(os.path.join(out, name), "wb") as f:
        f.write(buf.getvalue())


def decode_seeds(out):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    rgb = picture("RGB")
    save(out, "baseline.jpg", rgb, "JPEG", quality=80)
    save(out, "progressive.jpg", rgb, "JPEG", quality=60, progressive=True)
    save(out, "subsampling444.jpg", rgb, "JPEG", quality=90, subsampling=0)
    save(out, "grey.jpg", picture("L"), "JPEG")
    save(out, "cmyk.jpg", picture("CMYK"), "JPEG")
    save(out, "orient6_icc.jpg", rgb, "JPEG", exif=exif(6), icc_profile=icc)
    save(out, "orient3.jpg", rgb, "JPEG", exif=exif(3))
    # Sides of whole 16-pixel blocks: these take the block-level rewrite's turn.
    save(out, "orient6_whole_blocks.jpg", picture("RGB", (32, 16)), "JPEG", exif=exif(6))
    save(out, "orient7_whole_blocks.jpg", picture("RGB", (32, 32)), "JPEG", exif=exif(7), progressive=True)
    save(out, "rgb.png", rgb, "PNG")
    save(out, "rgba.png", picture("RGBA"), "PNG")
    save(out, "grey.png", picture("L"), "PNG")
    save(out, "grey_alpha.png", picture("LA"), "PNG")
    save(out, "grey16.png", picture("L").convert("I;16"), "PNG")
    save(out, "mono.png", picture("1"), "PNG")
    pal = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    save(out, "palette_trns.png", pal, "PNG", transparency=0)
    save(out, "orient8_icc.png", rgb, "PNG", exif=exif(8), icc_profile=icc)
    save(out, "still.gif", pal, "GIF", transparency=1)
    frames = [pal, rgb.rotate(90).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)]
    save(out, "animated.gif", frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    save(out, "lossy.webp", rgb, "WEBP", quality=50)
    save(out, "lossless.webp", rgb, "WEBP", lossless=True)
    save(out, "alpha.webp", picture("RGBA"), "WEBP", quality=50)
    save(out, "orient6_icc.webp", rgb, "WEBP", exif=exif(6), icc_profile=icc)
    save(out, "animated.webp", rgb, "WEBP", save_all=True, append_images=[rgb.rotate(180)], duration=50)
    save(out, "raw.tif", rgb, "TIFF")
    save(out, "lzw.tif", rgb, "TIFF", compression="tiff_lzw")
    save(out, "deflate.tif", rgb, "TIFF", compression="tiff_adobe_deflate")
    save(out, "packbits.tif", picture("L"), "TIFF", compression="packbits")
    save(out, "jpeg.tif", rgb, "TIFF", compression="jpeg")
    save(out, "rgba.tif", picture("RGBA"), "TIFF")
    save(out, "grey16.tif", picture("L").convert("I;16"), "TIFF")
    save(out, "float.tif", picture("L").convert("F"), "TIFF")
    save(out, "cmyk.tif", picture("CMYK"), "TIFF")
    save(out, "mono_g4.tif", picture("1"), "TIFF", compression="group4")
    save(out, "orient6.tif", rgb, "TIFF", exif=exif(6))
    save(out, "pages.tif", rgb, "TIFF", save_all=True, append_images=[picture("L")])
    save(out, "rgb24.bmp", rgb, "BMP")
    save(out, "rgba32.bmp", picture("RGBA"), "BMP")
    save(out, "pal8.bmp", pal, "BMP")
    save(out, "pal4.bmp", rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16), "BMP", bits=4)
    save(out, "mono.bmp", picture("1"), "BMP")


def seal(plain):
    nonce = bytes(range(24))
    header = b"BLURGREG" + (1).to_bytes(2, "big") + (1).to_bytes(2, "big") + nonce
    return header + crypto_aead_xchacha20poly1305_ietf_encrypt(plain, header, nonce, KEY)


def register_seeds(out):
    empty = {"people": []}
    one = {
        "people": [
            {
                "id": "p-0001",
                "label": "Speaker A",
                "refuses": ["promotion", "press"],
                "enrolled_at": "2026-05-01T09:30:00.25+02:00",
                "expires_at": [2027, 181],  # time::Date without serde-human-readable: (year, ordinal)
                "embeddings": [[0.6, 0.8, 0.0, 0.0], [1.0, -2.0, 3.0, -4.0]],
            },
            {
                "id": "p-0002",
                "refuses": [],
                "enrolled_at": "2026-01-02T03:04:05Z",
                "embeddings": [[1e-20, 3e-20]],
            },
        ]
    }
    for name, reg in [("empty", empty), ("two_people", one)]:
        plain = json.dumps(reg, separators=(",", ":")).encode()
        with open(os.path.join(out, f"sealed_{name}.bin"), "wb") as f:
            f.write(b"\x00" + seal(plain))
        with open(os.path.join(out, f"plain_{name}.json.bin"), "wb") as f:
            f.write(b"\x01" + plain)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "seeds")
    for target, make in [("decode_preprocess", decode_seeds), ("register_open", register_seeds)]:
        out = os.path.join(root, target)
        os.makedirs(out, exist_ok=True)
        make(out)


if __name__ == "__main__":
    main()
