//! Inference-only rate of the face detector on a set of photos, for comparison with the whole
//! `blurgate redact` pipeline on the same photos (pipeline efficiency = pipeline rate /
//! inference-only rate; see scripts/bench.sh).
//!
//!   cargo run --release --example inference_rate -- [--rounds N] [--workers N] [--precision fp32|int8] [--stages] PHOTO_OR_DIR...
//!
//! Each photo is decoded as the pipeline does and run once through the detector at default
//! settings to record the network input shapes the pipeline really runs for it (the scaled
//! whole-photo pass and any tiles). Then only ONNX Runtime inference on those shapes is timed,
//! with the pipeline's thread budget: one session per worker, workers = cores capped by the
//! number of files, intra-op threads = cores / workers, inside a rayon pool of `workers`
//! threads. Every distinct shape is run once on every session before timing.
//!
//! `--workers N` overrides the worker count (as `blurgate redact --jobs N` does), for
//! comparing thread budgets.
//!
//! `--precision` picks the model as `blurgate redact --precision` does (default: the default
//! preset's, int8).
//!
//! `--stages` adds a single-worker breakdown per photo size class, in milliseconds per photo,
//! of the stages as `blurgate redact` runs them at default settings: decode (for a JPEG that is
//! rewritten block by block, the reduced preview), detection (of which inference), and
//! redaction with encoding (for such a JPEG, the region decode, redaction, coefficient
//! replacement and re-write).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use blurgate::detect::{infer_only, DetectionWork, Detector, DetectorOptions, Precision};
use blurgate::media::jpeg::{preview as jpeg_preview, rewrite as rewrite_jpeg};
use blurgate::media::{decode, encode, DecodeLimits, EncodeOptions};
use blurgate::models::ModelDir;
use blurgate::redact::{redact, Layer, RedactOptions};
use rayon::prelude::*;

const EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "webp"];

struct Input {
    path: PathBuf,
    bytes: Vec<u8>,
    width: u32,
    height: u32,
    /// (batch, height, width) of every network run the pipeline makes for this photo.
    shapes: Vec<(usize, usize, usize)>,
}

fn main() -> Result<()> {
    let mut rounds = 3usize;
    let mut stages = false;
    let mut jobs: Option<usize> = None;
    let mut options = DetectorOptions::default();
    let mut paths = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => rounds = args.next().context("--rounds needs a number")?.parse()?,
            "--stages" => stages = true,
            "--precision" => {
                options = options.with_precision(match args.next().as_deref() {
                    Some("fp32") => Precision::Fp32,
                    Some("int8") => Precision::Int8,
                    _ => bail!("--precision needs fp32 or int8"),
                })
            }
            "--workers" => jobs = Some(args.next().context("--workers needs a number")?.parse()?),
            "-h" | "--help" => {
                println!("usage: inference_rate [--rounds N] [--workers N] [--precision fp32|int8] [--stages] PHOTO_OR_DIR...");
                return Ok(());
            }
            _ => paths.push(PathBuf::from(a)),
        }
    }
    let files = collect(&paths)?;
    if files.is_empty() {
        bail!("no photos given (usage: inference_rate [--rounds N] [--workers N] [--precision fp32|int8] [--stages] PHOTO_OR_DIR...)");
    }

    // The pipeline's allocator setting and thread budget (pipeline::workers and Engine::new).
    blurgate::jobs::keep_freed_memory();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = jobs.unwrap_or(cores).clamp(1, files.len());
    let threads = (cores / workers).max(1);

    let dir = ModelDir::locate(None)?;
    let env = dir.init_runtime()?;
    let model = dir.model(options.precision.model())?;
    println!("inference_rate: model {} ({})", model.name, model.path.display());
    let detector = Detector::try_new(
        env,
        &model.path,
        DetectorOptions { sessions: workers, threads_per_session: threads, ..options.clone() },
    )?;

    let mut inputs = Vec::with_capacity(files.len());
    for path in files {
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let photo = decode(&bytes, Default::default()).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let mut work = DetectionWork::default();
        detector.detect_traced(&photo.rgb, None, &mut work)?;
        let shapes = work.shapes;
        let (width, height) = photo.rgb.dimensions();
        inputs.push(Input { path, bytes, width, height, shapes });
    }
    println!("inference_rate: {} photos, {workers} workers x {threads} intra-op threads ({cores} cores)", inputs.len());
    for i in &inputs {
        let shapes: Vec<String> = i.shapes.iter().map(|(b, h, w)| format!("{b}x{w}x{h}")).collect();
        println!("  {} {}x{}: {} inference(s) {}", name(&i.path), i.width, i.height, i.shapes.len(), shapes.join(" "));
    }

    let pool = rayon::ThreadPoolBuilder::new().num_threads(workers).build()?;
    let distinct: BTreeSet<(usize, usize, usize)> = inputs.iter().flat_map(|i| i.shapes.iter().copied()).collect();
    let started = Instant::now();
    let warmed: Vec<blurgate::Result<()>> =
        pool.broadcast(|_| distinct.iter().try_for_each(|&shape| infer_only(&detector, shape)));
    warmed.into_iter().collect::<blurgate::Result<()>>()?;
    println!(
        "warm-up: first run of {} distinct shapes on each of {workers} sessions: {:.3} s (not timed below)",
        distinct.len(),
        started.elapsed().as_secs_f64()
    );

    let calls: usize = inputs.iter().map(|i| i.shapes.len()).sum();
    let mut rates = Vec::with_capacity(rounds);
    for round in 1..=rounds.max(1) {
        let started = Instant::now();
        pool.install(|| {
            inputs.par_iter().try_for_each(|i| i.shapes.iter().try_for_each(|&shape| infer_only(&detector, shape)))
        })?;
        let secs = started.elapsed().as_secs_f64();
        let rate = inputs.len() as f64 / secs;
        println!("round {round}: {calls} inferences in {secs:.3} s = {rate:.3} images/s");
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    println!("inference-only rate: median {:.3} images/s (best {:.3})", rates[rates.len() / 2], rates[rates.len() - 1]);

    if stages {
        stage_breakdown(env, &model.path, DetectorOptions { threads_per_session: threads, ..options }, &inputs)?;
    }
    Ok(())
}

