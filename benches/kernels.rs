//! Criterion benchmarks of the per-photo hot kernels outside ONNX Runtime:
//!
//! - preprocess: `detect::to_chw` (RGB → 1×3×H×W f32, padded to multiples of 32) on 1280×886;
//! - decode_output: `detect::decode` (heatmap → boxes + NMS) on a 320×222 grid, the output of
//!   a 1280×888 input, with six faces' worth of hot cells and scattered weak ones;
//! - redact_blur: `redact::redact`, style blur, six faces of 60–220 px on 1280×886;
//! - align: `embed::align` (similarity warp to SFace's 112×112 template);
//! - on a 12-megapixel JPEG (the photo scaled ×3.2, quality 90) with the six faces scaled too:
//!   jpeg_preview (`media_in::jpeg_preview`, libjpeg's reduced decode for the detector),
//!   jpeg_rewrite (`media_out::rewrite_jpeg`: region decode, blur, block replacement, re-write),
//!   libjpeg's entropy decoding and encoding alone (the floor under both: every block is read
//!   and written), and for comparison the general path's full decode and full re-encode at
//!   quality 92.
//!
//! The photo is fixtures/photos/t1.jpg (1280×886) when `scripts/setup.sh` has fetched it, else a
//! generated image of the same size.
//!
//!   cargo bench --bench kernels

use std::hint::black_box;
use std::time::Duration;

use blurgate::detect::{decode, to_chw, FaceBox, Grid, Landmarks};
use blurgate::embed::align;
use blurgate::media::jpeg::{self, Turn};
use blurgate::media::{self, DecodeLimits, EncodeOptions};
use blurgate::redact::{redact, Layer, RedactOptions, Style};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use image::RgbImage;

const W: u32 = 1280;
const H: u32 = 886;

fn photo() -> RgbImage {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/photos/t1.jpg");
    if let Ok(img) = image::open(&path) {
        let rgb = img.to_rgb8();
        if rgb.dimensions() == (W, H) {
            return rgb;
        }
    }
    let mut seed = 0x2545_f491_u32;
    RgbImage::from_fn(W, H, |x, y| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let n = (seed & 31) as u8;
        image::Rgb([(x % 256) as u8 ^ n, (y % 256) as u8 ^ n, ((x + y) % 256) as u8])
    })
}

/// Six faces spread over the photo, 60 to 220 px high.
fn faces() -> Vec<FaceBox> {
    [
        (100.0, 120.0, 60.0),
        (300.0, 200.0, 90.0),
        (520.0, 150.0, 120.0),
        (760.0, 260.0, 150.0),
        (980.0, 90.0, 180.0),
        (600.0, 560.0, 220.0),
    ]
    .iter()
    .map(|&(x, y, h): &(f32, f32, f32)| FaceBox { x1: x, y1: y, x2: x + h * 0.78, y2: y + h })
    .collect()
}

/// CenterFace output maps for a 1280×888 input: a low background, a 3×3 to 5×5 blob of hot
/// cells around each face centre and a few hundred weak cells near the threshold.
struct Maps {
    w: usize,
    h: usize,
    heat: Vec<f32>,
    scale: Vec<f32>,
    offset: Vec<f32>,
    landmarks: Vec<f32>,
}

fn maps() -> Maps {
    let (w, h) = (320usize, 222usize);
    let plane = w * h;
    let mut rng = 0x9e37_79b9_u32;
    let mut next = move || {
        rng = rng.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (rng >> 8) as f32 / (1u32 << 24) as f32
    };
    let mut heat: Vec<f32> = (0..plane).map(|_| next() * 0.05).collect();
    let mut scale: Vec<f32> = (0..2 * plane).map(|_| 2.0 + next()).collect();
    let offset: Vec<f32> = (0..2 * plane).map(|_| next() * 0.6 - 0.3).collect();
    let landmarks: Vec<f32> = (0..10 * plane).map(|_| next()).collect();
    for f in faces() {
        let (cx, cy) = (((f.x1 + f.x2) / 8.0) as usize, ((f.y1 + f.y2) / 8.0) as usize);
        let r = if f.height() > 120.0 { 2 } else { 1 };
        for y in cy - r..=cy + r {
            for x in cx - r..=cx + r {
                let d = (x.abs_diff(cx) + y.abs_diff(cy)) as f32;
                let i = y * w + x;
                heat[i] = 0.95 - 0.15 * d;
                scale[i] = (f.height() / 4.0).ln();
                scale[plane + i] = (f.width() / 4.0).ln();
            }
        }
    }
    for _ in 0..300 {
        let i = (next() * plane as f32) as usize % plane;
        heat[i] = 0.2 + next() * 0.15;
    }
    Maps { w, h, heat, scale, offset, landmarks }
}

