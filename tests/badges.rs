//! Badges, lanyard cards and name cards on redacted people (`--badges`): white cards with a
//! name, in DejaVu Sans Bold, drawn at test time on a lanyard line below the faces of fixture
//! photos, letters from 8 to 40 px.

use std::path::{Path, PathBuf};

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use blurgate::detect::FaceBox;
use blurgate::report::{Action, FileReport, FileStatus};
use image::{imageops, Rgb, RgbImage};

use crate::common::*;

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf";

/// A card drawn on a photo: where it is, which face it hangs from, and its letters' pixels.
struct Card {
    area: (u32, u32, u32, u32),
    face: FaceBox,
    ink: Vec<(u32, u32)>,
}

/// Draws `name` on a white card whose capitals are `letters` px tall, its top `top` px below the
/// chin of `face`, with a lanyard line up to the face; `None` where it would leave the photo or
/// touch one of `keep_clear`.
fn draw_card(
    img: &mut RgbImage,
    face: &FaceBox,
    name: &str,
    letters: f32,
    top: f32,
    keep_clear: &[FaceBox],
) -> Option<Card> {
    let data =
        std::fs::read(FONT).unwrap_or_else(|e| panic!("{FONT}: {e} (scripts/setup.sh installs fonts-dejavu-core)"));
    let font = FontRef::try_from_slice(&data).expect("DejaVu Sans Bold parses");
    let px = letters / 0.73; // DejaVu's capitals are 0.73 of the font's pixel size
    let scaled = font.as_scaled(PxScale::from(px));
    let width: f32 = name.chars().map(|c| scaled.h_advance(font.glyph_id(c))).sum();
    let pad = (letters / 2.0).max(3.0);
    let (cw, ch) = (width + 2.0 * pad, letters + 2.0 * pad);
    let cx = (face.x1 + face.x2) / 2.0;
    let (x0, y0) = (cx - cw / 2.0, face.y2 + top);
    let card = FaceBox { x1: x0, y1: y0, x2: x0 + cw, y2: y0 + ch };
    let clear = |b: &FaceBox| card.x2 < b.x1 || b.x2 < card.x1 || card.y2 < b.y1 || b.y2 < card.y1;
    if x0 < 0.0 || card.x2 >= img.width() as f32 || card.y2 >= img.height() as f32 || !keep_clear.iter().all(clear) {
        return None;
    }
    let area = (x0 as u32, y0 as u32, cw.ceil() as u32, ch.ceil() as u32);
    // The lanyard: two dark blue lines from the neck to the card's top corners.
    for (from, to) in [(face.x1 + face.width() * 0.25, x0 + cw * 0.2), (face.x2 - face.width() * 0.25, x0 + cw * 0.8)] {
        let steps = (top.max(1.0) * 2.0) as u32;
        for i in 0..=steps {
            let t = i as f32 / steps as f32;
            let (x, y) = (from + (to - from) * t, face.y2 + top * t);
            img.put_pixel(x as u32, (y as u32).min(img.height() - 1), Rgb([30, 60, 160]));
        }
    }
    for y in area.1..area.1 + area.3 {
        for x in area.0..area.0 + area.2 {
            img.put_pixel(x, y, Rgb([255, 255, 255]));
        }
    }
    let mut ink = Vec::new();
    let mut pen = x0 + pad;
    let baseline = y0 + pad + letters;
    for c in name.chars() {
        let mut glyph = scaled.scaled_glyph(c);
        glyph.position = ab_glyph::point(pen, baseline);
        pen += scaled.h_advance(font.glyph_id(c));
        let Some(outlined) = font.outline_glyph(glyph) else { continue };
        let bounds = outlined.px_bounds();
        outlined.draw(|gx, gy, coverage| {
            let (x, y) = (bounds.min.x as u32 + gx, bounds.min.y as u32 + gy);
            if coverage > 0.5 && x < img.width() && y < img.height() {
                img.put_pixel(x, y, Rgb([0, 0, 0]));
                ink.push((x, y));
            }
        });
    }
    assert!(!ink.is_empty(), "{name} was drawn");
    Some(Card { area, face: *face, ink })
}

const NAMES: [&str; 6] =
    ["ANNA KOWALSKI", "JOHN MBEKI", "MARIA FERREIRA", "PETER LINDQVIST", "SARA OKONKWO", "OMAR HADDAD"];

