//! Recall-first detection end to end: faces that a single look at the whole photo misses (a
//! distant group in a 12 MP photo dominated by a close-up, a group upside down in the pixels)
//! are found and redacted, on the real model.

use std::path::Path;

use crate::common::*;
use blurgate::detect::{FaceBox, Precision, Speed};
use blurgate::report::{Action, FileStatus, Report};
use image::{imageops, RgbImage};

/// t1.jpg's six faces as `redact` finds them at defaults on the photo alone.
fn t1_faces(tmp: &Path) -> Vec<FaceBox> {
    let report = redact(&fixture("photos/t1.jpg"), tmp, "t1", &[]);
    let faces: Vec<_> = report.files[0].faces.iter().map(|f| face_box(f.bbox)).collect();
    assert_eq!(faces.len(), 6, "t1.jpg shows six people");
    faces
}

/// `blurgate redact INPUT` into `tmp/NAME-out` with a report; the report.
fn redact(input: &Path, tmp: &Path, name: &str, args: &[&str]) -> Report {
    redact_ok(input, &tmp.join(format!("{name}-out")), &tmp.join(format!("{name}.json")), args)
}

/// Mean absolute change over the pixels of `b` (all channels).
fn mean_change(before: &RgbImage, after: &RgbImage, b: &FaceBox) -> f64 {
    let (mut sum, mut n) = (0u64, 0u64);
    for y in b.y1.max(0.0) as u32..(b.y2 as u32).min(before.height()) {
        for x in b.x1.max(0.0) as u32..(b.x2 as u32).min(before.width()) {
            sum += diff(before, after, x, y) as u64;
            n += 3;
        }
    }
    sum as f64 / n.max(1) as f64
}

/// Every expected face has a redacted face in the report overlapping it (IoU >= 0.4) and its
/// pixels changed.
fn assert_found_and_redacted(report: &Report, expected: &[FaceBox], before: &RgbImage, after: &RgbImage, what: &str) {
    let faces = &report.files[0].faces;
    for (k, e) in expected.iter().enumerate() {
        let best = faces.iter().map(|f| (face_box(f.bbox).iou(e), f)).max_by(|a, b| a.0.total_cmp(&b.0));
        let (iou, face) = best.unwrap_or_else(|| panic!("{what}: no face found at all"));
        assert!(iou >= 0.4, "{what}: face {k} at {e:?} not found (best IoU {iou:.2})");
        assert_eq!(face.action, Action::Redacted, "{what}: face {k}");
        let change = mean_change(before, after, e);
        assert!(change > 12.0, "{what}: face {k} at {e:?} barely changed (mean {change:.1})");
    }
}

/// A 12 MP photo of a speaker's close-up (obama.jpg filling the frame's height) with copies of
/// t1.jpg's group (faces of 118-144 px) at the given scales stacked from the bottom corners;
/// the photo and, per copy, its scale and where its faces are.
fn speaker_and_audience(group: &[FaceBox], scales: &[f32]) -> (RgbImage, Vec<(f32, Vec<FaceBox>)>) {
    let (w, h) = (4000u32, 3000u32);
    let speaker = rgb(&fixture("photos/obama.jpg"));
    let side = h * speaker.width() / speaker.height();
    let mut canvas = RgbImage::from_pixel(w, h, image::Rgb([90, 96, 104]));
    imageops::overlay(
        &mut canvas,
        &imageops::resize(&speaker, side, h, imageops::FilterType::Triangle),
        ((w - side) / 2) as i64,
        0,
    );
    let t1 = rgb(&fixture("photos/t1.jpg"));
    let mut copies = Vec::new();
    let (mut left, mut right) = (h, h);
    for &scale in scales {
        let (sw, sh) = ((t1.width() as f32 * scale) as u32, (t1.height() as f32 * scale) as u32);
        let copy = imageops::resize(&t1, sw, sh, imageops::FilterType::Lanczos3);
        // Native scale goes bottom-right, smaller copies stack up the left side.
        let (x, y) = if scale == 1.0 {
            right -= sh;
            (w - sw, right)
        } else {
            left -= sh;
            (0, left)
        };
        imageops::overlay(&mut canvas, &copy, x as i64, y as i64);
        let (fx, fy) = (sw as f32 / t1.width() as f32, sh as f32 / t1.height() as f32);
        copies.push((scale, group.iter().map(|b| b.mapped(fx, fy, x as f32, y as f32)).collect()));
    }
    (canvas, copies)
}

