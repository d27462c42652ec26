//! `blurgate check`: the publication gate. Every photo under the locations is checked against
//! the policy: a file `redact` wrote and vouched for in the folder's manifest (same bytes, same
//! policy, same register) passes; any other is decoded and searched, and each face the policy
//! would redact is a finding. A file that cannot be checked fails, as in `redact`.

use std::time::Instant;

use super::cache::{self, Cache, CheckResult};
use super::engine::{Engine, Matching, ModelDigests, Recognition};
use super::manifest::{ManifestKey, Manifests};
use super::observer::Observer;
use super::outcome::{record_failure, FileError};
use super::plan::{self, Found};
use super::redact::{decode, read_input};
use super::video::{self, VideoSettings};
use super::Decisions;
use super::{pool, RunOptions};
use crate::detect::{DetectionWork, DetectorOptions};
use crate::digest::sha256_hex;
use crate::error::{Error, Result};
use crate::matching::{Action, Policy};
use crate::media;
use crate::models::ModelDir;
use crate::report::{FaceReport, FileReport, FileStatus, Report};
use crate::storage::Location;

#[derive(Debug, Clone)]
pub struct CheckJob {
    pub locations: Vec<Location>,
    pub detection: DetectorOptions,
    pub decisions: Decisions,
    pub run: RunOptions,
    /// How videos are searched (detection rate and size; the encoding part is unused).
    pub video: VideoSettings,
}

/// Every file of the locations: `unchanged` when nothing in it violates the policy (with
/// `vouched` when the manifest says `redact` wrote it), `violation` with the faces that
/// should not be shown, `failed` when it could not be checked, `skipped` when not media.
pub fn run_check(job: &CheckJob, models: &ModelDir, observer: &dyn Observer) -> Result<Report> {
    let started = Instant::now();
    let decisions = &job.decisions;
    if decisions.policy != Policy::All && decisions.matching.is_none() {
        return Err(Error::PolicyNeedsRegister { policy: decisions.policy.name() });
    }
    // Without a manifest key nothing is vouched for and every file is searched; a key file
    // that was named must be usable.
    let key = match &job.run.manifest_key_file {
        Some(file) => Some(ManifestKey::load(Some(file), false)?),
        None => ManifestKey::load(None, false).ok(),
    };
    // Each file with the manifest of the location it was found under.
    let mut files: Vec<(Found, usize)> = Vec::new();
    let mut manifests = Vec::new();
    for location in &job.locations {
        let folder = if location.is_folder()? { location.clone() } else { location.parent() };
        manifests.push(key.as_ref().map(|k| Manifests::read(&folder, k)).unwrap_or_default());
        let found = plan::walk(std::slice::from_ref(location), job.run.follow_symlinks, job.run.shard)?;
        files.extend(found.files.into_iter().map(|f| (f, manifests.len() - 1)));
    }
    let workers = pool::workers(job.run.jobs, files.len());
    let recognition = if decisions.matching.is_some() { Recognition::On } else { Recognition::Off };
    let engine = Engine::new(models, job.detection.clone(), recognition, workers)?;
    let run = CheckRun {
        engine: &engine,
        observer,
        job,
        cache: job.run.cache.as_deref().map(Cache::new),
        settings: job.settings_hash(engine.model_digests()),
        register: decisions.matching.as_ref().map(Matching::register_digest),
        matching: decisions.matching.as_ref().map(Matching::identity),
    };
    let files = pool::run(files, workers, observer, |(found, m)| {
        let mut report = FileReport::new(&found.input);
        if let Err(e) = check_file(found, &manifests[m], &run, &mut report) {
            record_failure(&mut report, &e);
        }
        report
    })?;
    let mut report = Report::new(files, started.elapsed().as_secs_f64());
    report.detection = Some(job.detection.settings());
    report.thresholds = decisions.matching.as_ref().map(|m| m.thresholds);
    Ok(report)
}

impl CheckJob {
    /// Names everything but the register that decides a file's result (see `cache`).
    fn settings_hash(&self, models: &ModelDigests) -> String {
        let text = format!(
            "check|{}|{:?}|{:?}|{:?}|{:?}|{:?}",
            env!("CARGO_PKG_VERSION"),
            self.detection,
            (self.video.detect_every, self.video.max_side),
            self.run.limits,
            self.decisions.policy,
            models
        );
        sha256_hex(text.as_bytes())
    }
}

