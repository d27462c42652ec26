//! blurgate: finds every face in event photos and redacts them before publication.
//!
//! Layers, each using only those below it (`scripts/check_layers.py` enforces it):
//!
//! - jobs: [`jobs`] (redact, find, enrol, calibrate over an [`jobs::Engine`]; review)
//! - records: [`report`] (the JSON report), [`audit`] (the hash-chained audit log), [`sheet`]
//!   (the HTML contact sheet of a report)
//! - stages: [`media`] (decode and encode per kind), [`detect`], [`embed`], [`matching`],
//!   [`register`], [`redact`], [`track`] (faces followed across a video's frames), [`badge`]
//!   (text on the badges and name cards of redacted people)
//! - foundations: [`storage`] (locations, listing, atomic writes), [`digest`], [`models`]
//!   (registry, verification, ONNX Runtime), [`error`]
//!
//! The command line (`src/cli/`, in the binary) sits above them all.

pub mod audit;
pub mod badge;
pub mod detect;
pub mod digest;
pub mod embed;
pub mod error;
pub mod jobs;
pub mod matching;
pub mod media;
pub mod models;
pub mod redact;
pub mod register;
pub mod report;
pub mod sheet;
pub mod storage;
pub mod track;

pub use error::{Error, Result};
