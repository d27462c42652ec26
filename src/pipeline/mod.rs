//! Runs over many files: plan the files, then decode → detect → (embed → match) → redact →
//! encode → write each one on a rayon pool, one model session per worker, with a progress bar
//! on terminals and an audit record per file.

pub mod state;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use image::RgbImage;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use time::Date;

use crate::detect::{Detection, Detector, DetectorOptions, FaceBox, Landmarks};
use crate::embed::{Embedder, EmbedderOptions, Embedding};
use crate::error::{Error, Result};
use crate::jpeg;
use crate::media_in::{self, DecodeLimits, JpegPreview, Photo, Planned};
use crate::media_out::{self, EncodeOptions};
use crate::models::{hex, ModelDir};
use crate::policy::{self, Decision, FaceDecision, Policy, Thresholds};
use crate::redact::{self, Mask, RedactOptions};
use crate::register::Register;
use crate::report::audit::{AuditFace, AuditLog, Event};
use crate::report::{Action, FaceReport, FileReport, FileStatus, Report};
use state::{Finished, RunState};

/// Recognition against a register.
#[derive(Debug, Clone)]
pub struct Matching {
    pub register: Register,
    /// The use of the photos, checked against each person's refused purposes.
    pub purpose: String,
    /// The band edges in force (see [`Register::thresholds`]).
    pub thresholds: Thresholds,
    /// Entries that expired before this day no longer match.
    pub today: Date,
}

/// The models a run needs, loaded once and shared by the workers.
pub struct Engine {
    detector: Detector,
    embedder: Option<Embedder>,
    /// Model name → sha256, for the audit log.
    model_hashes: BTreeMap<String, String>,
}

impl Engine {
    /// Loads the detector (and the embedder with `recognise`) with `workers` sessions each.
    pub fn new(models: &ModelDir, detector: DetectorOptions, recognise: bool, workers: usize) -> Result<Engine> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = (cores / workers.max(1)).max(1);
        let env = models.init_runtime()?;
        let mut model_hashes = BTreeMap::new();
        let centerface = models.model(detector.precision.model_name())?;
        model_hashes.insert(centerface.name.clone(), centerface.sha256.clone());
        let detector = Detector::try_new(
            env,
            &centerface.path,
            DetectorOptions { sessions: workers, threads_per_session: threads, ..detector },
        )?;
        let embedder = if recognise {
            let sface = models.model("sface")?;
            model_hashes.insert(sface.name.clone(), sface.sha256.clone());
            let options =
                EmbedderOptions { sessions: workers, threads_per_session: threads, device: detector.options().device };
            Some(Embedder::try_new(env, &sface.path, options)?)
        } else {
            None
        };
        Ok(Engine { detector, embedder, model_hashes })
    }

    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    /// The face recogniser; an error if the engine was built without recognition.
    pub fn embedder(&self) -> Result<&Embedder> {
        self.embedder.as_ref().ok_or_else(|| Error::Usage("face recognition was not loaded".into()))
    }

    /// Embeddings of the faces at `landmarks`.
    pub fn embed(&self, rgb: &RgbImage, landmarks: &[Landmarks]) -> Result<Vec<Embedding>> {
        self.embedder()?.embed(rgb, landmarks)
    }

    /// Every face in the photo and, with a register, its match decision under `policy`
    /// (without one, every face is to be redacted).
    pub fn analyse(
        &self,
        rgb: &RgbImage,
        policy: Policy,
        matching: Option<&Matching>,
    ) -> Result<Vec<(Detection, Option<FaceDecision>)>> {
        let faces = self.detector.detect(rgb)?;
        self.decide(rgb, faces, policy, matching)
    }

    /// The match decision of every face found in `rgb` (the photo at full resolution), or
    /// none without a register (then `rgb` is not looked at).
    pub fn decide(
        &self,
        rgb: &RgbImage,
        faces: Vec<Detection>,
        policy: Policy,
        matching: Option<&Matching>,
    ) -> Result<Vec<(Detection, Option<FaceDecision>)>> {
        let Some(m) = matching else {
            return Ok(faces.into_iter().map(|d| (d, None)).collect());
        };
        let probes = self.embedder()?.probes(rgb, &faces)?;
        Ok(faces
            .into_iter()
            .zip(probes)
            .map(|(d, p)| {
                let best = m.register.best_match(&p.embedding, m.today);
                (d, Some(policy::decide(policy, &m.purpose, &m.thresholds, best, &p.quality)))
            })
            .collect())
    }
}