/// `photo` on a canvas with room below, a card under each face that has room for one (tried
/// 1.1 to 3 face heights below the chin), letters `letters[i]` px for the i-th face from the
/// left. Saved as PNG (lossless: every pixel the tool leaves alone compares equal).
fn carded(photo: &RgbImage, below: u32, letters: &[f32], dir: &Path, name: &str) -> (PathBuf, RgbImage, Vec<Card>) {
    let mut img = RgbImage::from_pixel(photo.width(), photo.height() + below, Rgb([120, 110, 100]));
    imageops::replace(&mut img, photo, 0, 0);
    let mut faces: Vec<FaceBox> = models().detector.detect(&img).unwrap().iter().map(|d| d.bbox).collect();
    faces.sort_by(|a, b| a.x1.total_cmp(&b.x1));
    let masks: Vec<FaceBox> = faces.iter().map(|f| f.scaled(1.5)).collect();
    let mut cards: Vec<Card> = Vec::new();
    for (i, face) in faces.iter().enumerate() {
        let mut clear = masks.clone();
        clear.extend(cards.iter().map(|c| {
            face_box([c.area.0 as f32, c.area.1 as f32, (c.area.0 + c.area.2) as f32, (c.area.1 + c.area.3) as f32])
                .scaled(1.2)
        }));
        let letters = letters[i % letters.len()];
        let card = (11..=30)
            .map(|k| k as f32 / 10.0 * face.height())
            .find_map(|top| draw_card(&mut img, face, NAMES[i % NAMES.len()], letters, top, &clear));
        cards.extend(card);
    }
    let path = dir.join(format!("{name}.png"));
    img.save(&path).unwrap();
    (path, img, cards)
}

/// Pixels of `card` whose ink `after` changed, as a share of its ink.
fn ink_changed(before: &RgbImage, after: &RgbImage, card: &Card) -> f32 {
    let changed = card.ink.iter().filter(|&&(x, y)| before.get_pixel(x, y) != after.get_pixel(x, y)).count();
    changed as f32 / card.ink.len() as f32
}

/// Does any pixel of `card`'s rectangle differ?
fn touched(before: &RgbImage, after: &RgbImage, card: &Card) -> bool {
    let (x0, y0, w, h) = card.area;
    (y0..y0 + h).any(|y| (x0..x0 + w).any(|x| before.get_pixel(x, y) != after.get_pixel(x, y)))
}

/// The pixels changed outside every mask the report lists (faces' and texts', rounded there to
/// 0.1 px, hence the tolerance): none may be.
fn changed_outside_masks(before: &RgbImage, after: &RgbImage, file: &FileReport) -> usize {
    let masks: Vec<[f32; 4]> =
        file.faces.iter().filter_map(|f| f.mask).chain(file.texts.iter().filter_map(|t| t.mask)).collect();
    let inside = |x: u32, y: u32| {
        let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
        masks.iter().any(|m| px >= m[0] - 0.1 && px < m[2] + 0.1 && py >= m[1] - 0.1 && py < m[3] + 0.1)
    };
    let outside: Vec<(u32, u32)> = before
        .enumerate_pixels()
        .filter(|&(x, y, p)| p != after.get_pixel(x, y) && !inside(x, y))
        .map(|(x, y, _)| (x, y))
        .collect();
    if !outside.is_empty() {
        eprintln!("changed outside the masks: {:?}", &outside[..outside.len().min(20)]);
    }
    outside.len()
}

#[test]
fn every_card_on_a_redacted_person_is_hidden_and_nothing_else_outside_the_masks_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let t1 = rgb(&fixture("photos/t1.jpg"));
    let (photo, before, cards) = carded(&t1, 500, &[8.0, 14.0, 40.0, 20.0, 11.0, 28.0], tmp.path(), "group");
    assert!(cards.len() >= 4, "cards drawn under {} of the six faces", cards.len());
    let out = tmp.path().join("out");
    let report = redact_ok(&photo, &out, &tmp.path().join("r.json"), &["--policy", "all"]);
    let file = &report.files[0];
    assert_eq!(file.status, FileStatus::Redacted);
    assert_eq!(report.render.as_ref().unwrap().badges, Some(blurgate::badge::Badges::Redact));
    let after = rgb(&out.join("group.png"));
    for card in &cards {
        let share = ink_changed(&before, &after, card);
        assert!(share > 0.95, "card under {:?}: {:.0}% of its letters changed", card.face, share * 100.0);
    }
    assert_eq!(changed_outside_masks(&before, &after, file), 0, "pixels changed outside the masks");
    // Each text region belongs to a redacted face, and the text network ran on them only.
    assert!(file.texts.len() >= cards.len());
    assert!(file.texts.iter().all(|t| file.faces[t.face].action == Action::Redacted && t.action == Action::Redacted));
    let text = file.text_detection.as_ref().expect("the text detector ran");
    assert!(text.runs >= 1 && text.inference_ms > 0.0);
    // Each card's text is attributed to the face it hangs from.
    for card in &cards {
        let mid = ((card.area.0 + card.area.2 / 2) as f32, (card.area.1 + card.area.3 / 2) as f32);
        let t = file
            .texts
            .iter()
            .find(|t| t.bbox[0] <= mid.0 && mid.0 <= t.bbox[2] && t.bbox[1] <= mid.1 && mid.1 <= t.bbox[3]);
        let t = t.unwrap_or_else(|| panic!("no text region over the card under {:?}", card.face));
        assert!(face_box(file.faces[t.face].bbox).iou(&card.face) > 0.9, "the card is given to its own face");
    }

    // --badges keep: the cards stay as they were.
    let kept = tmp.path().join("kept");
    let report = redact_ok(&photo, &kept, &tmp.path().join("k.json"), &["--policy", "all", "--badges", "keep"]);
    let after = rgb(&kept.join("group.png"));
    assert!(report.files[0].texts.is_empty() && report.files[0].text_detection.is_none());
    assert!(cards.iter().all(|c| !touched(&before, &after, c)), "--badges keep left a card changed");
}

