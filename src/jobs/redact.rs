//! `blurgate redact`: plan the files, then decode → detect → (embed → match) → redact → encode
//! → write each one on the worker pool, one model session per worker, with an audit record
//! per file. Nothing appears under an output name unless the whole file was checked and
//! written.

use std::time::Instant;

use image::RgbImage;

use super::cache::Cache;
use super::engine::{Engine, Matching, ModelDigests, Recognition};
use super::manifest::{self, Entry, Manifest, ManifestKey, Manifests};
use super::observer::Observer;
use super::outcome::{record_failure, FileError};
use super::plan::{self, Planned, Verdict};
use super::publish::Outputs;
pub use super::publish::Replace;
use super::state::{Finished, RunState};
use super::video::{self, VideoSettings};
use super::{pool, Decisions, RenderOptions, RunOptions};
use crate::audit::{AuditFace, AuditLog, Event};
use crate::badge::{Badges, TextRegion};
use crate::detect::{Detection, DetectionWork, DetectorOptions, FaceBox};
use crate::digest::sha256_hex;
use crate::error::{Error, Result};
use crate::matching::{Action, FaceDecision, Policy};
use crate::media::{self, jpeg, Photo};
use crate::models::ModelDir;
use crate::redact::{Layer, Mask};
use crate::register::keystore;
use crate::report::{FaceReport, FileReport, FileStatus, RenderSettings, Report, TextReport};
use crate::storage::Location;

#[derive(Debug, Clone)]
pub struct RedactJob {
    pub inputs: Vec<Location>,
    /// The output folder; with `replace`, the published folder itself.
    pub out: Location,
    pub detection: DetectorOptions,
    pub render: RenderOptions,
    pub decisions: Decisions,
    pub run: RunOptions,
    pub replace: Option<Replace>,
    pub video: VideoSettings,
}

impl RedactJob {
    /// Every face of `inputs` redacted into `out` with the default settings.
    pub fn new(inputs: Vec<Location>, out: Location) -> Self {
        RedactJob {
            inputs,
            out,
            detection: DetectorOptions::default(),
            render: RenderOptions::default(),
            decisions: Decisions::default(),
            run: RunOptions::default(),
            replace: None,
            video: VideoSettings::default(),
        }
    }

    /// Replaces the files published at `location` (a folder, or one file) that show a face the
    /// policy hides by their redacted copies, in place.
    pub fn replacing(location: Location, replace: Replace) -> Result<Self> {
        let out = if location.is_folder()? { location.clone() } else { location.parent() };
        Ok(RedactJob { replace: Some(replace), ..RedactJob::new(vec![location], out) })
    }
    pub fn with_detection(self, detection: DetectorOptions) -> Self {
        RedactJob { detection, ..self }
    }
    pub fn with_render(self, render: RenderOptions) -> Self {
        RedactJob { render, ..self }
    }
    pub fn with_decisions(self, decisions: Decisions) -> Self {
        RedactJob { decisions, ..self }
    }
    pub fn with_run(self, run: RunOptions) -> Self {
        RedactJob { run, ..self }
    }
    pub fn with_video(self, video: VideoSettings) -> Self {
        RedactJob { video, ..self }
    }

    /// Hash of everything that decides a file's output: a resumed run skips a file only if
    /// this is unchanged.
    fn settings_hash(&self, models: &ModelDigests) -> String {
        let register = self.decisions.matching.as_ref().map(Matching::identity);
        let text = format!(
            "{}|{:?}|{:?}|{:?}|{:?}|{}|{:?}|{:?}|{:?}",
            env!("CARGO_PKG_VERSION"),
            self.detection,
            self.render,
            self.run.limits,
            self.decisions.policy,
            self.decisions.hold_uncertain,
            models,
            register,
            self.video
        );
        sha256_hex(text.as_bytes())
    }
}

