//! The jobs: what each command does, over an [`Engine`] of its own. [`redact`] writes redacted
//! copies, [`find`] answers a right-of-access request, [`enrol`] turns reference photos into
//! embeddings, [`calibrate`] measures recognition on an organisation's photos. They share the
//! file plan ([`plan`]), the worker pool, the run state ([`state`]: resume and lock), per-file
//! outcomes ([`outcome`]) and an [`Observer`] that hears about progress. [`review`] lets a person
//! change a redact run's decisions afterwards, on a local web page. [`video`] is redact's
//! per-video work (two passes, faces tracked across frames); [`stream`] redacts a live stream
//! in one pass with a bounded look-ahead.

pub mod cache;
pub mod calibrate;
pub mod check;
pub mod engine;
pub mod enrol;
pub mod find;
pub mod manifest;
pub mod observer;
pub mod outcome;
pub mod plan;
mod pool;
pub mod publish;
pub mod redact;
pub mod review;
pub mod shard;
pub mod state;
#[cfg(feature = "video")]
pub mod stream;
pub mod video;

pub use engine::{Engine, Matching, Recognition};
pub use find::{run_find, FindJob};
pub use observer::{Observer, Silent};
pub use outcome::FileError;
pub use pool::keep_freed_memory;
pub use redact::{run_redact, RedactJob};
pub use review::{Review, ReviewError, ReviewServer};
#[cfg(feature = "video")]
pub use stream::{run_stream, StreamJob, StreamObserver, StreamSettings, StreamStats};
pub use video::VideoSettings;

use std::path::PathBuf;

use crate::audit::AuditTarget;
use crate::badge::Badges;
use crate::matching::Policy;
use crate::media::{DecodeLimits, EncodeOptions};
use crate::redact::RedactOptions;

/// How redacted copies look and are encoded.
#[derive(Debug, Clone, Copy, Default)]
pub struct RenderOptions {
    pub redact: RedactOptions,
    pub encode: EncodeOptions,
    /// Text on redacted people is redacted with their faces (photos).
    pub badges: Badges,
}

impl RenderOptions {
    pub fn with_badges(self, badges: Badges) -> Self {
        RenderOptions { badges, ..self }
    }
    pub fn with_redact(self, redact: RedactOptions) -> Self {
        RenderOptions { redact, ..self }
    }
    pub fn with_encode(self, encode: EncodeOptions) -> Self {
        RenderOptions { encode, ..self }
    }
}

/// How a job runs, apart from what it decides: parallelism, input limits, resuming, records.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Files processed at once; `None`: one per core.
    pub jobs: Option<usize>,
    /// Limits checked before any pixel buffer is allocated.
    pub limits: DecodeLimits,
    /// Follow symbolic links that lead out of an input folder.
    pub follow_symlinks: bool,
    /// Check every file again instead of resuming an interrupted run.
    pub fresh: bool,
    /// Append a record of every decision to this audit log.
    pub audit: Option<AuditTarget>,
    /// Decide everything, write nothing (no outputs, run state or audit records).
    pub dry_run: bool,
    /// The key that seals the output folder's manifest (`None`: `BLURGATE_MANIFEST_KEY`, else
    /// the key store).
    pub manifest_key_file: Option<PathBuf>,
    /// Folder of the result cache (`check` skips files it has checked before under the same
    /// settings; object contents are known by ETag); `None`: no cache.
    pub cache: Option<PathBuf>,
    /// Only this shard's part of the inputs.
    pub shard: Option<plan::Shard>,
}

impl RunOptions {
    pub fn with_jobs(self, jobs: Option<usize>) -> Self {
        RunOptions { jobs, ..self }
    }
    pub fn with_limits(self, limits: DecodeLimits) -> Self {
        RunOptions { limits, ..self }
    }
    pub fn with_follow_symlinks(self, follow_symlinks: bool) -> Self {
        RunOptions { follow_symlinks, ..self }
    }
    pub fn with_fresh(self, fresh: bool) -> Self {
        RunOptions { fresh, ..self }
    }
    pub fn with_audit(self, audit: Option<AuditTarget>) -> Self {
        RunOptions { audit, ..self }
    }
    pub fn with_dry_run(self, dry_run: bool) -> Self {
        RunOptions { dry_run, ..self }
    }
    pub fn with_manifest_key_file(self, manifest_key_file: Option<PathBuf>) -> Self {
        RunOptions { manifest_key_file, ..self }
    }
    pub fn with_cache(self, cache: Option<PathBuf>) -> Self {
        RunOptions { cache, ..self }
    }
    pub fn with_shard(self, shard: Option<plan::Shard>) -> Self {
        RunOptions { shard, ..self }
    }
}

/// Who is redacted, and what happens to a doubt.
#[derive(Debug, Clone)]
pub struct Decisions {
    pub policy: Policy,
    /// Recognition against a register; `None`: no register (then only [`Policy::All`]).
    pub matching: Option<Matching>,
    /// Files with an uncertain match are not written but listed for review.
    pub hold_uncertain: bool,
}

impl Default for Decisions {
    fn default() -> Self {
        Decisions { policy: Policy::All, matching: None, hold_uncertain: false }
    }
}

impl Decisions {
    /// With a register, opt-outs by default.
    pub fn with_matching(self, matching: Matching) -> Self {
        Decisions { policy: Policy::OptOuts, matching: Some(matching), ..self }
    }
    pub fn with_policy(self, policy: Policy) -> Self {
        Decisions { policy, ..self }
    }
    pub fn with_hold_uncertain(self, hold_uncertain: bool) -> Self {
        Decisions { hold_uncertain, ..self }
    }
}
