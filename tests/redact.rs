//! `blurgate redact` end to end on real photos with the real CenterFace and SFace models.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common::*;
use blurgate::detect::FaceBox;
use blurgate::embed::align;
use blurgate::redact::{Mask, RedactOptions, Shape};
use blurgate::report::{Action, FileStatus, Report};
use image::{DynamicImage, RgbImage};
use sha2::{Digest, Sha256};

/// Masks of the redacted faces in a report entry, as the redactor drew them.
fn masks(report: &Report, i: usize, options: &RedactOptions) -> Vec<(Mask, FaceBox)> {
    let f = &report.files[i];
    let (w, h) = (f.width.unwrap(), f.height.unwrap());
    f.faces
        .iter()
        .filter(|face| face.action == Action::Redacted)
        .map(|face| {
            let b = face_box(face.bbox);
            (Mask::for_face(&b, options, w, h), options.mask_box(&b))
        })
        .collect()
}

struct PixelStats {
    /// Mean per-pixel difference (summed over channels) inside each mask.
    inside: Vec<f64>,
    /// Mean and largest difference outside every mask (beyond `margin` times the mask).
    outside_mean: f64,
    outside_max: u32,
}

fn pixel_stats(before: &RgbImage, after: &RgbImage, masks: &[(Mask, FaceBox)], margin: f32) -> PixelStats {
    assert_eq!(before.dimensions(), after.dimensions());
    let (w, h) = before.dimensions();
    let wide: Vec<(Mask, FaceBox)> = masks
        .iter()
        .map(|(m, full)| {
            let grown = full.scaled(margin);
            (Mask { area: grown.clipped(w, h), shape: m.shape }, grown)
        })
        .collect();
    let mut inside = vec![(0u64, 0u64); masks.len()];
    let (mut out_sum, mut out_n, mut out_max) = (0u64, 0u64, 0u32);
    for y in 0..h {
        for x in 0..w {
            let d = diff(before, after, x, y);
            let mut covered = false;
            for (k, (m, full)) in masks.iter().enumerate() {
                if m.covers(x, y, full) {
                    inside[k].0 += d as u64;
                    inside[k].1 += 1;
                    covered = true;
                }
            }
            if !covered && !wide.iter().any(|(m, full)| m.covers(x, y, full)) {
                out_sum += d as u64;
                out_n += 1;
                out_max = out_max.max(d);
            }
        }
    }
    PixelStats {
        inside: inside.iter().map(|&(s, n)| s as f64 / n.max(1) as f64).collect(),
        outside_mean: out_sum as f64 / out_n.max(1) as f64,
        outside_max: out_max,
    }
}

#[test]
fn group_photo_every_face_found_and_blurred_the_rest_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, report_path) = (tmp.path().join("out"), tmp.path().join("report.json"));
    let input = fixture("photos/t1.jpg");
    run_ok(&["redact", s(&input), "--out", s(&out), "--report", s(&report_path), "--quiet"]);
    let report = read_report(&report_path);
    let f = &report.files[0];
    assert_eq!(f.status, FileStatus::Redacted);
    assert_eq!(f.faces.len(), 6, "t1.jpg shows six people: {:?}", f.faces.iter().map(|x| x.bbox).collect::<Vec<_>>());
    assert!(f.faces.iter().all(|x| x.score > 0.5 && x.action == Action::Redacted));
    assert_eq!((f.width, f.height), (Some(1280), Some(886)));

    let (before, after) = (rgb(&input), rgb(&out.join("t1.jpg")));
    let stats = pixel_stats(&before, &after, &masks(&report, 0, &RedactOptions::default()), 1.15);
    for (k, mean) in stats.inside.iter().enumerate() {
        assert!(*mean > 20.0, "face {k}: mean change inside the ellipse only {mean:.1}");
    }
    // Outside the masks only JPEG re-encoding noise is allowed.
    assert!(stats.outside_mean < 3.0, "outside mean change {:.2}", stats.outside_mean);
    assert!(stats.outside_max < 60, "outside max change {}", stats.outside_max);
}