#[derive(Debug, Clone)]
pub struct RedactJob {
    pub inputs: Vec<PathBuf>,
    pub out: PathBuf,
    pub detector: DetectorOptions,
    pub redact: RedactOptions,
    pub encode: EncodeOptions,
    pub limits: DecodeLimits,
    pub policy: Policy,
    pub matching: Option<Matching>,
    /// Files with an uncertain match are not written but listed for review.
    pub hold_uncertain: bool,
    pub audit: Option<PathBuf>,
    /// Follow symbolic links that lead out of an input folder.
    pub follow_symlinks: bool,
    /// Check every file again instead of resuming an interrupted run.
    pub fresh: bool,
    /// Files processed at once; `None`: one per core.
    pub jobs: Option<usize>,
    pub progress: bool,
}

impl RedactJob {
    /// Hash of everything that decides a file's output: a resumed run skips a file only if
    /// this is unchanged.
    fn settings_hash(&self, engine: &Engine) -> String {
        let register = self.matching.as_ref().map(|m| {
            let json = serde_json::to_vec(&m.register).expect("register serialises");
            (hex(&Sha256::digest(json)), &m.purpose, m.thresholds, m.today)
        });
        let text = format!(
            "{}|{:?}|{:?}|{:?}|{:?}|{:?}|{}|{:?}|{:?}",
            env!("CARGO_PKG_VERSION"),
            self.detector,
            self.redact,
            self.encode,
            self.limits,
            self.policy,
            self.hold_uncertain,
            engine.model_hashes,
            register
        );
        hex(&Sha256::digest(text.as_bytes()))
    }
}

fn workers(jobs: Option<usize>, files: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    jobs.unwrap_or(cores).clamp(1, files.max(1))
}

/// Keeps freed memory in the process for the next photo (the pipeline calls it before its
/// workers start; benchmarks call it to match). Each photo needs a few buffers of tens of MB
/// (libjpeg's coefficients, decoded pixels); glibc hands blocks that large back to the kernel
/// when they are freed, and the next photo pays a page fault for every 4 KiB of them again:
/// reading a 12 MP JPEG's coefficients took 23 ms that way, 12 ms with the memory kept. Peak
/// memory is unchanged: it is the same buffers, reused.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator thresholds; it is called before the workers start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

