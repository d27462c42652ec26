//! What each pass and lever of the detector adds, and what it costs: runs the detector alone
//! over photos with chosen passes left out, and writes a report that
//! `scripts/eval_detection.py` scores (boxes and redaction masks, as `blurgate redact` writes
//! them), with the time, network pixels and inference time it took. `scripts/ablation.sh`
//! runs it over the WIDER FACE dev photos for every variant and prints the table.
//!
//!   cargo run --release --example detect_ablation -- [--speed fast|balanced|thorough]
//!       [--precision int8|fp32] [--zoom crops|tiles|fewest] [--no-mirror] [--no-half] [--no-zoom2]
//!       [--no-zoom3] [--threshold T] [--workers N] [--rounds N] --report FILE PHOTO_OR_DIR...
//!
//! Photos are decoded first (not timed); detection runs with the pipeline's thread budget (one
//! session per worker, the cores shared out), each photo once per round after a warm-up
//! round; the best round is printed.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use blurgate::detect::{DetectionWork, Detector, DetectorOptions, Precision, Speed, ZoomLooks};
use blurgate::media::{decode, jpeg, DecodeLimits};
use blurgate::models::ModelDir;
use blurgate::redact::RedactOptions;
use image::RgbImage;
use rayon::prelude::*;
use serde_json::json;

const USAGE: &str = "usage: detect_ablation [--speed S] [--precision P] [--zoom crops|tiles|fewest] [--no-mirror] [--no-half] [--no-zoom2] [--no-zoom3] [--threshold T] [--workers N] [--rounds N] --report FILE PHOTO_OR_DIR...";

fn main() -> Result<()> {
    let mut options = DetectorOptions::default();
    let (mut workers, mut rounds, mut report, mut paths) = (None, 2usize, None, Vec::new());
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--speed" => {
                options.speed = match value()?.as_str() {
                    "fast" => Speed::Fast,
                    "balanced" => Speed::Balanced,
                    "thorough" => Speed::Thorough,
                    v => bail!("unknown speed {v}"),
                }
            }
            "--precision" => {
                options.precision = match value()?.as_str() {
                    "fp32" => Precision::Fp32,
                    "int8" => Precision::Int8,
                    v => bail!("unknown precision {v}"),
                }
            }
            "--zoom" => {
                options.zoom_looks = match value()?.as_str() {
                    "crops" => ZoomLooks::Crops,
                    "tiles" => ZoomLooks::Tiles,
                    "fewest" => ZoomLooks::Fewest,
                    v => bail!("unknown zoom looks {v}"),
                }
            }
            "--threshold" => options.threshold = Some(value()?.parse()?),
            "--no-mirror" => options.extras.mirror = false,
            "--no-half" => options.extras.half = false,
            "--no-zoom2" => options.extras.zooms[0] = false,
            "--no-zoom3" => options.extras.zooms[1] = false,
            "--workers" => workers = Some(value()?.parse::<usize>()?),
            "--rounds" => rounds = value()?.parse()?,
            "--report" => report = Some(PathBuf::from(value()?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            _ => paths.push(PathBuf::from(a)),
        }
    }
    let report = report.context(USAGE)?;
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut inner: Vec<PathBuf> =
                std::fs::read_dir(&p)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
            inner.sort();
            files.extend(inner.into_iter().filter(|f| f.is_file()));
        } else {
            files.push(p);
        }
    }
    if files.is_empty() {
        bail!("no photos given\n{USAGE}");
    }
    // Decoded as `blurgate redact` decodes them: a JPEG through libjpeg-turbo, with a reduced
    // preview for the coarse passes when it is larger than the overview.
    let limits = DecodeLimits::default();
    let photos = files
        .iter()
        .map(|f| {
            let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
            let failed = |e: &dyn std::fmt::Display| anyhow::anyhow!("{}: {e}", f.display());
            let decoded = match jpeg::preview(&bytes, limits, options.max_side) {
                Some(p) if p.rgb.dimensions() == p.size() => (p.rgb, None),
                Some(p) => {
                    let full = jpeg::decode_full(&bytes, &p.header, p.max_memory).map_err(|e| failed(&e))?;
                    (p.turn.apply(full), Some(p.rgb))
                }
                None => (decode(&bytes, limits).map_err(|e| failed(&e))?.rgb, None),
            };
            Ok(decoded)
        })
        .collect::<Result<Vec<(RgbImage, Option<RgbImage>)>>>()?;

    blurgate::jobs::keep_freed_memory();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = workers.unwrap_or(cores).clamp(1, photos.len());
    let dir = ModelDir::locate(None)?;
    let model = dir.model(options.precision.model())?;
    let detector = Detector::try_new(
        dir.init_runtime()?,
        &model.path,
        DetectorOptions { sessions: workers, threads_per_session: (cores / workers).max(1), ..options },
    )?;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(workers).build()?;

    // A warm-up round first (every shape's first run is slower), not counted unless it is the
    // only one (`--rounds 0`).
    let mut best: Option<(f64, Vec<_>)> = None;
    for round in 0..=rounds {
        let started = Instant::now();
        let found = pool.install(|| {
            photos
                .par_iter()
                .map(|p| {
                    let mut work = DetectionWork::default();
                    detector.detect_traced(&p.0, p.1.as_ref(), &mut work).map(|d| (d, work))
                })
                .collect::<blurgate::Result<Vec<_>>>()
        })?;
        let secs = started.elapsed().as_secs_f64();
        let counted = round > 0 || rounds == 0;
        if best.as_ref().is_none_or(|(b, _)| counted && secs < *b) {
            best = Some((if counted { secs } else { f64::INFINITY }, found));
        }
    }
    let (secs, found) = best.expect("at least one round ran");
    let style = RedactOptions::default();
    let mut total = DetectionWork::default();
    let entries: Vec<_> = files
        .iter()
        .zip(&found)
        .map(|(f, (faces, work))| {
            total.add(work);
            let faces: Vec<_> = faces
                .iter()
                .map(|d| {
                    let m = style.mask_box(&d.bbox);
                    json!({"box": [d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2], "mask": [m.x1, m.y1, m.x2, m.y2], "score": d.score})
                })
                .collect();
            json!({"input": f.display().to_string(), "faces": faces})
        })
        .collect();
    std::fs::write(&report, serde_json::to_vec(&json!({ "files": entries }))?)?;
    let n = photos.len() as f64;
    println!(
        "detect_ablation: {} photos, {workers} workers: {secs:.2} s ({:.2} photos/s), {:.1} passes/photo, {:.1} runs/photo, {:.2} Mpx/photo, inference {:.0} ms/photo",
        photos.len(),
        n / secs,
        total.passes as f64 / n,
        total.runs as f64 / n,
        total.network_pixels as f64 / n / 1e6,
        total.inference_ms / n
    );
    Ok(())
}