#[test]
fn lossless_photo_changes_inside_masks_only_for_every_style() {
    let input = fixture("photos/astronaut.png");
    let before = rgb(&input);
    for (style, boxes) in [("blur", false), ("pixelate", false), ("fill", false), ("blur", true)] {
        let tmp = tempfile::tempdir().unwrap();
        let (out, report_path) = (tmp.path().join("out"), tmp.path().join("r.json"));
        let mut args = vec!["redact", s(&input), "--out", s(&out), "--report", s(&report_path), "--style", style, "-q"];
        if boxes {
            args.push("--boxes");
        }
        run_ok(&args);
        let report = read_report(&report_path);
        assert_eq!(report.files[0].faces.len(), 1, "{style}: one face");
        let options = RedactOptions { shape: if boxes { Shape::Box } else { Shape::Ellipse }, ..Default::default() };
        let after = rgb(&out.join("astronaut.png"));
        // The report's boxes are rounded to 0.1 px: 1% more than the mask tolerates that.
        let stats = pixel_stats(&before, &after, &masks(&report, 0, &options), 1.01);
        assert_eq!(stats.outside_max, 0, "{style}: PNG output must be identical outside the mask");
        assert!(stats.inside[0] > 20.0, "{style}: inside change only {:.1}", stats.inside[0]);
    }
}

/// SFace similarity above which two faces are taken for the same person (FAR 1% on
/// public pairs, ../shared/MODELS.md); a blurred face must fall well below it.
const RECOGNITION_THRESHOLD: f32 = 0.31;

#[test]
fn blurred_face_is_no_longer_recognised() {
    let m = models();
    let original = rgb(&fixture("photos/obama.jpg"));
    let other_photo = rgb(&fixture("photos/obama2.jpg"));
    let faces = m.detector.detect(&original).unwrap();
    assert_eq!(faces.len(), 1);
    let lm = faces[0].landmarks;
    let other = m.detector.detect(&other_photo).unwrap();
    let e = m.embedder.embed(&original, &[lm]).unwrap();
    let e_other = m.embedder.embed(&other_photo, &[other[0].landmarks]).unwrap();
    // The check can fail: the same person in another photo is recognised.
    let same_person = e[0].similarity(&e_other[0]);
    assert!(same_person > 0.5, "obama vs obama2 similarity {same_person}");

    let tmp = tempfile::tempdir().unwrap();
    for style in ["blur", "pixelate"] {
        let out = tmp.path().join(style);
        run_ok(&["redact", s(&fixture("photos/obama.jpg")), "--out", s(&out), "--style", style, "-q"]);
        let redacted = rgb(&out.join("obama.jpg"));
        let e_red = m.embedder.embed(&redacted, &[lm]).unwrap();
        let to_original = e[0].similarity(&e_red[0]);
        let to_other = e_other[0].similarity(&e_red[0]);
        assert!(
            to_original < RECOGNITION_THRESHOLD,
            "{style}: redacted face still matches the original ({to_original:.3})"
        );
        assert!(to_other < RECOGNITION_THRESHOLD, "{style}: redacted face still matches obama2 ({to_other:.3})");
        // Alignment sanity: the aligned crop really is the face region of the redacted image.
        assert_eq!(align(&redacted, &lm).dimensions(), (112, 112));
    }
}

/// A TIFF-structured EXIF block with IFD0 Orientation = `o`.
fn exif_orientation(o: u16) -> Vec<u8> {
    let mut b = b"II*\0".to_vec();
    b.extend(8u32.to_le_bytes());
    b.extend(1u16.to_le_bytes());
    b.extend(0x0112u16.to_le_bytes());
    b.extend(3u16.to_le_bytes());
    b.extend(1u32.to_le_bytes());
    b.extend(o.to_le_bytes());
    b.extend([0, 0]);
    b.extend(0u32.to_le_bytes());
    b
}

fn write_jpeg(img: &DynamicImage, exif: Option<Vec<u8>>, path: &Path) {
    use image::ImageEncoder;
    let mut bytes = Vec::new();
    let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 95);
    if let Some(exif) = exif {
        enc.set_exif_metadata(exif).unwrap();
    }
    let rgb = img.to_rgb8();
    enc.write_image(&rgb, rgb.width(), rgb.height(), image::ExtendedColorType::Rgb8).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// `upright` stored as a JPEG tagged with EXIF orientation `o`, its pixels turned so that
/// applying the tag brings them back upright.
fn write_turned(upright: &DynamicImage, o: u8, path: &Path) {
    let inverse = match o {
        6 => 8,
        8 => 6,
        other => other,
    };
    let mut stored = upright.clone();
    stored.apply_orientation(image::metadata::Orientation::from_exif(inverse).unwrap());
    write_jpeg(&stored, Some(exif_orientation(o as u16)), path);
}

/// t1 as a one-component (greyscale) JPEG.
fn grey_t1() -> Vec<u8> {
    let luma = image::open(fixture("photos/t1.jpg")).unwrap().to_luma8();
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 95).encode_image(&luma).unwrap();
    bytes
}

