//! Per-file outcomes: why a file was not published, typed, so the report can say what kind of
//! failure it was (`error_kind`) beside the message.

use std::path::PathBuf;

use crate::error::Error;
use crate::media::{DecodeError, EncodeError};

/// Why one file was not published. The report carries the message (`error`) and
/// [`FileError::kind`] (`error_kind`).
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read: {0}")]
    Read(std::io::Error),
    #[error("unsupported format: .{0} files cannot be checked yet")]
    Unsupported(String),
    #[error("cannot decode: {0}")]
    Decode(#[from] DecodeError),
    #[error("face detection or recognition failed: {0}")]
    Model(Error),
    #[error("text detection on redacted people failed (their badges would show): {0}")]
    Text(Error),
    #[error("cannot encode: {0}")]
    Encode(#[from] EncodeError),
    #[error("cannot write {}: {err}", path.display())]
    Write { path: PathBuf, err: std::io::Error },
    #[error("cannot record progress: {0}")]
    State(Error),
    #[error("cannot write the audit record: {0}")]
    Audit(Error),
    #[error("internal error while processing this file (please report it): {0}")]
    Internal(String),
}

impl FileError {
    /// A stable name for the kind of failure, for pipelines to branch on: `read`,
    /// `unsupported`, `decode`, `limit` (larger than the decode limits), `model`, `encode`,
    /// `write`, `state`, `audit` or `internal`.
    pub fn kind(&self) -> &'static str {
        match self {
            FileError::Read(_) => "read",
            FileError::Unsupported(_) => "unsupported",
            FileError::Decode(e) if e.is_limit() => "limit",
            FileError::Decode(_) => "decode",
            FileError::Model(_) | FileError::Text(_) => "model",
            FileError::Encode(_) => "encode",
            FileError::Write { .. } => "write",
            FileError::State(_) => "state",
            FileError::Audit(_) => "audit",
            FileError::Internal(_) => "internal",
        }
    }
}

/// Marks `report` failed with `error`: nothing of the file is published.
pub(crate) fn record_failure(report: &mut crate::report::FileReport, error: &FileError) {
    report.status = crate::report::FileStatus::Failed;
    report.output = None;
    report.output_sha256 = None;
    report.error = Some(error.to_string());
    report.error_kind = Some(error.kind().to_string());
}