pub fn run_redact(job: &RedactJob, models: &ModelDir, observer: &dyn Observer) -> Result<Report> {
    let started = Instant::now();
    let decisions = &job.decisions;
    if decisions.policy != Policy::All && decisions.matching.is_none() {
        return Err(Error::PolicyNeedsRegister { policy: decisions.policy.name() });
    }
    let plan = match &job.replace {
        None => {
            plan::plan(&job.inputs, &job.out, job.run.follow_symlinks, job.run.shard, job.render.encode.extension())?
        }
        Some(replace) => {
            if let Some(keep) = &replace.keep_originals {
                if keep.is_within(&job.out)? {
                    return Err(Error::OutputInsideInput {
                        out: keep.to_string().into(),
                        input: job.out.to_string().into(),
                    });
                }
            }
            plan::in_place(&job.inputs, job.run.follow_symlinks, job.run.shard)?
        }
    };
    if plan.iter().all(|p| matches!(p.verdict, Verdict::Skip(_))) {
        return Err(Error::NoMedia);
    }
    let workers = pool::workers(job.run.jobs, plan.len());
    let recognition = if decisions.matching.is_some() { Recognition::On } else { Recognition::Off };
    let engine = Engine::new(models, job.detection.clone(), recognition, workers)?;
    let dry_run = job.run.dry_run;
    // A dry run writes nothing: no output folder, no run state, no audit record.
    let audit = job.run.audit.as_ref().filter(|_| !dry_run).map(AuditLog::open).transpose()?;
    let (state, manifest_key) = if dry_run {
        (None, None)
    } else {
        job.out.create_folder()?;
        if let (Some(file), Some(out)) = (&job.run.manifest_key_file, job.out.local_path()) {
            keystore::refuse_inside(file, out, "the output folder")?;
        }
        let key = ManifestKey::load(job.run.manifest_key_file.as_deref(), true)?;
        // Replacing needs no journal: the location's manifest says what was checked.
        let shard = job.run.shard.map(|s| s.to_string()).unwrap_or_default();
        let state = match job.replace {
            None => Some(RunState::open(&job.out, job.run.fresh, job.run.cache.as_deref(), &shard)?),
            Some(_) => None,
        };
        (state, Some(key))
    };
    let register = job.decisions.matching.as_ref().map(Matching::register_digest);
    let published = match (&job.replace, &manifest_key) {
        (Some(_), Some(key)) => Manifests::read(&job.out, key),
        _ => Manifests::default(),
    };
    let run = Run {
        engine: &engine,
        job,
        state,
        settings: job.settings_hash(engine.model_digests()),
        observer,
        outputs: Outputs { out: &job.out, dry_run, replace: job.replace.as_ref() },
        register: register.clone(),
        published,
        cache: job.run.cache.as_deref().map(Cache::new),
    };
    let files = pool::run(plan, workers, observer, |p| {
        let output = p.output.clone();
        let mut report = process(p, &run);
        if let Some(log) = audit.as_ref().filter(|_| !report.resumed) {
            let command = if job.replace.is_some() { "redact --replace-published" } else { "redact" };
            if let Err(e) = log.append(&audit_event(command, &report, &engine, job)) {
                if job.replace.is_none() {
                    let _ = output.delete();
                }
                record_failure(&mut report, &FileError::Audit(e));
            }
        }
        report
    })?;
    let mut report = Report::new(files, started.elapsed().as_secs_f64());
    report.detection = Some(job.detection.settings());
    report.render = Some(RenderSettings {
        badges: Some(job.render.badges),
        ..RenderSettings::new(&job.render.redact, &job.render.encode)
    });
    report.thresholds = decisions.matching.as_ref().map(|m| m.thresholds);
    report.dry_run = dry_run;
    if let Some(key) = manifest_key {
        vouch(&report, job, &key)?;
    }
    Ok(report)
}

/// Records in the output folder's manifest every output this run wrote (or found finished),
/// under its policy and register, for `check`.
fn vouch(report: &Report, job: &RedactJob, key: &ManifestKey) -> Result<()> {
    let name = manifest::file_name(job.run.shard);
    let mut manifest = Manifest::read(&job.out, key, &name);
    let register = job.decisions.matching.as_ref().map(Matching::register_digest);
    for f in &report.files {
        let (Some(output), Some(sha256)) = (&f.output, &f.output_sha256) else { continue };
        let Some(rel) = job.out.rel_of(output) else { continue };
        let entry = Entry { sha256: sha256.clone(), policy: job.decisions.policy, register: register.clone() };
        manifest.set(&rel, entry);
    }
    manifest.write(&job.out, key, &name)
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
        models: engine.model_digests().clone(),
        detector_threshold: job.detection.threshold(),
        thresholds: job.decisions.matching.as_ref().map(|m| m.thresholds),
        policy: job.decisions.policy,
        faces: r
            .faces
            .iter()
            .map(|f| AuditFace { decision: f.decision, person: f.person.clone(), action: f.action })
            .collect(),
    }
}