/// t1 as cameras and export tools also write JPEGs: other chroma sampling, progressive scans,
/// restart markers (jpeg-encoder, not libjpeg). Names and bytes.
fn t1_variants() -> Vec<(&'static str, Vec<u8>)> {
    use jpeg_encoder::{ColorType, Encoder, SamplingFactor};
    let t1 = image::open(fixture("photos/t1.jpg")).unwrap().to_rgb8();
    let variants = [
        ("t1_422_restart.jpg", SamplingFactor::R_4_2_2, false, 4),
        ("t1_440_progressive.jpg", SamplingFactor::R_4_4_0, true, 0),
        ("t1_420_progressive_restart.jpg", SamplingFactor::R_4_2_0, true, 3),
    ];
    variants
        .into_iter()
        .map(|(name, sampling, progressive, restart)| {
            let mut bytes = Vec::new();
            let mut enc = Encoder::new(&mut bytes, 92);
            enc.set_sampling_factor(sampling);
            enc.set_progressive(progressive);
            enc.set_restart_interval(restart);
            enc.encode(&t1, t1.width() as u16, t1.height() as u16, ColorType::Rgb).unwrap();
            (name, bytes)
        })
        .collect()
}

/// A folder `in` that `fill` writes photos into, redacted at default settings into `out` beside
/// it: the temporary folder holding both, the input folder and the report.
fn redact_folder(fill: impl FnOnce(&Path)) -> (tempfile::TempDir, PathBuf, Report) {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, out, report_path) = (tmp.path().join("in"), tmp.path().join("out"), tmp.path().join("r.json"));
    std::fs::create_dir(&dir).unwrap();
    fill(&dir);
    run_ok(&["redact", s(&dir), "--out", s(&out), "--report", s(&report_path), "-q"]);
    (tmp, dir, read_report(&report_path))
}

/// `upright` stored for each EXIF orientation in `orientations` (as `o{N}.jpg` in a folder) and
/// redacted at default settings, as [`redact_folder`] returns it.
fn redact_turned(
    upright: &DynamicImage,
    orientations: std::ops::RangeInclusive<u8>,
) -> (tempfile::TempDir, PathBuf, Report) {
    redact_folder(|dir| {
        for o in orientations {
            write_turned(upright, o, &dir.join(format!("o{o}.jpg")));
        }
    })
}

/// The output carries no EXIF orientation other than 1 (its pixels are upright).
fn assert_no_turn_tag(output: &Path, input: &str) {
    let exif =
        exif::Reader::new().read_from_container(&mut std::io::BufReader::new(std::fs::File::open(output).unwrap()));
    if let Ok(exif) = exif {
        let tag = exif.get_field(exif::Tag::Orientation, exif::In::PRIMARY);
        assert!(tag.is_none_or(|t| t.value.get_uint(0) == Some(1)), "{input}: orientation tag kept");
    }
}

#[test]
fn exif_orientations_give_upright_outputs() {
    let upright = image::open(fixture("photos/obama.jpg")).unwrap();
    let (_tmp, _, report) = redact_turned(&upright, 1..=8);
    let reference = upright.to_rgb8();
    let first_box = report.files[0].faces[0].bbox;
    for (i, f) in report.files.iter().enumerate() {
        assert_eq!((f.width, f.height), (Some(reference.width()), Some(reference.height())), "{}", f.input);
        assert_eq!(f.faces.len(), 1, "{}", f.input);
        for (a, b) in f.faces[0].bbox.iter().zip(first_box) {
            assert!((a - b).abs() < 12.0, "{}: box {:?} vs {:?}", f.input, f.faces[0].bbox, first_box);
        }
        let output = PathBuf::from(f.output.as_ref().unwrap());
        let after = rgb(&output);
        let stats = pixel_stats(&reference, &after, &masks(&report, i, &RedactOptions::default()), 1.15);
        assert!(stats.outside_mean < 4.0, "{}: not upright (mean diff {:.1})", f.input, stats.outside_mean);
        assert_no_turn_tag(&output, &f.input);
    }
}

