//! The photos people send: HEIC and AVIF, multi-picture JPEGs, 16-bit PNG, files known by
//! their content rather than their name. Inputs are made here with the libraries blurgate
//! itself links (libheif, the image crate) from the fixture photos.

use std::path::Path;

use blurgate::media::heif::Codec;
use blurgate::media::jpeg::markers::appended_pictures;
use blurgate::media::{self, DecodeLimits, EncodeOptions, Format};
use blurgate::report::{FileStatus, Report};
use image::{ImageBuffer, Rgb, RgbImage};

use crate::common::*;

/// The fixture photo as a HEIF file in `codec`.
fn heif_from(jpeg: &str, codec: Codec) -> Vec<u8> {
    let mut photo = media::decode(&std::fs::read(fixture(jpeg)).unwrap(), DecodeLimits::default()).unwrap();
    photo.format = Format::Heif(codec);
    media::encode(photo, &EncodeOptions::default()).unwrap()
}

/// `dir/in` redacted into `dir/out`; the report.
fn redact_dir(dir: &Path, extra: &[&str]) -> Report {
    redact_ok(&dir.join("in"), &dir.join("out"), &dir.join("report.json"), extra)
}

/// Mean absolute difference per channel inside and outside the report's masks.
fn inside_outside(a: &RgbImage, b: &RgbImage, masks: &[[f32; 4]]) -> (f64, f64) {
    let inside = |x: u32, y: u32| {
        masks.iter().any(|m| (x as f32) >= m[0] && (x as f32) < m[2] && (y as f32) >= m[1] && (y as f32) < m[3])
    };
    let (mut sums, mut counts) = ([0.0f64; 2], [0usize; 2]);
    for (x, y, p) in a.enumerate_pixels() {
        let q = b.get_pixel(x, y);
        let d = (0..3).map(|k| (p[k] as f64 - q[k] as f64).abs()).sum::<f64>() / 3.0;
        let k = usize::from(!inside(x, y));
        sums[k] += d;
        counts[k] += 1;
    }
    (sums[0] / counts[0].max(1) as f64, sums[1] / counts[1].max(1) as f64)
}

#[test]
fn heic_and_avif_come_out_redacted_in_their_own_format() {
    for (codec, name) in [(Codec::Hevc, "obama.heic"), (Codec::Av1, "obama.avif")] {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("in")).unwrap();
        let source = heif_from("photos/obama.jpg", codec);
        std::fs::write(tmp.path().join("in").join(name), &source).unwrap();
        let report = redact_dir(tmp.path(), &[]);
        let file = &report.files[0];
        assert_eq!(file.status, FileStatus::Redacted, "{name}: {file:?}");
        let written = std::fs::read(tmp.path().join("out").join(name)).unwrap();
        let (before, after) = (
            media::decode(&source, DecodeLimits::default()).unwrap(),
            media::decode(&written, DecodeLimits::default()).unwrap(),
        );
        assert_eq!(after.format, Format::Heif(codec), "{name}: written in its own codec");
        assert_eq!(media::heif::other_images(&written), 0, "{name}: the primary image only");
        let masks: Vec<[f32; 4]> = file.faces.iter().filter_map(|f| f.mask).collect();
        assert!(!masks.is_empty(), "{name}: a face was found");
        let (inside, outside) = inside_outside(&before.rgb, &after.rgb, &masks);
        assert!(inside > 12.0, "{name}: the face region changed (mean diff {inside:.1})");
        assert!(outside < 3.0, "{name}: the rest within codec tolerance (mean diff {outside:.1})");
    }
}

#[test]
fn heic_can_be_written_as_jpeg_or_png_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("in")).unwrap();
    std::fs::write(tmp.path().join("in/obama.heic"), heif_from("photos/obama.jpg", Codec::Hevc)).unwrap();
    let report = redact_dir(tmp.path(), &["--output-format", "png"]);
    assert!(report.files[0].output.as_deref().unwrap().ends_with("obama.png"));
    let png = std::fs::read(tmp.path().join("out/obama.png")).unwrap();
    assert_eq!(image::guess_format(&png).unwrap(), image::ImageFormat::Png);
}

#[test]
fn sixteen_bit_png_stays_sixteen_bit_and_unchanged_outside_the_masks() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("in")).unwrap();
    let base = rgb(&fixture("photos/obama.jpg"));
    // Low bits that an 8-bit round trip would lose.
    let deep: ImageBuffer<Rgb<u16>, Vec<u16>> = ImageBuffer::from_fn(base.width(), base.height(), |x, y| {
        let p = base.get_pixel(x, y).0;
        Rgb(p.map(|v| v as u16 * 256 + ((x * 7 + y * 13) % 256) as u16))
    });
    deep.save(tmp.path().join("in/deep.png")).unwrap();
    let report = redact_dir(tmp.path(), &[]);
    let masks: Vec<[f32; 4]> = report.files[0].faces.iter().filter_map(|f| f.mask).collect();
    assert!(!masks.is_empty());
    let out = image::open(tmp.path().join("out/deep.png")).unwrap();
    assert_eq!(out.color(), image::ColorType::Rgb16, "still 16 bits a sample");
    let out = out.to_rgb16();
    let (mut inside_changed, mut outside_changed) = (0, 0);
    // Pixel centres against the mask rectangles (rounded to 0.1 px in the report: a pixel's
    // width of margin on each side).
    let near = |x: u32, y: u32, m: &[f32; 4]| {
        let (cx, cy) = (x as f32 + 0.5, y as f32 + 0.5);
        cx >= m[0] - 1.0 && cx < m[2] + 1.0 && cy >= m[1] - 1.0 && cy < m[3] + 1.0
    };
    for (x, y, p) in deep.enumerate_pixels() {
        let changed = out.get_pixel(x, y) != p;
        if masks.iter().any(|m| near(x, y, m)) {
            inside_changed += usize::from(changed);
        } else {
            outside_changed += usize::from(changed);
        }
    }
    assert_eq!(outside_changed, 0, "every sample outside the masks is exactly as it was");
    assert!(inside_changed > 1000, "the face changed ({inside_changed} samples)");
}

