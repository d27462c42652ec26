#!/usr/bin/env python3
"""Badges on redacted people: can an independent reader still read them? (scripts/eval_badges.sh)

For each photo: blurgate finds the faces (`--badges keep`); a white name card on a lanyard line
is drawn below each face (DejaVu Sans Bold, letters 8 to 40 px, scaled to the face); blurgate
redacts the carded photo (`--policy all`, badges redacted, defaults otherwise) and Tesseract
(Debian's tesseract-ocr, not the network blurgate uses) reads every card before and after.
A name counts as read when Tesseract's text holds its surname. With --register, a register
holding one person is used too: strangers' cards must come out with every pixel as it was.

    python3 scripts/eval_badges.py OUT_DIR PHOTO... [--register REG --enrolled-photo PHOTO]

Prints one line per photo and the totals; writes OUT_DIR/summary.json.
"""
import json
import os
import random
import re
import subprocess
import sys

from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
CAP_HEIGHT = 0.73  # DejaVu Sans Bold: capital height per pixel of font size
NAMES = [("ANNA", "KOWALSKI"), ("JOHN", "MBEKI"), ("MARIA", "FERREIRA"), ("PETER", "LINDQVIST"),
         ("CHEN", "WANGLEI"), ("SARA", "OKONKWO"), ("DAVID", "MORENO"), ("LENA", "HOFFMANN"),
         ("OMAR", "HADDAD"), ("JULIA", "NOVAKOVA"), ("KENJI", "TANAKA"), ("ROSA", "DELGADO")]
# Letter height as a share of the face box's height, cycled over the faces: real badges put
# names at about 0.05-0.15 of a face; larger ones are table cards.
LETTER_SHARES = [0.10, 0.14, 0.2, 0.28]


def blurgate(*args):
    exe = os.environ.get("BLURGATE", "target/release/blurgate")
    out = subprocess.run([exe, *args], capture_output=True, text=True)
    if out.returncode not in (0, 3):
        sys.exit(f"blurgate {' '.join(args)} failed ({out.returncode}): {out.stderr}")


def report(path):
    with open(path) as f:
        return json.load(f)["files"][0]