/// What every file of a redact run shares.
struct Run<'a> {
    engine: &'a Engine,
    job: &'a RedactJob,
    /// The journal; `None` in a dry run and when replacing.
    state: Option<RunState>,
    settings: String,
    observer: &'a dyn Observer,
    outputs: Outputs<'a>,
    /// The register's digest, as manifests record it.
    register: Option<String>,
    /// When replacing: the location's manifests (files they vouch for are left alone).
    published: Manifests,
    cache: Option<Cache>,
}

/// One file, start to finish; a panic in any stage fails this file only. A failed file's
/// output is removed: a copy left by an earlier run must not outlive a failure to check this
/// version.
fn process(p: Planned, run: &Run) -> FileReport {
    let mut report = FileReport::new(&p.input);
    let output = p.output.clone();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| redact_file(p, run, &mut report)))
        .unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(FileError::Internal(what))
        });
    if let Err(e) = outcome {
        run.outputs.withdraw(&output);
        tracing::debug!(file = %output, reason = %e, "not published");
        record_failure(&mut report, &e);
    }
    report
}

pub(crate) fn read_input(input: &Location, report: &mut FileReport) -> Result<Vec<u8>, FileError> {
    let bytes = input.read().map_err(FileError::Read)?;
    report.input_sha256 = Some(sha256_hex(&bytes));
    Ok(bytes)
}

pub(crate) fn decode(bytes: &[u8], limits: media::DecodeLimits, report: &mut FileReport) -> Result<Photo, FileError> {
    let photo = media::decode(bytes, limits)?;
    (report.width, report.height) = (Some(photo.rgb.width()), Some(photo.rgb.height()));
    Ok(photo)
}

/// A decoded input: in full, or a JPEG as a reduced preview, to be rewritten block by block.
enum Source<'a> {
    Full(Photo),
    Jpeg(jpeg::Preview<'a>),
}

/// JPEGs that can be rewritten block by block are read as a preview at the detector's size
/// (decoded in full too, in `find_faces`, when they are larger than that); a run that sets a
/// JPEG quality or writes PNG decodes every file in full.
fn open<'a>(bytes: &'a [u8], job: &RedactJob, report: &mut FileReport) -> Result<Source<'a>, FileError> {
    if job.render.encode.keeps_jpeg() {
        if let Some(p) = jpeg::preview(bytes, job.run.limits, job.detection.max_side) {
            let (w, h) = p.size();
            (report.width, report.height) = (Some(w), Some(h));
            return Ok(Source::Jpeg(p));
        }
    }
    decode(bytes, job.run.limits, report).map(Source::Full)
}

/// What the networks ran on a file: face detection, and text detection on redacted people.
#[derive(Default)]
struct Work {
    faces: DetectionWork,
    texts: DetectionWork,
}

/// The faces in the photo (in each frame of an animation), with their match decisions, and
/// the text on the redacted ones. A JPEG read as a reduced preview is decoded in full too
/// (the native and zoomed passes, recognition and text detection need every pixel), and the
/// preview serves the coarse passes.
fn find_faces(source: &Source, bytes: &[u8], run: &Run, work: &mut Work) -> Result<Vec<Picture>, FileError> {
    let (engine, decisions) = (run.engine, &run.job.decisions);
    let (policy, matching) = (decisions.policy, decisions.matching.as_ref());
    let p = match source {
        Source::Full(photo) => {
            let frames = photo.frames();
            return frames
                .iter()
                .map(|f| {
                    let faces = engine.analyse(f, policy, matching, &mut work.faces).map_err(FileError::Model)?;
                    Picture::new(f, faces, run, &mut work.texts)
                })
                .collect();
        }
        Source::Jpeg(p) => p,
    };
    let full = if p.rgb.dimensions() == p.size() {
        None
    } else {
        let stored = jpeg::decode_full(bytes, &p.header, p.max_memory).map_err(|e| FileError::Decode(e.into()))?;
        Some(p.turn.apply(stored))
    };
    let (img, preview) = match &full {
        Some(full) => (full, Some(&p.rgb)),
        None => (&p.rgb, None),
    };
    let found = engine.detector().detect_traced(img, preview, &mut work.faces).map_err(FileError::Model)?;
    let faces = engine.decide(img, found, policy, matching).map_err(FileError::Model)?;
    Ok(vec![Picture::new(img, faces, run, &mut work.texts)?])
}

