//! The redaction run: plan the files, then decode → detect → redact → encode → write each one
//! on a rayon pool, one detector session per worker, with a progress bar on terminals.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;

use crate::detect::{Detector, DetectorOptions};
use crate::error::{Error, Result};
use crate::media_in::{self, DecodeLimits, Planned};
use crate::media_out::{self, EncodeOptions};
use crate::models::ModelDir;
use crate::redact::{self, Mask, RedactOptions};
use crate::report::{Action, FaceReport, FileReport, FileStatus, Report};

#[derive(Debug, Clone)]
pub struct RedactJob {
    pub inputs: Vec<PathBuf>,
    pub out: PathBuf,
    pub detector: DetectorOptions,
    pub redact: RedactOptions,
    pub encode: EncodeOptions,
    pub limits: DecodeLimits,
    /// Files processed at once; `None`: one per core.
    pub jobs: Option<usize>,
    pub progress: bool,
}

/// Workers and ONNX Runtime threads per worker so that together they fit the cores.
fn thread_budget(jobs: Option<usize>, files: usize) -> (usize, usize) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = jobs.unwrap_or(cores).clamp(1, files.max(1));
    (workers, (cores / workers).max(1))
}

pub fn run_redact(job: &RedactJob, models: &ModelDir) -> Result<Report> {
    let started = Instant::now();
    let plan = media_in::plan(&job.inputs, &job.out)?;
    if plan.files.is_empty() {
        return Err(Error::Usage("no photos found in the inputs".into()));
    }
    let model = models.model("centerface")?;
    let env = models.init_runtime()?;
    let (workers, threads) = thread_budget(job.jobs, plan.files.len());
    let detector = Detector::try_new(
        env,
        &model.path,
        DetectorOptions { sessions: workers, threads_per_session: threads, ..job.detector.clone() },
    )?;
    std::fs::create_dir_all(&job.out).map_err(|e| Error::io(&job.out, e))?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .build()
        .map_err(|e| Error::Usage(format!("cannot start worker threads: {e}")))?;

    let bar = progress_bar(plan.files.len() as u64, job.progress);
    let files: Vec<FileReport> = pool.install(|| {
        plan.files
            .par_iter()
            .map(|p| {
                let report = process(p, &detector, job);
                if report.status == FileStatus::Failed {
                    bar.suspend(|| {
                        eprintln!("error: {}: {}", report.input, report.error.as_deref().unwrap_or("failed"))
                    });
                }
                bar.inc(1);
                report
            })
            .collect()
    });
    bar.finish_and_clear();
    Ok(Report::new(files, plan.ignored, started.elapsed().as_secs_f64()))
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

/// One file, start to finish. Never leaves anything under the output name unless the whole
/// file was checked and written.
fn process(p: &Planned, detector: &Detector, job: &RedactJob) -> FileReport {
    let mut report = FileReport {
        input: p.input.display().to_string(),
        output: None,
        status: FileStatus::Failed,
        error: None,
        width: None,
        height: None,
        faces: Vec::new(),
    };
    match redact_file(p, detector, job, &mut report) {
        Ok(()) => report.output = Some(p.output.display().to_string()),
        Err(reason) => {
            // A copy left by an earlier run must not outlive a failure to check this version.
            let _ = std::fs::remove_file(&p.output);
            tracing::debug!(file = %p.input.display(), %reason, "failed");
            report.status = FileStatus::Failed;
            report.error = Some(reason);
        }
    }
    report
}

fn redact_file(p: &Planned, detector: &Detector, job: &RedactJob, report: &mut FileReport) -> Result<(), String> {
    if let Some(reason) = &p.unsupported {
        return Err(reason.clone());
    }
    let bytes = std::fs::read(&p.input).map_err(|e| format!("cannot read: {e}"))?;
    let mut photo = media_in::decode(&bytes, job.limits).map_err(|e| format!("cannot decode: {e}"))?;
    drop(bytes);
    let (w, h) = photo.rgb.dimensions();
    (report.width, report.height) = (Some(w), Some(h));
    let faces = detector.detect(&photo.rgb).map_err(|e| format!("face detection failed: {e}"))?;
    let boxes: Vec<_> = faces.iter().map(|d| d.bbox).collect();
    redact::redact(&mut photo.rgb, &boxes, &job.redact);
    report.faces = faces
        .iter()
        .map(|d| {
            let m = Mask::for_face(&d.bbox, &job.redact, w, h).area;
            FaceReport::new(d, Action::Redacted, Some([m.x1, m.y1, m.x2, m.y2]))
        })
        .collect();
    report.status = if faces.is_empty() { FileStatus::Unchanged } else { FileStatus::Redacted };
    let encoded = media_out::encode(photo, &job.encode).map_err(|e| format!("cannot encode: {e}"))?;
    media_out::write_atomic(&p.output, &encoded).map_err(|e| format!("cannot write {}: {e}", p.output.display()))
}