#[test]
fn turned_jpegs_turn_block_by_block_and_lose_nothing_outside_the_faces() {
    // t1 cut to whole 16-pixel blocks, stored so that each EXIF orientation 2-8 turns it upright:
    // the rewrite turns its blocks in the DCT domain instead of decoding and encoding it again.
    let upright = image::open(fixture("photos/t1.jpg")).unwrap().crop_imm(0, 0, 1280, 880);
    let (tmp, dir, report) = redact_turned(&upright, 2..=8);
    assert_eq!(report.files.len(), 7);
    // The same photos encoded afresh, for comparison.
    let (out_q, report_q) = (tmp.path().join("out_q"), tmp.path().join("q.json"));
    run_ok(&["redact", s(&dir), "--out", s(&out_q), "--report", s(&report_q), "--jpeg-quality", "92", "-q"]);
    let report_q = read_report(&report_q);
    for (i, f) in report.files.iter().enumerate() {
        // What the source shows once its tag is applied.
        let source = std::fs::read(&f.input).unwrap();
        let shown = blurgate::media::decode(&source, Default::default()).unwrap().rgb;
        let after = rgb(Path::new(f.output.as_ref().unwrap()));
        assert_eq!(after.dimensions(), (1280, 880), "{}: not upright", f.input);
        // The six people, confidently; a weak extra detection (the encoder's artefacts differ
        // per orientation) is redacted like any face and changes nothing of this test.
        assert_eq!(f.faces.iter().filter(|x| x.score > 0.5).count(), 6, "{}", f.input);
        let (changed, outside, largest) = changed_outside(&shown, &after, &report, i, 24.0);
        assert!(outside > 500_000, "{}: most of the photo lies outside the faces", f.input);
        // Turned blocks decode to the turned pixels up to the IDCT's rounding, which runs rows
        // then columns; encoding afresh (at quality 92) changes many more pixels, by more.
        assert!(
            largest <= 4 && changed * 10 < outside,
            "{}: {changed} of {outside} pixels changed, by up to {largest}",
            f.input
        );
        let fresh = rgb(Path::new(report_q.files[i].output.as_ref().unwrap()));
        let (changed_q, _, largest_q) = changed_outside(&shown, &fresh, &report_q, i, 24.0);
        assert!(
            changed_q > 4 * changed && largest_q > largest,
            "{}: encoded afresh, {changed_q} pixels changed by up to {largest_q}",
            f.input
        );
        let masked = masks(&report, i, &RedactOptions::default());
        let stats = pixel_stats(&shown, &after, &masked, 1.0);
        assert!(stats.inside.iter().all(|&d| d > 10.0), "{}: a face is not redacted: {:?}", f.input, stats.inside);
        assert_no_turn_tag(Path::new(f.output.as_ref().unwrap()), &f.input);
    }
}

#[test]
fn blocks_no_mask_reaches_keep_their_coefficients() {
    // t1 as another encoder (not libjpeg, as in many cameras) writes it: decoding its blocks and
    // encoding them again with libjpeg would change some of their pixels.
    let (tmp, dir, report) =
        redact_folder(|dir| write_jpeg(&image::open(fixture("photos/t1.jpg")).unwrap(), None, &dir.join("t1.jpg")));
    let out = tmp.path().join("out");
    assert_eq!(report.files[0].faces.len(), 6);
    let source = std::fs::read(dir.join("t1.jpg")).unwrap();
    let (before, after) = (rgb(&dir.join("t1.jpg")), rgb(&out.join("t1.jpg")));
    let masked = masks(&report, 0, &RedactOptions::default());
    // The corners of each ellipse's rectangle, away from the blocks the ellipse reaches.
    let mcu = blurgate::media::jpeg::Header::read(&source).unwrap().mcu;
    let (kept, changed) = untouched_blocks(&before, &after, &masked, mcu);
    assert!(kept > 5_000, "only {kept} pixels of the masks' rectangles lie away from the masks' blocks");
    assert_eq!(changed, 0, "{changed} of {kept} pixels in blocks no mask reaches changed");
    let stats = pixel_stats(&before, &after, &masked, 1.0);
    assert!(stats.inside.iter().all(|m| *m > 20.0), "faces not redacted: {:?}", stats.inside);
}

#[test]
fn regions_decoded_from_the_coefficients_match_the_whole_photo_decoded() {
    // t1 is 4:2:0 (chroma upsampling reads past a region's edges, and its last iMCU row is
    // partial); obama is 4:4:4 and 910 pixels wide (a partial iMCU column); t1 in grey, and in
    // 4:2:2 and 4:4:0 (upsampling along one axis only), progressive or with restart markers.
    let read = |name: &str| std::fs::read(fixture(&format!("photos/{name}"))).unwrap();
    let photos = [("t1.jpg", read("t1.jpg")), ("obama.jpg", read("obama.jpg")), ("grey t1", grey_t1())];
    for (name, bytes) in photos.into_iter().chain(t1_variants()) {
        let header = blurgate::media::jpeg::Header::read(&bytes).unwrap();
        let whole = blurgate::media::jpeg::decode_full(&bytes, &header, 1 << 30).unwrap();
        let (mut coefficients, _) = blurgate::media::jpeg::Coefficients::read(&bytes, &header, 3, 1 << 30).unwrap();
        let (w, h) = (header.width, header.height);
        let (mw, mh) = header.mcu;
        let regions = [
            header.aligned(0, 0, 3 * mw, 2 * mh),
            header.aligned(w / 3, h / 4, w / 2, h / 2),
            header.aligned(w - 1, h - 1, w, h),
            header.aligned(w / 2, 0, w, h),
        ];
        for at in regions {
            // A canvas larger than the region, at an origin of its own.
            let origin = (at.x.saturating_sub(mw), at.y.saturating_sub(mh));
            let mut canvas = RgbImage::new(at.x + at.w - origin.0, at.y + at.h - origin.1);
            coefficients.decode(at, &mut canvas, origin).unwrap();
            let differing = (at.y..at.y + at.h)
                .flat_map(|y| (at.x..at.x + at.w).map(move |x| (x, y)))
                .filter(|&(x, y)| canvas.get_pixel(x - origin.0, y - origin.1) != whole.get_pixel(x, y))
                .count();
            assert_eq!(differing, 0, "{name}: {differing} pixels of {at:?} differ from the whole photo's");
        }
    }
}