/// One picture (a photo, or one frame of an animation): its faces with their decisions, and
/// the text on the redacted ones.
struct Picture {
    faces: Vec<(Detection, Option<FaceDecision>)>,
    /// Each with the index in `faces` of the face it belongs to.
    texts: Vec<TextRegion>,
}

impl Picture {
    /// With `--badges redact`, looks for text in the badge areas of the faces to redact; a
    /// failure fails the file (fail closed: never a hidden face above a readable badge).
    fn new(
        img: &RgbImage,
        faces: Vec<(Detection, Option<FaceDecision>)>,
        run: &Run,
        work: &mut DetectionWork,
    ) -> Result<Picture, FileError> {
        let redacted: Vec<usize> = (0..faces.len()).filter(|&i| action(&faces[i].1) == Action::Redacted).collect();
        if run.job.render.badges == Badges::Keep || redacted.is_empty() {
            return Ok(Picture { faces, texts: Vec::new() });
        }
        let looked: Vec<Detection> = redacted.iter().map(|&i| faces[i].0).collect();
        let found = run.engine.badges(img, &looked, work).map_err(FileError::Text)?;
        let texts = found.into_iter().map(|t| TextRegion { face: redacted[t.face], ..t }).collect();
        Ok(Picture { faces, texts })
    }
}

/// What a face's decision (none without a register) makes of it.
fn action(d: &Option<FaceDecision>) -> Action {
    d.as_ref().map_or(Action::Redacted, |fd| fd.action)
}

/// What is redacted in each picture of a file: the faces, and the text on them.
struct Redactions {
    faces: Vec<Vec<FaceBox>>,
    texts: Vec<Vec<FaceBox>>,
}

fn render_full(mut photo: Photo, r: &Redactions, render: &RenderOptions) -> Result<Vec<u8>, FileError> {
    photo.redact_frames(&r.faces, &render.redact);
    photo.redact_frames(&r.texts, &render.redact.for_text());
    Ok(media::encode(photo, &render.encode)?)
}

/// The redacted copy of the file.
fn render(
    source: Source,
    bytes: &[u8],
    r: &Redactions,
    p: &Planned,
    job: &RedactJob,
    report: &mut FileReport,
) -> Result<Vec<u8>, FileError> {
    let redact = job.render.redact;
    match source {
        Source::Full(photo) => render_full(photo, r, &job.render),
        Source::Jpeg(preview) => {
            let layers = [
                Layer { boxes: &r.faces[0], options: redact },
                Layer { boxes: &r.texts[0], options: redact.for_text() },
            ];
            match jpeg::rewrite(bytes, preview, &layers, &job.render.encode) {
                Ok(encoded) => Ok(encoded),
                Err(e) => {
                    tracing::warn!("{}: block-level JPEG rewrite failed ({e}); encoding it afresh", p.input);
                    render_full(decode(bytes, job.run.limits, report)?, r, &job.render)
                }
            }
        }
    }
}

