//! blurgate: finds every face in event photos and redacts them before publication.
//!
//! The modules follow the data: [`media_in`] (walk, decode, orientation) → [`detect`]
//! (CenterFace) → [`redact`] (masks and fills) → [`media_out`] (encode, metadata policy,
//! atomic write), orchestrated by [`pipeline`] and summarised by [`report`]. [`models`] finds
//! and verifies the model files and loads ONNX Runtime.

pub mod calibrate;
pub mod detect;
pub mod embed;
pub mod error;
pub mod jpeg;
pub mod media_in;
pub mod media_out;
pub mod models;
pub mod pipeline;
pub mod policy;
pub mod quality;
pub mod redact;
pub mod register;
pub mod report;

pub use error::{Error, Result};