/// Pixels inside some mask's rectangle but more than 2 pixels from every iMCU (of size `mcu`)
/// that a mask (grown by 3%, against rounding in the report) covers a pixel of: colour sampling
/// reaches a pixel past an iMCU's edge. How many there are and how many differ.
fn untouched_blocks(before: &RgbImage, after: &RgbImage, masks: &[(Mask, FaceBox)], mcu: (u32, u32)) -> (usize, usize) {
    let (w, h) = before.dimensions();
    let (cols, rows) = (w.div_ceil(mcu.0), h.div_ceil(mcu.1));
    let mut touched = vec![false; (cols * rows) as usize];
    let grown: Vec<(Mask, FaceBox)> = masks
        .iter()
        .map(|(m, full)| (Mask { area: full.scaled(1.03).clipped(w, h), shape: m.shape }, full.scaled(1.03)))
        .collect();
    for (x, y, _) in before.enumerate_pixels() {
        if grown.iter().any(|(m, full)| m.covers(x, y, full)) {
            touched[(y / mcu.1 * cols + x / mcu.0) as usize] = true;
        }
    }
    // iMCUs are wider than the 5x5 window, so its corners reach every iMCU it overlaps.
    let near = |x: u32, y: u32| {
        let (xs, ys) = ([x.saturating_sub(2), (x + 2).min(w - 1)], [y.saturating_sub(2), (y + 2).min(h - 1)]);
        xs.iter().any(|&px| ys.iter().any(|&py| touched[(py / mcu.1 * cols + px / mcu.0) as usize]))
    };
    let (mut kept, mut changed) = (0, 0);
    for (x, y, p) in after.enumerate_pixels() {
        let in_rect = masks.iter().any(|(m, _)| {
            let (x0, y0, x1, y1) = m.bounds();
            (x0..x1).contains(&x) && (y0..y1).contains(&y)
        });
        if in_rect && !near(x, y) {
            kept += 1;
            changed += usize::from(p != before.get_pixel(x, y));
        }
    }
    (kept, changed)
}

/// Asserts that file `i` of `report` (`name`) changed only near its faces' masks (nothing
/// further than `margin` pixels from them) and that every face was redacted; how many pixels lie
/// that far out.
fn assert_only_faces_changed(
    name: &str,
    before: &RgbImage,
    after: &RgbImage,
    report: &Report,
    i: usize,
    margin: f32,
) -> usize {
    let (changed, outside, _) = changed_outside(before, after, report, i, margin);
    assert!(outside > 500_000, "{name}: most of the photo lies outside the faces ({outside} pixels)");
    assert_eq!(changed, 0, "{name}: {changed} of {outside} pixels away from the faces changed");
    let stats = pixel_stats(before, after, &masks(report, i, &RedactOptions::default()), 1.0);
    assert!(stats.inside.iter().all(|m| *m > 20.0), "{name}: faces not redacted: {:?}", stats.inside);
    outside
}

/// Pixels outside every mask's rectangle (of file `i` in the report) grown by `margin` pixels:
/// how many differ between the two, how many there are, and the largest channel difference.
fn changed_outside(before: &RgbImage, after: &RgbImage, report: &Report, i: usize, margin: f32) -> (usize, usize, u8) {
    let rects: Vec<[f32; 4]> = report.files[i]
        .faces
        .iter()
        .filter_map(|f| f.mask)
        .map(|m| [m[0] - margin, m[1] - margin, m[2] + margin, m[3] + margin])
        .collect();
    let (mut changed, mut outside, mut largest) = (0, 0, 0);
    for (x, y, p) in after.enumerate_pixels() {
        let (fx, fy) = (x as f32, y as f32);
        if rects.iter().all(|r| fx < r[0] || fx >= r[2] || fy < r[1] || fy >= r[3]) {
            let q = before.get_pixel(x, y);
            outside += 1;
            changed += usize::from(p != q);
            largest = largest.max((0..3).map(|c| p[c].abs_diff(q[c])).max().unwrap());
        }
    }
    (changed, outside, largest)
}