fn redact_file(mut p: Planned, run: &Run, report: &mut FileReport) -> Result<(), FileError> {
    let job = run.job;
    if !std::mem::replace(&mut p.verdict, Verdict::Check).admit(report)? {
        return Ok(());
    }
    if media::is_video(&p.input) {
        let decisions = &job.decisions;
        let video = video::VideoRun {
            engine: run.engine,
            policy: decisions.policy,
            matching: decisions.matching.as_ref(),
            hold_uncertain: decisions.hold_uncertain,
            redact: &job.render.redact,
            video: &job.video,
            state: run.state.as_ref(),
            outputs: run.outputs,
            settings: &run.settings,
            observer: run.observer,
        };
        return video::redact_video(p, &video, report);
    }
    // An object whose version an earlier run read is known by its digest without a download.
    let (cache, version) = (run.cache.as_ref(), p.version.as_ref());
    let finished = |sha256: &str| run.state.as_ref().and_then(|s| s.finished(&p.output, sha256, &run.settings));
    if let Some(done) = cache.and_then(|c| c.content_of(&p.input, version)).as_deref().and_then(finished) {
        *report = FileReport { resumed: true, ..done.report.clone() };
        return Ok(());
    }
    let bytes = read_input(&p.input, report)?;
    let input_sha256 = report.input_sha256.clone().expect("set by read_input");
    if let Some(c) = cache {
        c.remember_content(&p.input, version, &input_sha256);
    }
    if let Some(done) = finished(&input_sha256) {
        *report = FileReport { resumed: true, ..done.report.clone() };
        return Ok(());
    }
    let rel = p.input.rel_to(&job.out);
    let vouched = rel
        .as_ref()
        .is_some_and(|rel| run.published.vouch(rel, &input_sha256, job.decisions.policy, run.register.as_deref()));
    if vouched {
        // Published and checked under this policy and register already.
        report.status = FileStatus::Unchanged;
        report.vouched = true;
        (report.output, report.output_sha256) = (Some(p.output.to_string()), Some(input_sha256));
        return Ok(());
    }
    report.notes.extend(media::left_out(&bytes));
    let source = open(&bytes, job, report)?;
    let mut work = Work::default();
    let frames = find_faces(&source, &bytes, run, &mut work);
    report.detection = Some(work.faces);
    report.text_detection = (work.texts.runs > 0).then_some(work.texts);
    let frames = frames?;
    let animated = frames.len() > 1;
    let (w, h) = (report.width.unwrap_or(0), report.height.unwrap_or(0));
    let redactions = Redactions {
        faces: frames
            .iter()
            .map(|p| p.faces.iter().filter(|(_, d)| action(d) == Action::Redacted).map(|(f, _)| f.bbox).collect())
            .collect(),
        texts: frames.iter().map(|p| p.texts.iter().map(|t| t.bbox).collect()).collect(),
    };
    report.review =
        frames.iter().flat_map(|p| &p.faces).any(|(_, d)| d.as_ref().is_some_and(FaceDecision::needs_review));
    let text_options = job.render.redact.for_text();
    let mut first_face = 0;
    for (i, picture) in frames.into_iter().enumerate() {
        let frame = animated.then_some(i as u32);
        report.texts.extend(picture.texts.iter().map(|t| {
            let m = Mask::for_face(&t.bbox, &text_options, w, h).area;
            TextReport { frame, ..TextReport::new(t, first_face + t.face, Some([m.x1, m.y1, m.x2, m.y2])) }
        }));
        first_face += picture.faces.len();
        report.faces.extend(picture.faces.into_iter().map(|(f, d)| {
            let a = action(&d);
            let mask = (a == Action::Redacted).then(|| {
                let m = Mask::for_face(&f.bbox, &job.render.redact, w, h).area;
                [m.x1, m.y1, m.x2, m.y2]
            });
            FaceReport { frame, ..FaceReport::new(&f, a, mask, d) }
        }));
    }
    if report.review && job.decisions.hold_uncertain {
        run.outputs.withdraw(&p.output);
        report.status = FileStatus::Held;
        report.pending_output = Some(p.output.to_string());
        return Ok(());
    }
    report.status =
        if redactions.faces.iter().all(Vec::is_empty) { FileStatus::Unchanged } else { FileStatus::Redacted };
    if run.outputs.leave_published(&p, report) {
        return Ok(());
    }
    let encoded = render(source, &bytes, &redactions, &p, job, report)?;
    let output_sha256 = sha256_hex(&encoded);
    report.output = Some(p.output.to_string());
    report.output_sha256 = Some(output_sha256.clone());
    if job.run.dry_run {
        // This is what would be written.
        return Ok(());
    }
    run.outputs.keep_original(&p, |kept| kept.write_atomic(&bytes))?;
    drop(bytes);
    // A published file is replaced only if it is still the one that was checked.
    let written = match job.replace {
        Some(_) => p.output.replace_atomic(&encoded, p.version.as_ref()),
        None => p.output.write_atomic(&encoded),
    };
    written.map_err(|err| FileError::Write { path: p.output.to_string().into(), err })?;
    report.replaced = job.replace.is_some();
    let Some(state) = &run.state else { return Ok(()) };
    state
        .record(&Finished {
            output: p.output.to_string(),
            input_sha256,
            settings: run.settings.clone(),
            output_sha256,
            report: report.clone(),
        })
        .map_err(FileError::State)
}