fn benches(c: &mut Criterion) {
    // The pipeline's allocator setting: large buffers reused, not page-faulted in again.
    blurgate::jobs::keep_freed_memory();
    let img = photo();

    c.bench_function("preprocess to_chw 1280x886", |b| b.iter(|| to_chw(black_box(&img), 0, 0, W, H)));

    let m = maps();
    let grid = Grid { w: m.w, h: m.h, heat: &m.heat, scale: &m.scale, offset: &m.offset, landmarks: &m.landmarks };
    let found = decode(&grid, 0.3, 1280.0, 888.0).len();
    assert!(found >= 6, "the synthetic grid should decode to at least the six faces, got {found}");
    c.bench_function("decode_output grid 320x222", |b| b.iter(|| decode(black_box(&grid), 0.3, 1280.0, 888.0)));

    let boxes = faces();
    let options = RedactOptions { style: Style::Blur, ..Default::default() };
    c.bench_function("redact_blur 6 faces 1280x886", |b| {
        b.iter_batched_ref(|| img.clone(), |im| redact(im, black_box(&boxes), &options), BatchSize::LargeInput)
    });

    // A frontal face about 150 px high at (520, 150).
    let (x, y, fw, fh) = (520.0f32, 150.0f32, 117.0f32, 150.0f32);
    let lm = Landmarks([
        [x + 0.34 * fw, y + 0.40 * fh],
        [x + 0.66 * fw, y + 0.40 * fh],
        [x + 0.50 * fw, y + 0.58 * fh],
        [x + 0.37 * fw, y + 0.76 * fh],
        [x + 0.63 * fw, y + 0.76 * fh],
    ]);
    c.bench_function("align 112x112", |b| b.iter(|| align(black_box(&img), black_box(&lm))));

    let k = 3.2f32;
    let big = image::imageops::resize(
        &img,
        (W as f32 * k) as u32,
        (H as f32 * k) as u32,
        image::imageops::FilterType::Triangle,
    );
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(&big).unwrap();
    let big_boxes: Vec<FaceBox> =
        boxes.iter().map(|f| FaceBox { x1: f.x1 * k, y1: f.y1 * k, x2: f.x2 * k, y2: f.y2 * k }).collect();
    let limits = DecodeLimits::default();
    c.bench_function("jpeg_preview 12MP", |b| b.iter(|| jpeg::preview(black_box(&jpeg), limits, 1280)));
    // The rewrite consumes the preview (its coefficients): a fresh one per iteration, not timed.
    c.bench_function("jpeg_rewrite 12MP 6 faces", |b| {
        b.iter_batched(
            || jpeg::preview(&jpeg, limits, 1280).expect("a plain JPEG gets a preview"),
            |preview| {
                jpeg::rewrite(
                    black_box(&jpeg),
                    preview,
                    &[Layer { boxes: &big_boxes, options }],
                    &EncodeOptions::default(),
                )
                .unwrap()
            },
            BatchSize::PerIteration,
        )
    });
    // The floor under both: libjpeg's entropy decoding alone (coefficients, with the DC-only
    // 1/8 preview that costs nearly nothing) and entropy encoding alone (unchanged coefficients
    // written again).
    let preview = jpeg::preview(&jpeg, limits, 1280).expect("a plain JPEG gets a preview");
    let (header, max_memory) = (preview.header, preview.max_memory);
    drop(preview);
    c.bench_function("jpeg floor 12MP: entropy decode (coefficients, 1/8 preview)", |b| {
        b.iter(|| jpeg::Coefficients::read(black_box(&jpeg), &header, 1, max_memory).unwrap())
    });
    c.bench_function("jpeg floor 12MP: entropy encode (unchanged coefficients)", |b| {
        b.iter_batched(
            || jpeg::Coefficients::read(&jpeg, &header, 1, max_memory).unwrap().0,
            |mut coefficients| coefficients.write(Turn::default()).unwrap(),
            BatchSize::PerIteration,
        )
    });
    let full = EncodeOptions { jpeg_quality: Some(92), ..Default::default() };
    c.bench_function("full path 12MP: decode + blur + encode", |b| {
        b.iter(|| {
            let mut photo = media::decode(black_box(&jpeg), limits).unwrap();
            redact(&mut photo.rgb, &big_boxes, &options);
            media::encode(photo, &full).unwrap()
        })
    });
}

criterion_group! {
    name = kernels;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(kernels);
