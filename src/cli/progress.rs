//! The progress bar and per-file error lines on stderr, drawn from a job's [`Observer`] events.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use blurgate::jobs::Observer;
use blurgate::report::{FileReport, FileStatus};

pub struct Progress {
    bar: ProgressBar,
    /// The video pass last heard of (input, pass) and when it started, for its frames/s.
    video: Mutex<Option<(String, u8, Instant)>>,
}

impl Progress {
    /// A bar on stderr when it is a terminal and `enabled` (not `--quiet`); failures are
    /// printed either way.
    pub fn new(enabled: bool) -> Progress {
        if !enabled || !std::io::stderr().is_terminal() {
            return Progress { bar: ProgressBar::hidden(), video: Mutex::new(None) };
        }
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} files  {per_sec}  ETA {eta}  {msg}")
                .expect("static template")
                .progress_chars("##-"),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress { bar, video: Mutex::new(None) }
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

    fn video_frames(&self, input: &str, pass: u8, frames: u64) {
        let mut video = self.video.lock().unwrap_or_else(|p| p.into_inner());
        if video.as_ref().is_none_or(|(i, p, _)| i != input || *p != pass) {
            *video = Some((input.to_string(), pass, Instant::now()));
        }
        let elapsed = video.as_ref().map_or(0.0, |(_, _, t)| t.elapsed().as_secs_f64());
        let name = std::path::Path::new(input).file_name().map_or(input.into(), |n| n.to_string_lossy());
        let what = if pass == 1 { "detecting" } else { "encoding" };
        let rate = if elapsed > 0.0 { frames as f64 / elapsed } else { 0.0 };
        self.bar.set_message(format!("{name}: {what}, frame {frames} ({rate:.1} frames/s)"));
    }

    fn finished(&self) {
        self.bar.finish_and_clear();
    }
}