def place_cards(img, faces, seed):
    """Draws a card below each face; returns [(name, surname, (x0, y0, x1, y1))]."""
    rnd = random.Random(seed)
    draw = ImageDraw.Draw(img)
    taken = [tuple(f["mask"] or f["box"]) for f in faces]
    cards = []
    for i, f in enumerate(sorted(faces, key=lambda f: f["box"][0])):
        x1, y1, x2, y2 = f["box"]
        fw, fh = x2 - x1, y2 - y1
        letters = max(8, min(40, round(fh * LETTER_SHARES[i % len(LETTER_SHARES)])))
        font = ImageFont.truetype(FONT, round(letters / CAP_HEIGHT))
        first, last = NAMES[(seed + i) % len(NAMES)]
        text = f"{first} {last}"
        l, t, r, b = draw.textbbox((0, 0), text, font=font)
        pad = max(3, letters // 2)
        cw, ch = r - l + 2 * pad, b - t + 2 * pad
        cx = (x1 + x2) / 2 + rnd.uniform(-0.3, 0.3) * fw
        top = y2 + rnd.uniform(1.1, 2.0) * fh
        box = (round(cx - cw / 2), round(top), round(cx + cw / 2), round(top + ch))
        if box[0] < 0 or box[1] < 0 or box[2] > img.width or box[3] > img.height:
            continue
        if any(box[0] < o[2] and o[0] < box[2] and box[1] < o[3] and o[1] < box[3] for o in taken):
            continue
        taken.append(box)
        line = max(1, letters // 6)
        draw.line([((x1 + x2) / 2 - fw * 0.3, y2), (box[0] + cw * 0.3, box[1])], fill=(30, 60, 160), width=line)
        draw.line([((x1 + x2) / 2 + fw * 0.3, y2), (box[0] + cw * 0.7, box[1])], fill=(30, 60, 160), width=line)
        draw.rectangle(box, fill=(255, 255, 255), outline=(40, 40, 40), width=max(1, line // 2))
        draw.text((box[0] + pad - l, box[1] + pad - t), text, font=font, fill=(0, 0, 0))
        cards.append({"name": text, "surname": last, "box": box, "letters": letters, "face": f["box"]})
    return cards


def reads(img, card):
    """Does Tesseract read the card's surname? The crop (with a margin) is enlarged to give it
    letters of at least 30 px: the reader is given every chance."""
    x0, y0, x1, y1 = card["box"]
    m = max(4, (y1 - y0) // 3)
    crop = img.crop((max(0, x0 - m), max(0, y0 - m), min(img.width, x1 + m), min(img.height, y1 + m)))
    k = max(1.0, 30 / card["letters"])
    crop = crop.resize((round(crop.width * k), round(crop.height * k)), Image.Resampling.LANCZOS)
    out = subprocess.run(["tesseract", "stdin", "stdout", "--psm", "7"], input=_png(crop), capture_output=True)
    text = re.sub(r"[^A-Z]", "", out.stdout.decode(errors="replace").upper())
    return card["surname"] in text


def _png(img):
    import io
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def changed(a, b, box):
    ca, cb = a.crop(box), b.crop(box)
    return sum(1 for p, q in zip(ca.getdata(), cb.getdata()) if p != q)


def main(argv):
    register = None
    if "--register" in argv:
        i = argv.index("--register")
        register = argv[i + 1]
        del argv[i:i + 2]
    out_dir, photos = argv[1], argv[2:]
    os.makedirs(out_dir, exist_ok=True)
    totals = {"photos": 0, "cards": 0, "read_before": 0, "read_after": 0, "changed": 0,
              "detection_ms": 0.0, "text_ms": 0.0, "ratios": []}
    strangers = {"cards": 0, "untouched": 0, "enrolled_cards": 0, "enrolled_changed": 0}
    for n, photo in enumerate(photos):
        stem = f"{n:03d}_" + os.path.splitext(os.path.basename(photo))[0]
        found = os.path.join(out_dir, stem + ".faces.json")
        blurgate("redact", photo, "--out", os.path.join(out_dir, "found"), "--report", found, "--badges", "keep",
                 "--dry-run", "-q")
        faces = report(found)["faces"]
        img = Image.open(photo).convert("RGB")
        cards = place_cards(img, faces, n)
        if not cards:
            continue
        carded = os.path.join(out_dir, stem + ".png")
        img.save(carded)
        rep = os.path.join(out_dir, stem + ".json")
        blurgate("redact", carded, "--out", os.path.join(out_dir, "out"), "--report", rep, "--policy", "all",
                 "--fresh", "-q")
        r = report(rep)
        after = Image.open(os.path.join(out_dir, "out", stem + ".png")).convert("RGB")
        before_read = [reads(img, c) for c in cards]
        after_read = [reads(after, c) for c in cards]
        n_changed = sum(changed(img, after, c["box"]) > 0 for c in cards)
        det = r["detection"]["inference_ms"]
        text = (r.get("text_detection") or {}).get("inference_ms", 0.0)
        totals["photos"] += 1
        totals["cards"] += len(cards)
        totals["read_before"] += sum(before_read)
        totals["read_after"] += sum(a and b for a, b in zip(before_read, after_read))
        totals["changed"] += n_changed
        totals["detection_ms"] += det
        totals["text_ms"] += text
        totals["ratios"].append(text / det if det else 0.0)
        print(f"{stem}: {len(cards)} cards ({min(c['letters'] for c in cards)}-{max(c['letters'] for c in cards)} px"
              f" letters), read before {sum(before_read)}, still read after {sum(a and b for a, b in zip(before_read, after_read))},"
              f" changed {n_changed}; text {text:.0f} ms vs detection {det:.0f} ms ({100 * text / det:.1f}%)", flush=True)
        if register:
            rep2 = os.path.join(out_dir, stem + ".reg.json")
            blurgate("redact", carded, "--out", os.path.join(out_dir, "reg"), "--report", rep2, "--register", register,
                     "--fresh", "-q")
            r2 = report(rep2)
            reg_after = Image.open(os.path.join(out_dir, "reg", stem + ".png")).convert("RGB")
            for c in cards:
                face = next((f for f in r2["faces"] if f["box"] == c["face"]), None)
                if face is None:
                    continue
                if face["action"] == "redacted":
                    strangers["enrolled_cards"] += 1
                    strangers["enrolled_changed"] += changed(img, reg_after, c["box"]) > 0
                else:
                    strangers["cards"] += 1
                    strangers["untouched"] += changed(img, reg_after, c["box"]) == 0
    ratios = sorted(totals.pop("ratios"))
    summary = {**totals, "register": strangers if register else None,
               "median_time_share": ratios[len(ratios) // 2] if ratios else None,
               "max_time_share": ratios[-1] if ratios else None}
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main(sys.argv)
