//! `blurgate check`: the publication gate. Every photo under the locations is checked against
//! the policy: a file `redact` wrote and vouched for in the folder's manifest (same bytes, same
//! policy, same register) passes; any other is decoded and searched, and each face the policy
//! would redact is a finding. A file that cannot be checked fails, as in `redact`.

use std::path::Path;
use std::time::Instant;

use super::engine::{Engine, Recognition};
use super::manifest::{Manifest, ManifestKey};
use super::observer::Observer;
use super::outcome::{record_failure, FileError};
use super::plan::{self, Found};
use super::redact::{decode, read_input, Decisions};
use super::{pool, RunOptions};
use crate::detect::DetectorOptions;
use crate::error::{Error, Result};
use crate::matching::{Action, Policy};
use crate::models::ModelDir;
use crate::report::{FaceReport, FileReport, FileStatus, Report};
use crate::storage::Location;

#[derive(Debug, Clone)]
pub struct CheckJob {
    pub locations: Vec<Location>,
    pub detection: DetectorOptions,
    pub decisions: Decisions,
    pub run: RunOptions,
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
        let folder = if location.is_folder()? {
            location.clone()
        } else {
            Location::from(location.local_path().parent().unwrap_or(Path::new(".")))
        };
        manifests.push(key.as_ref().map(|k| Manifest::read(&folder, k)).unwrap_or_default());
        let found = plan::walk(std::slice::from_ref(location), job.run.follow_symlinks)?;
        files.extend(found.files.into_iter().map(|f| (f, manifests.len() - 1)));
    }
    let workers = pool::workers(job.run.jobs, files.len());
    let recognition = if decisions.matching.is_some() { Recognition::On } else { Recognition::Off };
    let engine = Engine::new(models, job.detection.clone(), recognition, workers)?;
    let register = decisions.matching.as_ref().map(|m| m.register_digest());
    let files = pool::run(files, workers, observer, |(found, m)| {
        let mut report = FileReport::new(&found.input);
        let result = check_file(found, &manifests[m], register.as_deref(), &engine, job, &mut report);
        if let Err(e) = result {
            record_failure(&mut report, &e);
        }
        report
    })?;
    let mut report = Report::new(files, started.elapsed().as_secs_f64());
    report.detection = Some(job.detection.settings());
    report.thresholds = decisions.matching.as_ref().map(|m| m.thresholds);
    Ok(report)
}

fn check_file(
    found: Found,
    manifest: &Manifest,
    register: Option<&str>,
    engine: &Engine,
    job: &CheckJob,
    report: &mut FileReport,
) -> Result<(), FileError> {
    if !found.verdict.admit(report)? {
        return Ok(());
    }
    let bytes = read_input(&found.input, report)?;
    let sha256 = report.input_sha256.clone().expect("set by read_input");
    if manifest.vouches(&found.rel, &sha256, job.decisions.policy, register) {
        report.vouched = true;
        report.status = FileStatus::Unchanged;
        return Ok(());
    }
    let photo = decode(&bytes, job.run.limits, report)?;
    let (policy, matching) = (job.decisions.policy, job.decisions.matching.as_ref());
    let frames = photo.frames();
    let animated = frames.len() > 1;
    for (i, frame) in frames.iter().enumerate() {
        for (face, decision) in engine.analyse(frame, policy, matching).map_err(FileError::Model)? {
            let action = decision.as_ref().map_or(Action::Redacted, |d| d.action);
            if action == Action::Redacted {
                let finding = FaceReport::new(&face, action, None, decision);
                report.faces.push(FaceReport { frame: animated.then_some(i as u32), ..finding });
            }
        }
    }
    report.status = if report.faces.is_empty() { FileStatus::Unchanged } else { FileStatus::Violation };
    Ok(())
}