/// Runs `f` over `items` on a pool of `workers` threads with a progress bar; failed entries
/// are printed on stderr as they happen.
fn run_pool<T: Sync>(
    items: &[T],
    workers: usize,
    progress: bool,
    f: impl Fn(&T) -> FileReport + Sync + Send,
) -> Result<Vec<FileReport>> {
    keep_freed_memory();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .build()
        .map_err(|e| Error::Usage(format!("cannot start worker threads: {e}")))?;
    let bar = progress_bar(items.len() as u64, progress);
    let reports = pool.install(|| {
        items
            .par_iter()
            .map(|item| {
                let started = Instant::now();
                let mut report = f(item);
                report.seconds = (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
                if let Some(err) = report.error.as_deref().filter(|_| report.status == FileStatus::Failed) {
                    bar.suspend(|| eprintln!("error: {}: {err}", report.input));
                }
                bar.inc(1);
                report
            })
            .collect()
    });
    bar.finish_and_clear();
    Ok(reports)
}

pub fn run_redact(job: &RedactJob, models: &ModelDir) -> Result<Report> {
    let started = Instant::now();
    if job.policy != Policy::All && job.matching.is_none() {
        return Err(Error::Usage(format!("--policy {} needs a --register", policy_name(job.policy))));
    }
    let plan = media_in::plan(&job.inputs, &job.out, job.follow_symlinks)?;
    if plan.files.is_empty() {
        return Err(Error::Usage("no photos found in the inputs".into()));
    }
    let workers = workers(job.jobs, plan.files.len());
    let engine = Engine::new(models, job.detector.clone(), job.matching.is_some(), workers)?;
    let audit = job.audit.as_deref().map(AuditLog::open).transpose()?;
    std::fs::create_dir_all(&job.out).map_err(|e| Error::io(&job.out, e))?;
    let run =
        Run { engine: &engine, job, state: RunState::open(&job.out, job.fresh)?, settings: job.settings_hash(&engine) };
    let files = run_pool(&plan.files, workers, job.progress, |p| {
        let report = process(p, &run);
        match audit.as_ref().filter(|_| !report.resumed) {
            Some(log) => match log.append(&audit_event("redact", &report, &engine, job)) {
                Ok(()) => report,
                Err(e) => unpublish(p, report, format!("cannot write the audit record: {e}")),
            },
            None => report,
        }
    })?;
    let mut report = Report::new(files, plan.ignored, started.elapsed().as_secs_f64());
    report.detection = Some(job.detector.settings());
    report.thresholds = job.matching.as_ref().map(|m| m.thresholds);
    Ok(report)
}

fn policy_name(p: Policy) -> &'static str {
    match p {
        Policy::All => "all",
        Policy::OptOuts => "opt-outs",
        Policy::ConsentedOnly => "consented-only",
    }
}

fn audit_event(command: &str, r: &FileReport, engine: &Engine, job: &RedactJob) -> Event {
    Event::File {
        command: command.into(),
        input: r.input.clone(),
        input_sha256: r.input_sha256.clone(),
        output: r.output.clone(),
        output_sha256: r.output_sha256.clone(),
        status: r.status,
        error: r.error.clone(),
        models: engine.model_hashes.clone(),
        detector_threshold: job.detector.threshold(),
        thresholds: job.matching.as_ref().map(|m| m.thresholds),
        policy: job.policy,
        faces: r
            .faces
            .iter()
            .map(|f| AuditFace { decision: f.decision, person: f.person.clone(), action: f.action })
            .collect(),
    }
}

fn progress_bar(len: u64, enabled: bool) -> ProgressBar {
    if !enabled || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} photos  {per_sec}  ETA {eta}")
            .expect("static template")
            .progress_chars("##-"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Removes the file's output (a copy left by an earlier run must not outlive a failure to
/// check this version) and marks the report failed.
fn unpublish(p: &Planned, mut report: FileReport, reason: String) -> FileReport {
    let _ = std::fs::remove_file(&p.output);
    tracing::debug!(file = %p.input.display(), %reason, "not published");
    report.status = FileStatus::Failed;
    report.output = None;
    report.output_sha256 = None;
    report.error = Some(reason);
    report
}

/// What every file of a redact run shares.
struct Run<'a> {
    engine: &'a Engine,
    job: &'a RedactJob,
    state: RunState,
    settings: String,
}

/// One file, start to finish. Nothing appears under the output name unless the whole file was
/// checked and written; a panic in any stage fails this file only.
fn process(p: &Planned, run: &Run) -> FileReport {
    let mut report = FileReport::new(&p.input);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| redact_file(p, run, &mut report)))
        .unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(format!("internal error while processing this file (please report it): {what}"))
        });
    match outcome {
        Ok(()) => report,
        Err(reason) => unpublish(p, report, reason),
    }
}

fn read_input(path: &Path, report: &mut FileReport) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    report.input_sha256 = Some(hex(&Sha256::digest(&bytes)));
    Ok(bytes)
}

