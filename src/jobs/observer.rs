//! What a job tells whoever runs it while it works: how many files there are, and each file
//! as it is done. The command line draws its progress bar from this; `check` will write CI
//! annotations from it. Called from the worker threads, so implementations are `Sync`.

use crate::report::FileReport;

pub trait Observer: Sync {
    /// The job has planned its files and starts on them.
    fn started(&self, _files: usize) {}
    /// One file is done, whatever its status (failed ones carry `error` and `error_kind`).
    fn file_done(&self, _report: &FileReport) {}
    /// A video's `pass` (1: detection, 2: redaction and encoding) reached `frames` frames
    /// (every few frames; from one worker per video).
    fn video_frames(&self, _input: &str, _pass: u8, _frames: u64) {}
    /// Every file is done.
    fn finished(&self) {}
}

/// Observes nothing: for library callers that only want the report.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Observer for Silent {}