#[test]
fn with_a_register_only_the_enrolled_persons_card_is_hidden() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // obama2 (to be enrolled) and biden side by side.
    let (a, b) = (rgb(&fixture("photos/obama2.jpg")), rgb(&fixture("photos/biden.jpg")));
    let h = 600;
    let a = imageops::resize(&a, a.width() * h / a.height(), h, imageops::FilterType::Triangle);
    let b = imageops::resize(&b, b.width() * h / b.height(), h, imageops::FilterType::Triangle);
    let mut both = RgbImage::new(a.width() + b.width(), h);
    imageops::replace(&mut both, &a, 0, 0);
    imageops::replace(&mut both, &b, a.width() as i64, 0);
    let (photo, before, cards) = carded(&both, 500, &[24.0, 16.0], dir, "two");
    assert_eq!(cards.len(), 2, "a card under each face");
    let register = dir.join("optouts.reg");
    let obama = fixture("photos/obama.jpg");
    run_ok(&["enroll", "--register", s(&register), "--id", "P-1", s(&obama)]);
    let out = dir.join("out");
    let report = redact_ok(&photo, &out, &dir.join("r.json"), &["--register", s(&register)]);
    let file = &report.files[0];
    let after = rgb(&out.join("two.png"));
    let enrolled = &cards[0];
    assert!(ink_changed(&before, &after, enrolled) > 0.95, "the enrolled person's card is hidden");
    assert!(!touched(&before, &after, &cards[1]), "the stranger's card is untouched");
    assert_eq!(changed_outside_masks(&before, &after, file), 0);
    assert!(file.texts.iter().all(|t| file.faces[t.face].action == Action::Redacted));
}

#[test]
fn a_photo_whose_text_detector_cannot_run_fails_and_is_not_published() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let obama = rgb(&fixture("photos/obama.jpg"));
    let (photo, _, cards) = carded(&obama, 300, &[20.0], dir, "one");
    assert_eq!(cards.len(), 1);
    // The models, with a damaged text detector.
    let models = dir.join("models");
    std::fs::create_dir(&models).unwrap();
    for entry in std::fs::read_dir(models_dir()).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name != "ppocr_det.onnx" && entry.path().is_file() {
            std::os::unix::fs::symlink(entry.path().canonicalize().unwrap(), models.join(&name)).unwrap();
        }
    }
    std::fs::write(models.join("ppocr_det.onnx"), b"not a model").unwrap();
    let out = dir.join("out");
    let report = dir.join("r.json");
    let o = command()
        .env("BLURGATE_MODELS", &models)
        .args(["redact", s(&photo), "--out", s(&out), "--report", s(&report), "-q"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "the run reports a failed file: {}", stderr(&o));
    let file = &read_report(&report).files[0];
    assert_eq!(file.status, FileStatus::Failed);
    assert_eq!(file.error_kind.as_deref(), Some("model"));
    assert!(!out.join("one.png").exists(), "nothing is published");
    // Without redacted faces (or with --badges keep) the detector is not needed.
    let o = command()
        .env("BLURGATE_MODELS", &models)
        .args(["redact", s(&photo), "--out", s(&out), "--report", s(&report), "-q", "--badges", "keep"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.join("one.png").exists());
}

#[test]
fn the_settings_file_can_keep_badges() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let obama = rgb(&fixture("photos/obama.jpg"));
    let (photo, before, cards) = carded(&obama, 300, &[20.0], dir, "one");
    let config = dir.join("blurgate.toml");
    std::fs::write(&config, "[render]\nbadges = \"keep\"\n").unwrap();
    let out = dir.join("out");
    let report = redact_ok(&photo, &out, &dir.join("r.json"), &["--config", s(&config)]);
    assert!(report.files[0].texts.is_empty());
    assert!(!touched(&before, &rgb(&out.join("one.png")), &cards[0]));
    // A flag wins over the file.
    let out = dir.join("out2");
    let report = redact_ok(&photo, &out, &dir.join("r2.json"), &["--config", s(&config), "--badges", "redact"]);
    assert!(!report.files[0].texts.is_empty());
    assert!(ink_changed(&before, &rgb(&out.join("one.png")), &cards[0]) > 0.95);
}