/// What every file of a check shares.
struct CheckRun<'a> {
    engine: &'a Engine,
    observer: &'a dyn Observer,
    job: &'a CheckJob,
    cache: Option<Cache>,
    settings: String,
    /// The register's digest, as manifests record it.
    register: Option<String>,
    /// What match decisions depend on (see [`Matching::identity`]).
    matching: Option<String>,
}

fn check_file(found: Found, manifests: &Manifests, run: &CheckRun, report: &mut FileReport) -> Result<(), FileError> {
    if !found.verdict.admit(report)? {
        return Ok(());
    }
    let (job, cache) = (run.job, run.cache.as_ref());
    let version = found.version.as_ref();
    let is_video = media::is_video(&found.input);
    // An object whose version an earlier run read is known by its digest without a download.
    let mut bytes = None;
    let sha256 = match cache.and_then(|c| c.content_of(&found.input, version)) {
        Some(known) => known,
        None => {
            let sha256 = if is_video {
                // Read in pieces: a video is not held in memory.
                found.input.sha256().map_err(FileError::Read)?
            } else {
                bytes = Some(read_input(&found.input, report)?);
                report.input_sha256.clone().expect("set by read_input")
            };
            if let Some(c) = cache {
                c.remember_content(&found.input, version, &sha256);
            }
            sha256
        }
    };
    report.input_sha256 = Some(sha256.clone());
    if manifests.vouch(&found.rel, &sha256, job.decisions.policy, run.register.as_deref()) {
        report.vouched = true;
        report.status = FileStatus::Unchanged;
        return Ok(());
    }
    let key = cache::check_key(&sha256, &run.settings);
    if let Some(hit) = cache.and_then(|c| c.check_result(&key)).filter(|r| r.holds_for(run.matching.as_deref())) {
        *report = FileReport { input: report.input.clone(), cached: true, ..hit.report };
        return Ok(());
    }
    let faces_found = if is_video {
        check_video(&found.input, run, report)?
    } else {
        let bytes = match bytes {
            Some(b) => b,
            None => read_input(&found.input, report)?,
        };
        check_photo(&bytes, run, report)?
    };
    report.status = if report.faces.is_empty() { FileStatus::Unchanged } else { FileStatus::Violation };
    if let Some(c) = cache {
        let result = CheckResult { register: run.matching.clone(), faces_found, report: report.clone() };
        c.store_check_result(&key, &result);
    }
    Ok(())
}

/// The faces of a photo (every frame of an animation) the policy forbids go to `report`;
/// returns how many faces were found.
fn check_photo(bytes: &[u8], run: &CheckRun, report: &mut FileReport) -> Result<usize, FileError> {
    let job = run.job;
    let photo = decode(bytes, job.run.limits, report)?;
    let (policy, matching) = (job.decisions.policy, job.decisions.matching.as_ref());
    let frames = photo.frames();
    let animated = frames.len() > 1;
    let mut faces_found = 0;
    let mut work = DetectionWork::default();
    for (i, frame) in frames.iter().enumerate() {
        let found = run.engine.analyse(frame, policy, matching, &mut work);
        report.detection = Some(work.clone());
        for (face, decision) in found.map_err(FileError::Model)? {
            faces_found += 1;
            let action = decision.as_ref().map_or(Action::Redacted, |d| d.action);
            if action == Action::Redacted {
                let finding = FaceReport::new(&face, action, None, decision);
                report.faces.push(FaceReport { frame: animated.then_some(i as u32), ..finding });
            }
        }
    }
    Ok(faces_found)
}

/// A video's tracks the policy forbids go to `report`, one finding per track (its strongest
/// face, with frame and time); returns how many tracks were found.
#[cfg(feature = "video")]
fn check_video(input: &Location, run: &CheckRun, report: &mut FileReport) -> Result<usize, FileError> {
    let copy = input.local_copy().map_err(FileError::Read)?;
    let job = run.job;
    let decisions = (job.decisions.policy, job.decisions.matching.as_ref());
    let a = video::analyse(copy.path(), &input.to_string(), run.engine, decisions, &job.video, run.observer)?;
    let (w, h) = a.probe.upright();
    (report.width, report.height) = (Some(w), Some(h));
    report.faces = a.faces(None).into_iter().filter(|f| f.action == Action::Redacted).collect();
    Ok(a.tracks.len())
}

#[cfg(not(feature = "video"))]
fn check_video(input: &Location, _run: &CheckRun, _report: &mut FileReport) -> Result<usize, FileError> {
    Err(video::unsupported(input))
}