#[test]
fn jpeg_keeps_its_image_data_outside_the_faces_unless_a_quality_is_given() {
    let input = fixture("photos/t1.jpg");
    let before = rgb(&input);
    let tmp = tempfile::tempdir().unwrap();
    let (out, report_path) = (tmp.path().join("out"), tmp.path().join("r.json"));
    run_ok(&["redact", s(&input), "--out", s(&out), "--report", s(&report_path), "-q"]);
    let report = read_report(&report_path);
    assert_eq!(report.files[0].faces.len(), 6);
    let after = rgb(&out.join("t1.jpg"));
    // Only the 16x16 blocks under a mask are encoded again; colour sampling can reach a few
    // pixels past them, never further.
    let outside = assert_only_faces_changed("t1.jpg", &before, &after, &report, 0, 24.0);

    // --jpeg-quality encodes the whole photo afresh.
    let (out_q, report_q) = (tmp.path().join("q"), tmp.path().join("q.json"));
    run_ok(&["redact", s(&input), "--out", s(&out_q), "--report", s(&report_q), "-q", "--jpeg-quality", "40"]);
    let report_q = read_report(&report_q);
    let after_q = rgb(&out_q.join("t1.jpg"));
    let (changed_q, ..) = changed_outside(&before, &after_q, &report_q, 0, 24.0);
    assert!(changed_q > outside / 2, "quality 40 left {changed_q} of {outside} pixels as they were");
    let stats = pixel_stats(&before, &after_q, &masks(&report_q, 0, &RedactOptions::default()), 1.15);
    assert!(stats.inside.iter().all(|m| *m > 20.0));
    let size = |p: &Path| std::fs::metadata(p).unwrap().len();
    assert!(size(&out_q.join("t1.jpg")) < size(&out.join("t1.jpg")) * 3 / 4);
}

#[test]
fn greyscale_jpeg_is_rewritten_block_by_block_and_stays_grey() {
    let (tmp, dir, report) = redact_folder(|dir| std::fs::write(dir.join("t1.jpg"), grey_t1()).unwrap());
    let out = tmp.path().join("out");
    assert!(report.files[0].faces.len() >= 5, "{} faces found in grey t1", report.files[0].faces.len());
    assert_eq!(image::open(out.join("t1.jpg")).unwrap().color(), image::ColorType::L8);
    let (before, after) = (rgb(&dir.join("t1.jpg")), rgb(&out.join("t1.jpg")));
    assert_only_faces_changed("grey t1.jpg", &before, &after, &report, 0, 8.0);
}