/// Redacts `canvas` at defaults; asserts every face of every copy was found and redacted, and
/// the close-up too.
fn assert_speaker_and_audience_redacted(canvas: &RgbImage, copies: &[(f32, Vec<FaceBox>)], name: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join(format!("{name}.png"));
    canvas.save(&input).unwrap();
    let report = redact(&input, tmp.path(), name, &[]);
    assert_eq!(report.detection.as_ref().map(|d| d.speed), Some(Speed::Balanced), "the report records the preset");
    assert_eq!(report.files[0].status, FileStatus::Redacted);
    let after = rgb(&tmp.path().join(format!("{name}-out/{name}.png")));
    for (scale, faces) in copies {
        assert_found_and_redacted(&report, faces, canvas, &after, &format!("{name}: group at {scale}"));
    }
    let speaker_face = report.files[0].faces.iter().any(|f| f.bbox[3] - f.bbox[1] > 800.0);
    assert!(speaker_face, "{name}: the close-up is found too");
}

#[test]
fn int8_model_finds_the_faces_fp32_finds() {
    let tmp = tempfile::tempdir().unwrap();
    let photo = fixture("photos/t1.jpg");
    let int8 = redact(&photo, tmp.path(), "int8", &[]);
    let fp32 = redact(&photo, tmp.path(), "fp32", &["--precision", "fp32"]);
    assert_eq!(int8.detection.as_ref().unwrap().precision, Precision::Int8, "int8 is the default");
    assert_eq!(fp32.detection.as_ref().unwrap().precision, Precision::Fp32);
    let boxes = |r: &Report| -> Vec<FaceBox> { r.files[0].faces.iter().map(|f| face_box(f.bbox)).collect() };
    let (int8, fp32) = (boxes(&int8), boxes(&fp32));
    assert_eq!((int8.len(), fp32.len()), (6, 6), "t1.jpg shows six people");
    for (i, a) in fp32.iter().enumerate() {
        let (j, iou) = int8.iter().map(|b| a.iou(b)).enumerate().max_by(|x, y| x.1.total_cmp(&y.1)).unwrap();
        assert!(iou >= 0.8, "fp32 face {i} {a:?}: best int8 match {j} {:?} has IoU {iou:.3}", int8[j]);
        assert!(fp32.iter().all(|c| c.iou(&int8[j]) <= iou), "int8 face {j} fits another fp32 face better");
    }
}

#[test]
fn distant_group_beside_a_close_up_is_found_and_redacted_at_defaults() {
    let tmp = tempfile::tempdir().unwrap();
    let group = t1_faces(tmp.path());
    // The group at native scale, at 40% and at 15% (faces of 18-22 px, 6-7 px in a look at
    // 1280 px).
    let (canvas, copies) = speaker_and_audience(&group, &[1.0, 0.4, 0.15]);
    assert_speaker_and_audience_redacted(&canvas, &copies, "speaker_and_audience");
    // Only the close-up is visible at 1280 px, and the audience is smaller still (faces of
    // 14-17 px): no pass may be skipped because the first found only a large face, and faces
    // this small need the zoomed tiles.
    let (canvas, copies) = speaker_and_audience(&group, &[0.12]);
    assert_speaker_and_audience_redacted(&canvas, &copies, "speaker_and_far_audience");
}

#[test]
fn upside_down_group_is_found_by_the_thorough_preset() {
    let tmp = tempfile::tempdir().unwrap();
    let group = t1_faces(tmp.path());
    let t1 = rgb(&fixture("photos/t1.jpg"));
    let (w, h) = t1.dimensions();
    let turned = imageops::rotate180(&t1);
    let input = tmp.path().join("upside_down.png");
    turned.save(&input).unwrap();
    let report = redact(&input, tmp.path(), "turned", &["--speed", "thorough"]);
    assert_eq!(report.detection.as_ref().map(|d| d.speed), Some(Speed::Thorough));
    let after = rgb(&tmp.path().join("turned-out/upside_down.png"));
    let expected: Vec<_> = group
        .iter()
        .map(|b| FaceBox { x1: w as f32 - b.x2, y1: h as f32 - b.y2, x2: w as f32 - b.x1, y2: h as f32 - b.y1 })
        .collect();
    assert_found_and_redacted(&report, &expected, &turned, &after, "upside-down t1");
}
