//! `blurgate.toml`: an organisation's policy, thresholds and style, fixed once. Read from
//! `--config FILE`, else `blurgate.toml` in the working folder when there is one. A flag given
//! on the command line (or through its environment variable) wins over the file; the file wins
//! over the built-in defaults. Relative paths in the file are relative to the file's folder.
//!
//! ```toml
//! [detection]
//! speed = "thorough"
//!
//! [render]
//! style = "pixelate"
//! mask_scale = 1.5
//! badges = "redact"
//!
//! [matching]
//! register = "optouts.reg"
//! target_far = 0.002
//! hold_uncertain = true
//!
//! [run]
//! audit = "audit.jsonl"
//! ```

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::parser::ValueSource;
use clap::ArgMatches;
use serde::Deserialize;

use super::args::{
    BadgesArg, DetectionArgs, DeviceArg, MatchArgs, OutputFormatArg, PolicyArg, PrecisionArg, SpeedArg, StyleArg,
    StyleArgs, TilesArg,
};

pub const DEFAULT_FILE: &str = "blurgate.toml";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub detection: DetectionConfig,
    #[serde(default)]
    pub render: RenderConfig,
    #[serde(default)]
    pub matching: MatchingConfig,
    #[serde(default)]
    pub run: RunConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectionConfig {
    pub speed: Option<SpeedArg>,
    pub threshold: Option<f32>,
    pub precision: Option<PrecisionArg>,
    pub max_side: Option<u32>,
    pub tiles: Option<TilesArg>,
    pub tile_size: Option<u32>,
    pub max_dimension: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenderConfig {
    pub style: Option<StyleArg>,
    pub boxes: Option<bool>,
    pub mask_scale: Option<f32>,
    pub badges: Option<BadgesArg>,
    pub keep_metadata: Option<bool>,
    pub jpeg_quality: Option<u8>,
    pub output_format: Option<OutputFormatArg>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchingConfig {
    pub register: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub policy: Option<PolicyArg>,
    pub purpose: Option<String>,
    pub target_far: Option<f64>,
    pub match_threshold: Option<f32>,
    pub uncertain_threshold: Option<f32>,
    pub hold_uncertain: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub jobs: Option<usize>,
    pub follow_symlinks: Option<bool>,
    pub audit: Option<PathBuf>,
    pub device: Option<DeviceArg>,
    pub models: Option<PathBuf>,
}

impl Config {
    /// `explicit`, else `blurgate.toml` in the working folder, else no file (defaults only).
    pub fn load(explicit: Option<&Path>) -> anyhow::Result<Config> {
        let path = match explicit {
            Some(p) => p.to_path_buf(),
            None if Path::new(DEFAULT_FILE).is_file() => PathBuf::from(DEFAULT_FILE),
            None => return Ok(Config::default()),
        };
        let text = std::fs::read_to_string(&path).with_context(|| format!("config file {}", path.display()))?;
        let mut config: Config = toml::from_str(&text).with_context(|| format!("config file {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new(""));
        for p in [
            &mut config.matching.register,
            &mut config.matching.key_file,
            &mut config.run.audit,
            &mut config.run.models,
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        tracing::debug!(file = %path.display(), "settings from the config file");
        Ok(config)
    }
}

/// Whether the argument `id` was given on the command line or through its environment
/// variable (a default does not count).
pub fn given(m: &ArgMatches, id: &str) -> bool {
    matches!(m.value_source(id), Some(ValueSource::CommandLine | ValueSource::EnvVariable))
}

/// `value` from the file, unless the flag `id` was given.
pub fn take<T>(m: &ArgMatches, id: &str, flag: &mut T, value: &Option<T>)
where
    T: Clone,
{
    if let Some(v) = value {
        if !given(m, id) {
            *flag = v.clone();
        }
    }
}

/// An optional flag (`Option<T>`) from the file, unless given.
pub fn take_opt<T: Clone>(m: &ArgMatches, id: &str, flag: &mut Option<T>, value: &Option<T>) {
    if value.is_some() && !given(m, id) {
        flag.clone_from(value);
    }
}

impl DetectionArgs {
    pub fn merge(&mut self, m: &ArgMatches, c: &DetectionConfig) {
        take(m, "speed", &mut self.speed, &c.speed);
        take_opt(m, "threshold", &mut self.threshold, &c.threshold);
        take(m, "precision", &mut self.precision, &c.precision);
        take(m, "max_side", &mut self.max_side, &c.max_side);
        take(m, "tiles", &mut self.tiles, &c.tiles);
        take(m, "tile_size", &mut self.tile_size, &c.tile_size);
        take(m, "max_dimension", &mut self.max_dimension, &c.max_dimension);
    }
}

impl StyleArgs {
    pub fn merge(&mut self, m: &ArgMatches, c: &RenderConfig) {
        take(m, "style", &mut self.style, &c.style);
        take(m, "boxes", &mut self.boxes, &c.boxes);
        take(m, "mask_scale", &mut self.mask_scale, &c.mask_scale);
    }
}

impl MatchArgs {
    pub fn merge(&mut self, m: &ArgMatches, c: &MatchingConfig) {
        take(m, "target_far", &mut self.target_far, &c.target_far);
        take_opt(m, "match_threshold", &mut self.match_threshold, &c.match_threshold);
        take_opt(m, "uncertain_threshold", &mut self.uncertain_threshold, &c.uncertain_threshold);
        take(m, "purpose", &mut self.purpose, &c.purpose);
    }
}
