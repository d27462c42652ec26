//! The library used directly, as another program would: a redact job built from options in
//! parts, with an observer that hears about every file.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use blurgate::detect::{DetectorOptions, Speed};
use blurgate::jobs::{run_redact, Observer, RedactJob, RenderOptions, RunOptions};
use blurgate::models::ModelDir;
use blurgate::redact::{RedactOptions, Style};
use blurgate::report::{FileReport, FileStatus};

use crate::common::*;

#[derive(Default)]
struct Counting {
    planned: AtomicUsize,
    done: Mutex<Vec<String>>,
    finished: AtomicUsize,
}

impl Observer for Counting {
    fn started(&self, files: usize) {
        self.planned.store(files, Ordering::SeqCst);
    }
    fn file_done(&self, report: &FileReport) {
        self.done.lock().unwrap().push(report.input.clone());
    }
    fn finished(&self) {
        self.finished.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_job_from_options_in_parts_reports_every_file_to_its_observer() {
    let tmp = tempfile::tempdir().unwrap();
    let inputs = tmp.path().join("in");
    std::fs::create_dir(&inputs).unwrap();
    for name in ["obama.jpg", "biden.jpg"] {
        std::fs::copy(fixture(&format!("photos/{name}")), inputs.join(name)).unwrap();
    }
    std::fs::write(inputs.join("broken.png"), b"\x89PNG\r\n\x1a\n cut").unwrap();
    let out = tmp.path().join("out");
    let job = RedactJob::new(vec![inputs.into()], out.clone().into())
        .with_detection(DetectorOptions::default().with_speed(Speed::Fast))
        .with_render(RenderOptions::default().with_redact(RedactOptions { style: Style::Fill, ..Default::default() }))
        .with_run(RunOptions::default().with_jobs(Some(1)));
    let observer = Counting::default();
    let report = run_redact(&job, &ModelDir::open(&models_dir()).unwrap(), &observer).unwrap();

    assert_eq!(observer.planned.load(Ordering::SeqCst), 3);
    assert_eq!(observer.finished.load(Ordering::SeqCst), 1);
    let mut heard = observer.done.lock().unwrap().clone();
    let mut reported: Vec<String> = report.files.iter().map(|f| f.input.clone()).collect();
    heard.sort();
    reported.sort();
    assert_eq!(heard, reported, "one event per file, the same files as the report");
    assert_eq!(report.summary.redacted, 2);
    let broken = report.files.iter().find(|f| f.input.ends_with("broken.png")).unwrap();
    assert_eq!((broken.status, broken.error_kind.as_deref()), (FileStatus::Failed, Some("decode")));
    assert!(out.join("obama.jpg").is_file() && !out.join("broken.png").exists());
}
