//! Library errors. Configuration problems (exit code 2) are kept apart from per-file
//! failures, which the pipeline records in the report and turns into exit code 1.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} not found at {}: run scripts/setup.sh, or point --models / BLURGATE_MODELS at a folder that has it", path.display())]
    ModelMissing { what: &'static str, path: PathBuf },

    #[error("{}: sha256 is {found}, models/manifest.json expects {expected}: the file is damaged or was replaced; run scripts/setup.sh again", path.display())]
    ModelChecksum { path: PathBuf, expected: String, found: String },

    #[error("{}: unreadable model manifest: {reason}", path.display())]
    Manifest { path: PathBuf, reason: String },

    #[error("cannot load ONNX Runtime from {}: {reason}; run scripts/setup.sh or set ORT_DYLIB_PATH", path.display())]
    Runtime { path: PathBuf, reason: String },

    #[error("ONNX Runtime: {0}")]
    Ort(String),

    #[error("{0}")]
    Usage(String),

    #[error("{0}")]
    Register(String),

    // Not a `#[source]`: the message already includes it, and chains would print it twice.
    #[error("{}: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },
}

impl Error {
    /// Exit code for the command line: every library error is a problem with the set-up or the
    /// request (2); per-file failures never surface as `Error`.
    pub fn exit_code(&self) -> i32 {
        2
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), err: source }
    }
}

impl<R> From<ort::Error<R>> for Error {
    fn from(e: ort::Error<R>) -> Self {
        Error::Ort(e.to_string())
    }
}