fn decode(bytes: &[u8], limits: DecodeLimits, report: &mut FileReport) -> Result<Photo, String> {
    let photo = media_in::decode(bytes, limits).map_err(|e| format!("cannot decode: {e}"))?;
    (report.width, report.height) = (Some(photo.rgb.width()), Some(photo.rgb.height()));
    Ok(photo)
}

/// A decoded input: in full, or a JPEG as a reduced preview, to be rewritten block by block.
enum Source<'a> {
    Full(Photo),
    Jpeg(JpegPreview<'a>),
}

/// JPEGs that can be rewritten block by block are read as a preview at the detector's size
/// (decoded in full too, in `find_faces`, when they are larger than that); a run that sets a
/// JPEG quality decodes every file in full.
fn open<'a>(bytes: &'a [u8], job: &RedactJob, report: &mut FileReport) -> Result<Source<'a>, String> {
    if job.encode.jpeg_quality.is_none() {
        if let Some(p) = media_in::jpeg_preview(bytes, job.limits, job.detector.max_side) {
            let (w, h) = p.size();
            (report.width, report.height) = (Some(w), Some(h));
            return Ok(Source::Jpeg(p));
        }
    }
    decode(bytes, job.limits, report).map(Source::Full)
}

/// The faces in the photo, with their match decisions. A JPEG read as a reduced preview is
/// decoded in full too (the native and zoomed passes and recognition need every pixel), and
/// the preview serves the coarse passes.
fn find_faces(source: &Source, bytes: &[u8], run: &Run) -> Result<Vec<(Detection, Option<FaceDecision>)>, String> {
    let (engine, job) = (run.engine, run.job);
    let failed = |e: Error| format!("face detection or recognition failed: {e}");
    let p = match source {
        Source::Full(photo) => return engine.analyse(&photo.rgb, job.policy, job.matching.as_ref()).map_err(failed),
        Source::Jpeg(p) => p,
    };
    let full = if p.rgb.dimensions() == p.size() {
        None
    } else {
        let stored = jpeg::decode_full(bytes, &p.header, p.max_memory).map_err(|e| format!("cannot decode: {e}"))?;
        Some(p.turn.apply(stored))
    };
    let (img, preview) = match &full {
        Some(full) => (full, Some(&p.rgb)),
        None => (&p.rgb, None),
    };
    let found = engine.detector().detect_with_preview(img, preview).map_err(failed)?;
    engine.decide(img, found, job.policy, job.matching.as_ref()).map_err(failed)
}

fn render_full(mut photo: Photo, boxes: &[FaceBox], job: &RedactJob) -> Result<Vec<u8>, String> {
    redact::redact(&mut photo.rgb, boxes, &job.redact);
    media_out::encode(photo, &job.encode).map_err(|e| format!("cannot encode: {e}"))
}

/// The redacted copy of the file.
fn render(
    source: Source,
    bytes: &[u8],
    boxes: &[FaceBox],
    p: &Planned,
    job: &RedactJob,
    report: &mut FileReport,
) -> Result<Vec<u8>, String> {
    match source {
        Source::Full(photo) => render_full(photo, boxes, job),
        Source::Jpeg(preview) => match media_out::rewrite_jpeg(bytes, preview, boxes, &job.redact, &job.encode) {
            Ok(encoded) => Ok(encoded),
            Err(e) => {
                tracing::warn!("{}: block-level JPEG rewrite failed ({e}); encoding it afresh", p.input.display());
                render_full(decode(bytes, job.limits, report)?, boxes, job)
            }
        },
    }
}