#[test]
fn progressive_restart_marked_and_other_sampled_jpegs_are_rewritten_block_by_block() {
    let variants = t1_variants();
    let (tmp, dir, report) = redact_folder(|dir| {
        for (name, bytes) in &variants {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    });
    let out = tmp.path().join("out");
    for (name, _) in &variants {
        let i = report.files.iter().position(|f| f.input.ends_with(name)).unwrap();
        assert_eq!(report.files[i].faces.len(), 6, "{name}");
        // Blocks away from the faces keep their coefficients: their pixels are exactly as
        // they were (a full re-encode would change them).
        assert_only_faces_changed(name, &rgb(&dir.join(name)), &rgb(&out.join(name)), &report, i, 24.0);
    }
}

#[test]
fn jpeg_comments_private_segments_and_appended_pictures_are_not_published() {
    let source = std::fs::read(fixture("photos/t1.jpg")).unwrap();
    let segment = |marker: u8, body: &[u8]| {
        let mut s = vec![0xFF, marker];
        s.extend(((body.len() + 2) as u16).to_be_bytes());
        s.extend_from_slice(body);
        s
    };
    let mut doctored = source[..2].to_vec();
    // A JFIF header whose thumbnail (8x1 RGB pixels) holds a name, as bytes.
    let mut jfif = b"JFIF\0\x01\x02\x00\x00\x01\x00\x01\x08\x01".to_vec();
    jfif.extend(b"Jane Doe, in a thumbnail".iter());
    doctored.extend(segment(0xE0, &jfif));
    doctored.extend(segment(0xFE, b"comment: Jane Doe, table 4"));
    doctored.extend(segment(0xED, b"Photoshop 3.0\0IPTC caption: Jane Doe"));
    doctored.extend(segment(0xE1, b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta>Jane Doe</x:xmpmeta>"));
    // A comment after the scan, before the end-of-image marker.
    assert!(source.ends_with(&[0xFF, 0xD9]));
    doctored.extend_from_slice(&source[2..source.len() - 2]);
    doctored.extend(segment(0xFE, b"after the scan: Jane Doe"));
    doctored.extend_from_slice(&[0xFF, 0xD9]);
    // A second, unredacted picture after the end of the image, as some cameras append.
    doctored.extend_from_slice(&source);
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("doctored.jpg");
    std::fs::write(&input, &doctored).unwrap();
    let (out, report_path) = (tmp.path().join("out"), tmp.path().join("r.json"));
    run_ok(&["redact", s(&input), "--out", s(&out), "--report", s(&report_path), "-q"]);
    assert_eq!(read_report(&report_path).files[0].faces.len(), 6);
    let written = std::fs::read(out.join("doctored.jpg")).unwrap();
    assert!(!written.windows(8).any(|w| w == b"Jane Doe"), "a name from the metadata was published");
    assert!(written.ends_with(&[0xFF, 0xD9]), "anything after the image's end must be dropped");
    assert_eq!(written.windows(2).filter(|w| w == &[0xFF, 0xD8]).count(), 1, "one picture only");
    assert_eq!(rgb(&out.join("doctored.jpg")).dimensions(), (1280, 886));
}

#[test]
fn jpeg_without_faces_is_published_with_its_image_data_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    // With a comment between its last scan and its end, which must not survive either.
    let mut source = std::fs::read(fixture("metadata/usa_railroad.jpg")).unwrap();
    assert!(source.ends_with(&[0xFF, 0xD9]));
    source.truncate(source.len() - 2);
    source.extend_from_slice(&[0xFF, 0xFE, 0x00, 0x0A]);
    source.extend_from_slice(b"Jane Doe\xFF\xD9");
    let input = tmp.path().join("usa_railroad.jpg");
    std::fs::write(&input, &source).unwrap();
    let (out, report_path) = (tmp.path().join("out"), tmp.path().join("r.json"));
    run_ok(&["redact", s(&input), "--out", s(&out), "--report", s(&report_path), "-q"]);
    let report = read_report(&report_path);
    assert_eq!(report.files[0].status, FileStatus::Unchanged);
    let output = out.join("usa_railroad.jpg");
    assert_eq!(rgb(&input), rgb(&output), "a photo with no face must not lose quality");
    let written = std::fs::read(&output).unwrap();
    assert!(written.len() < source.len(), "the metadata was not removed");
    assert!(!written.windows(8).any(|w| w == b"Jane Doe"), "the comment was published");
}

fn sha256(path: &Path) -> String {
    format!("{:x}", Sha256::digest(std::fs::read(path).unwrap()))
}

fn tree_hashes(root: &Path) -> BTreeMap<PathBuf, String> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| (e.path().strip_prefix(root).unwrap().to_path_buf(), sha256(e.path())))
        .collect()
}

