//! The progress bar and per-file error lines on stderr, drawn from a job's [`Observer`] events.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use blurgate::jobs::Observer;
use blurgate::report::{FileReport, FileStatus};

pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar on stderr when it is a terminal and `enabled` (not `--quiet`); failures are
    /// printed either way.
    pub fn new(enabled: bool) -> Progress {
        if !enabled || !std::io::stderr().is_terminal() {
            return Progress { bar: ProgressBar::hidden() };
        }
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} photos  {per_sec}  ETA {eta}")
                .expect("static template")
                .progress_chars("##-"),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress { bar }
    }
}

impl Observer for Progress {
    fn started(&self, files: usize) {
        self.bar.set_length(files as u64);
    }

    fn file_done(&self, report: &FileReport) {
        if let Some(err) = report.error.as_deref().filter(|_| report.status == FileStatus::Failed) {
            let hint = match report.error_kind.as_deref() {
                Some("limit") => "; --max-dimension raises the size limit",
                _ => "",
            };
            self.bar.suspend(|| eprintln!("error: {}: {err}{hint}", report.input));
        }
        self.bar.inc(1);
    }

    fn finished(&self) {
        self.bar.finish_and_clear();
    }
}