/// Milliseconds per photo in each stage on one worker, by size class.
fn stage_breakdown(
    env: &ort::environment::Environment,
    model: &Path,
    options: DetectorOptions,
    inputs: &[Input],
) -> Result<()> {
    let detector = Detector::try_new(env, model, options)?;
    let mut classes: Vec<(&str, Vec<&Input>)> = vec![("up to 8 MP", Vec::new()), ("over 8 MP", Vec::new())];
    for i in inputs {
        classes[usize::from(i.width as u64 * i.height as u64 > 8_000_000)].1.push(i);
    }
    println!("stages on one worker ({} intra-op threads), ms per photo:", detector.options().threads_per_session);
    println!(
        "  {:<11} {:>6} {:>10} {:>8} {:>8} {:>10} {:>15} {:>8}",
        "class", "photos", "rewritten", "decode", "detect", "(infer)", "redact+encode", "total"
    );
    let (limits, redact_options, encode_options) =
        (DecodeLimits::default(), RedactOptions::default(), EncodeOptions::default());
    for (label, set) in classes.iter().filter(|(_, s)| !s.is_empty()) {
        let (mut sums, mut rewritten) = ([0f64; 4], 0);
        for i in set {
            // Warm this photo's shapes, then measure each stage once.
            for &shape in &i.shapes {
                infer_only(&detector, shape)?;
            }
            let failed = |e: &dyn std::fmt::Display| anyhow::anyhow!("{}: {e}", i.path.display());
            let t = Instant::now();
            let source = match jpeg_preview(&i.bytes, limits, detector.options().max_side) {
                Some(p) => Ok(p),
                None => Err(decode(&i.bytes, limits).map_err(|e| failed(&e))?),
            };
            sums[0] += ms(t);
            let t = Instant::now();
            let faces = match &source {
                Ok(p) if p.rgb.dimensions() == p.size() => detector.detect(&p.rgb)?,
                Ok(p) => {
                    let full = p.turn.apply(
                        blurgate::media::jpeg::decode_full(&i.bytes, &p.header, p.max_memory)
                            .map_err(|e| failed(&e))?,
                    );
                    detector.detect_with_preview(&full, Some(&p.rgb))?
                }
                Err(photo) => detector.detect(&photo.rgb)?,
            };
            sums[1] += ms(t);
            let t = Instant::now();
            for &shape in &i.shapes {
                infer_only(&detector, shape)?;
            }
            sums[2] += ms(t);
            let boxes: Vec<_> = faces.iter().map(|f| f.bbox).collect();
            let t = Instant::now();
            // Ok: a JPEG rewritten block by block; Err: any other photo, decoded in full.
            match source {
                Ok(p) => {
                    rewrite_jpeg(&i.bytes, p, &[Layer { boxes: &boxes, options: redact_options }], &encode_options)
                        .map_err(|e| failed(&e))?;
                    rewritten += 1;
                }
                Err(mut photo) => {
                    redact(&mut photo.rgb, &boxes, &redact_options);
                    encode(photo, &encode_options).map_err(|e| failed(&e))?;
                }
            }
            sums[3] += ms(t);
        }
        let n = set.len() as f64;
        let [dec, det, inf, out] = sums.map(|s| s / n);
        println!(
            "  {label:<11} {:>6} {rewritten:>10} {dec:>8.1} {det:>8.1} {:>10} {out:>15.1} {:>8.1}",
            set.len(),
            format!("({inf:.1})"),
            dec + det + out
        );
    }
    Ok(())
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn name(p: &Path) -> String {
    p.file_name().map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// The photos named, and those directly inside the folders named, in name order.
fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.is_file()
                        && f.extension()
                            .and_then(|e| e.to_str())
                            .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
                })
                .collect();
            found.sort();
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}