#[test]
fn folder_tree_is_mirrored_and_originals_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, out, report_path) = (tmp.path().join("event"), tmp.path().join("publish"), tmp.path().join("r.json"));
    std::fs::create_dir_all(src.join("day1/stage")).unwrap();
    std::fs::create_dir_all(src.join("day2")).unwrap();
    std::fs::copy(fixture("photos/t1.jpg"), src.join("day1/stage/group.jpg")).unwrap();
    std::fs::copy(fixture("photos/astronaut.png"), src.join("day2/portrait.png")).unwrap();
    image::open(fixture("photos/biden.jpg")).unwrap().save(src.join("day2/biden.webp")).unwrap();
    image::open(fixture("photos/obama.jpg")).unwrap().save(src.join("obama.tif")).unwrap();
    std::fs::write(src.join("day1/notes.txt"), "not a photo").unwrap();
    let before = tree_hashes(&src);

    run_ok(&["redact", s(&src), "--out", s(&out), "--report", s(&report_path), "-q"]);
    assert_eq!(tree_hashes(&src), before, "inputs must be byte-identical after a run");
    let report = read_report(&report_path);
    // Every file is accounted for: the text file is listed as skipped, with why.
    assert_eq!(report.summary.files, 5);
    assert_eq!((report.summary.skipped, report.summary.ignored), (1, 1));
    assert_eq!(report.summary.failed, 0);
    let notes = report.files.iter().find(|f| f.input.ends_with("notes.txt")).expect("notes.txt is listed");
    assert_eq!((notes.status, notes.reason.as_deref()), (FileStatus::Skipped, Some("not a media file")));
    for (rel, format) in [
        ("day1/stage/group.jpg", image::ImageFormat::Jpeg),
        ("day2/portrait.png", image::ImageFormat::Png),
        ("day2/biden.webp", image::ImageFormat::WebP),
        ("obama.tif", image::ImageFormat::Tiff),
    ] {
        let bytes = std::fs::read(out.join(rel)).unwrap_or_else(|_| panic!("{rel} missing from the output"));
        assert_eq!(image::guess_format(&bytes).unwrap(), format, "{rel}");
    }
    assert!(!out.join("day1/notes.txt").exists());
    let leftovers: Vec<_> = tree_hashes(&out).into_keys().filter(|p| p.to_string_lossy().contains(".tmp")).collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn undecodable_file_fails_closed_and_the_rest_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, out, report_path) = (tmp.path().join("in"), tmp.path().join("out"), tmp.path().join("r.json"));
    std::fs::create_dir(&src).unwrap();
    std::fs::copy(fixture("photos/obama.jpg"), src.join("good.jpg")).unwrap();
    let whole = std::fs::read(fixture("photos/biden.jpg")).unwrap();
    std::fs::write(src.join("truncated.jpg"), &whole[..whole.len() / 3]).unwrap();
    std::fs::write(src.join("empty.png"), b"").unwrap();
    let png = std::fs::read(fixture("photos/astronaut.png")).unwrap();
    std::fs::write(src.join("cut.png"), &png[..png.len() / 2]).unwrap();
    // A copy from an earlier run must not survive a run in which the file failed.
    std::fs::create_dir(&out).unwrap();
    std::fs::copy(fixture("photos/biden.jpg"), out.join("truncated.jpg")).unwrap();

    let o = blurgate(&["redact", s(&src), "--out", s(&out), "--report", s(&report_path), "-q"]);
    assert_eq!(o.status.code(), Some(1), "stderr: {}", stderr(&o));
    let err = stderr(&o);
    assert!(["truncated.jpg", "empty.png", "cut.png"].iter().all(|n| err.contains(n)), "stderr names the files: {err}");
    let report = read_report(&report_path);
    let by_name = |n: &str| report.files.iter().find(|f| f.input.ends_with(n)).unwrap();
    for name in ["truncated.jpg", "empty.png", "cut.png"] {
        let f = by_name(name);
        assert_eq!(f.status, FileStatus::Failed, "{name}");
        assert!(f.output.is_none() && f.error.as_deref().is_some_and(|e| !e.is_empty()), "{name}");
        assert!(!out.join(name).exists(), "{name} must not appear in the output");
    }
    assert_eq!(by_name("good.jpg").status, FileStatus::Redacted);
    assert!(out.join("good.jpg").is_file());
    assert_eq!(report.summary.failed, 3);
}

#[test]
fn output_inside_input_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("in");
    std::fs::create_dir(&src).unwrap();
    std::fs::copy(fixture("photos/obama.jpg"), src.join("a.jpg")).unwrap();
    let o = blurgate(&["redact", s(&src), "--out", s(&src.join("published")), "-q"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("inside the input folder"), "{}", stderr(&o));
    assert!(!src.join("published").exists());
}

#[test]
fn missing_models_say_how_to_fix_it() {
    let tmp = tempfile::tempdir().unwrap();
    let o = command()
        .args(["redact", s(&fixture("photos/obama.jpg")), "--out", s(&tmp.path().join("o")), "--models", s(tmp.path())])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains("scripts/setup.sh") && err.contains("manifest"), "{err}");
}

#[test]
fn a_damaged_model_is_refused() {
    for (file, args) in [("centerface.onnx", &["--precision", "fp32"][..]), ("centerface_int8.onnx", &[][..])] {
        let tmp = tempfile::tempdir().unwrap();
        let models = tmp.path().join("models");
        std::fs::create_dir(&models).unwrap();
        for entry in std::fs::read_dir(models_dir()).unwrap() {
            let p = entry.unwrap().path();
            std::os::unix::fs::symlink(&p, models.join(p.file_name().unwrap())).unwrap();
        }
        std::fs::remove_file(models.join(file)).unwrap();
        let mut bytes = std::fs::read(models_dir().join(file)).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(models.join(file), bytes).unwrap();
        let o = command()
            .args([
                "redact",
                s(&fixture("photos/obama.jpg")),
                "--out",
                s(&tmp.path().join("o")),
                "--models",
                s(&models),
            ])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{file}");
        assert!(stderr(&o).contains("sha256"), "{file}: {}", stderr(&o));
        assert!(!tmp.path().join("o").exists());
    }
}

#[test]
fn cuda_request_without_a_gpu_falls_back_to_cpu_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = blurgate(&["--device", "cuda", "redact", s(&fixture("photos/obama.jpg")), "--out", s(&out), "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("running on the CPU"), "{}", stderr(&o));
    assert!(out.join("obama.jpg").is_file());
}
