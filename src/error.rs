//! The library's error: the run cannot go on (set-up, a request that cannot be met, a damaged
//! register or log), and nothing is written. A single file's failure is not an `Error` but a
//! `jobs::FileError`, recorded in the report. Messages speak of the problem; the command line
//! adds which flag or set-up step fixes it and picks the exit code. This module depends on no
//! other part of blurgate.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} not found at {}", path.display())]
    ModelMissing { what: &'static str, path: PathBuf },

    #[error("{}: sha256 is {found}, the model manifest expects {expected}: the file is damaged or was replaced", path.display())]
    ModelChecksum { path: PathBuf, expected: String, found: String },

    #[error("{}: unreadable model manifest: {problem}", path.display())]
    Manifest { path: PathBuf, problem: ManifestProblem },

    #[error("cannot load ONNX Runtime from {}: {reason}", path.display())]
    Runtime { path: PathBuf, reason: String },

    #[error("ONNX Runtime: {0}")]
    Ort(String),

    #[error("{model} returned {what}")]
    ModelOutput { model: &'static str, what: &'static str },

    #[error("face recognition was not loaded")]
    RecognitionNotLoaded,

    #[error("{name} {problem}")]
    InvalidSetting { name: &'static str, problem: &'static str },

    #[error("policy {policy} needs a register")]
    PolicyNeedsRegister { policy: &'static str },

    #[error("no photos found in the inputs")]
    NoMedia,

    #[error("{location}: not a location blurgate reads (a local path, or s3://, gs:// or az:// followed by a bucket)")]
    UnknownScheme { location: String },

    #[error("{input}: not a file name")]
    NotAFile { input: String },

    #[error("the output folder {} is inside the input folder {}", out.display(), input.display())]
    OutputInsideInput { out: PathBuf, input: PathBuf },

    #[error("the input folder {} is inside the output folder {}", input.display(), out.display())]
    InputInsideOutput { input: PathBuf, out: PathBuf },

    #[error("{} and {} would both be written to {}", first.display(), second.display(), output.display())]
    SameOutput { first: PathBuf, second: PathBuf, output: PathBuf },

    #[error("{}: its output path would leave {}", input.display(), out.display())]
    OutputEscapes { input: PathBuf, out: PathBuf },

    #[error("{} would overwrite itself", input.display())]
    WouldOverwrite { input: PathBuf },

    #[error("{}: an output folder must be below the file system root", out.display())]
    OutputAtRoot { out: PathBuf },

    #[error("another blurgate run is writing to {}", out.display())]
    Busy { out: PathBuf },

    #[error("cannot start worker threads: {0}")]
    ThreadPool(#[from] rayon::ThreadPoolBuildError),

    #[error("{}: the last line is damaged ({reason})", path.display())]
    AuditDamaged { path: PathBuf, reason: String },

    #[error("{}: {problem}", path.display())]
    Register { path: PathBuf, problem: RegisterProblem },

    #[error("register key from {from}: {problem}")]
    RegisterKey { from: String, problem: KeyProblem },

    #[error("no person with id `{id}` in the register")]
    UnknownPerson { id: String },

    #[error("{}: {refusal}", photo.display())]
    ReferencePhoto { photo: PathBuf, refusal: Refusal },

    #[error("{}", .0.join("; "))]
    PhotosDisagree(Vec<String>),

    #[error("{}: {problem}", path.display())]
    PairList { path: PathBuf, problem: String },

    #[error("calibration needs at least one same-person and one different-person pair")]
    NoPairs,

    // Not a `#[source]`: the message already includes it, and chains would print it twice.
    #[error("{}: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },

    #[error("the key {} lies inside {what} {}: whoever copies that folder takes the key with it", key.display(), folder.display())]
    KeyInside { key: PathBuf, folder: PathBuf, what: &'static str },

    #[error("{}: its key is not at {}: a register cannot be read without its key", register.display(), looked.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" nor at "))]
    KeyLost { register: PathBuf, looked: Vec<PathBuf> },

    #[error("{}: a key is already there (not replaced)", path.display())]
    KeyExists { path: PathBuf },

    #[error("no folder for the key store: none of BLURGATE_KEY_DIR, XDG_DATA_HOME and HOME is set")]
    NoKeyStore,

    #[error("audit key from {from}: {problem}")]
    AuditKey { from: String, problem: KeyProblem },

    #[error("manifest key from {from}: {problem}")]
    ManifestKey { from: String, problem: KeyProblem },

    #[error("{}: its last record was not written with this audit key (another key, or the record was altered)", path.display())]
    AuditKeyMismatch { path: PathBuf },
}

/// Why the model manifest cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestProblem {
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("version {0} is not supported (expected 1)")]
    Version(u32),
    #[error("no entry for model `{0}`")]
    NoEntry(&'static str),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), err: source }
    }
}

impl<R> From<ort::Error<R>> for Error {
    fn from(e: ort::Error<R>) -> Self {
        Error::Ort(e.to_string())
    }
}

/// Why a register file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RegisterProblem {
    #[error("no such register")]
    Missing,
    #[error("not a blurgate register file")]
    NotARegister,
    #[error("register format {version} / cipher {cipher} is not supported by this blurgate")]
    UnsupportedFormat { version: u16, cipher: u16 },
    #[error("wrong key, or the file was altered or damaged")]
    WrongKeyOrAltered,
    #[error("register content is invalid: {0}")]
    InvalidContent(serde_json::Error),
    #[error("no person with id `{0}` (nothing changed)")]
    UnknownPerson(String),
    #[error("`{0}` is still present after writing")]
    StillPresent(String),
}

/// Why a register key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyProblem {
    #[error("{0}")]
    Unreadable(std::io::Error),
    #[error("a key is 64 hexadecimal digits")]
    NotAKey,
}

/// Why a reference photo cannot enrol a person.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("cannot decode: {0}")]
    Unreadable(String),
    #[error("no face found: use a clear, front-facing photo of the person")]
    NoFace,
    #[error("{found} face(s) found but none is usable: {reason}; use a clear, sharp, front-facing photo")]
    NoneUsable { found: usize, reason: String },
    #[error("{0} faces found: enrol from a photo that shows only this person")]
    SeveralFaces(usize),
}