fn redact_file(p: &Planned, run: &Run, report: &mut FileReport) -> Result<(), String> {
    let job = run.job;
    if let Some(reason) = &p.unsupported {
        return Err(reason.clone());
    }
    let bytes = read_input(&p.input, report)?;
    let input_sha256 = report.input_sha256.clone().expect("set by read_input");
    if let Some(done) = run.state.finished(&p.output, &input_sha256, &run.settings) {
        *report = FileReport { resumed: true, ..done.report.clone() };
        return Ok(());
    }
    let source = open(&bytes, job, report)?;
    let faces = find_faces(&source, &bytes, run)?;
    let (w, h) = (report.width.unwrap_or(0), report.height.unwrap_or(0));
    let action = |d: &Option<FaceDecision>| d.as_ref().map_or(Action::Redacted, |fd| fd.action);
    let boxes: Vec<_> = faces.iter().filter(|(_, d)| action(d) == Action::Redacted).map(|(f, _)| f.bbox).collect();
    report.review = faces.iter().any(|(_, d)| d.as_ref().is_some_and(FaceDecision::needs_review));
    report.faces = faces
        .into_iter()
        .map(|(f, d)| {
            let a = action(&d);
            let mask = (a == Action::Redacted).then(|| {
                let m = Mask::for_face(&f.bbox, &job.redact, w, h).area;
                [m.x1, m.y1, m.x2, m.y2]
            });
            FaceReport::new(&f, a, mask, d)
        })
        .collect();
    if report.review && job.hold_uncertain {
        let _ = std::fs::remove_file(&p.output);
        report.status = FileStatus::Held;
        return Ok(());
    }
    report.status = if boxes.is_empty() { FileStatus::Unchanged } else { FileStatus::Redacted };
    let encoded = render(source, &bytes, &boxes, p, job, report)?;
    drop(bytes);
    media_out::write_atomic(&p.output, &encoded).map_err(|e| format!("cannot write {}: {e}", p.output.display()))?;
    report.output = Some(p.output.display().to_string());
    let output_sha256 = hex(&Sha256::digest(&encoded));
    report.output_sha256 = Some(output_sha256.clone());
    run.state
        .record(&Finished {
            output: p.output.clone(),
            input_sha256,
            settings: run.settings.clone(),
            output_sha256,
            report: report.clone(),
        })
        .map_err(|e| format!("cannot record progress: {e}"))
}

/// `blurgate find`: the files in which one registered person appears.
#[derive(Debug, Clone)]
pub struct FindJob {
    pub inputs: Vec<PathBuf>,
    pub detector: DetectorOptions,
    pub limits: DecodeLimits,
    /// A register holding only the person asked about.
    pub matching: Matching,
    pub jobs: Option<usize>,
    pub progress: bool,
}

/// Every file of the inputs, with only the faces that match (or may match) the person.
pub fn run_find(job: &FindJob, models: &ModelDir) -> Result<Report> {
    let started = Instant::now();
    let walk = media_in::walk(&job.inputs, false)?;
    let workers = workers(job.jobs, walk.files.len());
    let engine = Engine::new(models, job.detector.clone(), true, workers)?;
    let files = run_pool(&walk.files, workers, job.progress, |f| {
        let mut report = FileReport::new(&f.input);
        let result = f.unsupported.clone().map_or(Ok(()), Err).and_then(|()| {
            let photo = decode(&read_input(&f.input, &mut report)?, job.limits, &mut report)?;
            engine
                .analyse(&photo.rgb, Policy::OptOuts, Some(&job.matching))
                .map_err(|e| format!("face detection or recognition failed: {e}"))
        });
        match result {
            Ok(faces) => {
                report.faces = faces
                    .into_iter()
                    .filter(|(_, d)| d.as_ref().is_some_and(|d| d.decision != Decision::Unknown))
                    .map(|(f, d)| FaceReport::new(&f, Action::Kept, None, d))
                    .collect();
                report.review = report.faces.iter().any(|f| f.decision == Some(Decision::Uncertain));
                report.status = FileStatus::Unchanged;
            }
            Err(e) => report.error = Some(e),
        }
        report
    })?;
    let mut report = Report::new(files, walk.ignored, started.elapsed().as_secs_f64());
    report.detection = Some(job.detector.settings());
    Ok(report)
}
