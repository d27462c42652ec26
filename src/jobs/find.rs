//! `blurgate find` (right of access): the files in which one registered person appears.

use std::time::Instant;

use super::engine::{Engine, Matching, Recognition};
use super::observer::Observer;
use super::outcome::{record_failure, FileError};
use super::plan;
use super::redact::{decode, read_input};
use super::{pool, RunOptions};
use crate::detect::{DetectionWork, DetectorOptions};
use crate::error::Result;
use crate::matching::{Action, Decision, Policy};
use crate::models::ModelDir;
use crate::report::{FaceReport, FileReport, FileStatus, Report};
use crate::storage::Location;

#[derive(Debug, Clone)]
pub struct FindJob {
    pub inputs: Vec<Location>,
    pub detection: DetectorOptions,
    /// A register holding only the person asked about.
    pub matching: Matching,
    pub run: RunOptions,
}

/// Every file of the inputs, with only the faces that match (or may match) the person.
pub fn run_find(job: &FindJob, models: &ModelDir, observer: &dyn Observer) -> Result<Report> {
    let started = Instant::now();
    let walk = plan::walk(&job.inputs, job.run.follow_symlinks, job.run.shard)?;
    let workers = pool::workers(job.run.jobs, walk.files.len());
    let engine = Engine::new(models, job.detection.clone(), Recognition::On, workers)?;
    let files = pool::run(walk.files, workers, observer, |f| {
        let mut report = FileReport::new(&f.input);
        let result = match f.verdict.admit(&mut report) {
            Ok(false) => return report,
            admitted => admitted,
        };
        let result = result.and_then(|_| {
            let photo = decode(&read_input(&f.input, &mut report)?, job.run.limits, &mut report)?;
            let frames = photo.frames();
            frames
                .iter()
                .map(|frame| {
                    engine
                        .analyse(frame, Policy::OptOuts, Some(&job.matching), &mut DetectionWork::default())
                        .map_err(FileError::Model)
                })
                .collect::<Result<Vec<_>, _>>()
        });
        match result {
            Ok(frames) => {
                let animated = frames.len() > 1;
                report.faces = frames
                    .into_iter()
                    .enumerate()
                    .flat_map(|(i, faces)| faces.into_iter().map(move |face| (i, face)))
                    .filter(|(_, (_, d))| d.as_ref().is_some_and(|d| d.decision != Decision::Unknown))
                    .map(|(i, (f, d))| FaceReport {
                        frame: animated.then_some(i as u32),
                        ..FaceReport::new(&f, Action::Kept, None, d)
                    })
                    .collect();
                report.review = report.faces.iter().any(|f| f.decision == Some(Decision::Uncertain));
                report.status = FileStatus::Unchanged;
            }
            Err(e) => record_failure(&mut report, &e),
        }
        report
    })?;
    let mut report = Report::new(files, started.elapsed().as_secs_f64());
    report.detection = Some(job.detection.settings());
    Ok(report)
}
