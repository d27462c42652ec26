//! blurgate's integration tests: one test binary (as ripgrep's `tests/tests.rs`), one module per
//! area of behaviour, all on real photos and the real models, sharing the helpers in `common`.

mod badges;
mod check;
mod common;
mod container;
mod detection;
mod formats;
mod fuzz_regressions;
mod keys;
mod library;
mod metadata;
mod objects;
mod redact;
mod register;
mod review;
mod robustness;
mod settings;
#[cfg(feature = "video")]
mod stream;
#[cfg(feature = "video")]
mod video;