#[test]
fn a_second_picture_is_never_published_and_the_report_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("in")).unwrap();
    // An MPO: a second, complete picture after the first one's end.
    let (first, second) =
        (std::fs::read(fixture("photos/obama.jpg")).unwrap(), std::fs::read(fixture("photos/biden.jpg")).unwrap());
    std::fs::write(tmp.path().join("in/stereo.mpo"), [first.as_slice(), second.as_slice()].concat()).unwrap();
    let report = redact_dir(tmp.path(), &[]);
    let file = &report.files[0];
    assert_eq!(file.status, FileStatus::Redacted);
    assert!(file.notes.iter().any(|n| n.contains("1 more picture")), "{:?}", file.notes);
    let written = std::fs::read(tmp.path().join("out/stereo.mpo")).unwrap();
    assert_eq!(appended_pictures(&written), 0, "only the primary picture is written");
    assert!(written.len() < first.len() + second.len() / 2);
}

#[test]
fn a_photo_is_known_by_its_content_not_its_name() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("in")).unwrap();
    std::fs::copy(fixture("photos/obama.jpg"), tmp.path().join("in/IMG_0001.dat")).unwrap();
    std::fs::write(tmp.path().join("in/readme.txt"), "the photos of the day").unwrap();
    let report = redact_dir(tmp.path(), &[]);
    let by = |n: &str| report.files.iter().find(|f| f.input.ends_with(n)).unwrap();
    assert_eq!(by("IMG_0001.dat").status, FileStatus::Redacted);
    assert_eq!(by("readme.txt").status, FileStatus::Skipped);
    assert_eq!(report.summary.files, 2, "both are listed");
}

#[test]
fn every_frame_of_an_animated_gif_is_redacted_with_its_timing_kept() {
    use image::codecs::gif::{GifDecoder, GifEncoder, Repeat};
    use image::{AnimationDecoder, Delay, Frame, RgbaImage};

    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("in")).unwrap();
    // Three frames: obama, biden, obama again, each shown for a different time, looping 3 times.
    let frame = |name: &str| {
        let img = image::open(fixture(&format!("photos/{name}"))).unwrap().resize_exact(
            320,
            240,
            image::imageops::FilterType::Triangle,
        );
        img.to_rgba8()
    };
    let delays = [120, 250, 80];
    let frames: Vec<RgbaImage> = vec![frame("obama.jpg"), frame("biden.jpg"), frame("obama.jpg")];
    let mut gif = Vec::new();
    {
        let mut enc = GifEncoder::new_with_speed(&mut gif, 10);
        enc.set_repeat(Repeat::Finite(3)).unwrap();
        for (f, ms) in frames.iter().zip(delays) {
            enc.encode_frame(Frame::from_parts(f.clone(), 0, 0, Delay::from_numer_denom_ms(ms, 1))).unwrap();
        }
    }
    std::fs::write(tmp.path().join("in/wave.gif"), &gif).unwrap();
    let report = redact_dir(tmp.path(), &[]);
    let file = &report.files[0];
    assert_eq!(file.status, FileStatus::Redacted);
    for i in 0..3 {
        assert!(file.faces.iter().any(|f| f.frame == Some(i)), "a face found in frame {i}: {:?}", file.faces);
    }
    let written = std::fs::read(tmp.path().join("out/wave.gif")).unwrap();
    let decoder = GifDecoder::new(std::io::Cursor::new(&written)).unwrap();
    let loops = match decoder.loop_count() {
        image::metadata::LoopCount::Finite(n) => Some(n.get()),
        image::metadata::LoopCount::Infinite => None,
    };
    assert_eq!(loops, Some(3), "its loop count kept");
    let out: Vec<Frame> = decoder.into_frames().collect_frames().unwrap();
    assert_eq!(out.len(), 3, "every frame kept");
    let input: Vec<Frame> =
        GifDecoder::new(std::io::Cursor::new(&gif)).unwrap().into_frames().collect_frames().unwrap();
    for (i, ((a, b), ms)) in input.iter().zip(&out).zip(delays).enumerate() {
        assert_eq!(b.delay().numer_denom_ms(), (ms, 1), "frame {i}: its delay kept");
        let face = file.faces.iter().find(|f| f.frame == Some(i as u32)).unwrap().bbox;
        let (fb, before, after) = (face_box(face), a.buffer(), b.buffer());
        let (mut changed, mut n) = (0u64, 0u64);
        for y in fb.y1 as u32..fb.y2 as u32 {
            for x in fb.x1 as u32..fb.x2 as u32 {
                let (p, q) = (before.get_pixel(x, y), after.get_pixel(x, y));
                changed += (0..3).map(|k| (p[k] as i32 - q[k] as i32).unsigned_abs() as u64).sum::<u64>();
                n += 3;
            }
        }
        assert!(changed as f64 / n as f64 > 10.0, "frame {i}: the face changed ({:.1})", changed as f64 / n as f64);
    }
}
