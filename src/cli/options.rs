//! The one place where parsed arguments (already merged with the settings file) become the
//! library's option types, checked as they go.

use blurgate::detect::{DetectorOptions, Tiling};
use blurgate::jobs::{Decisions, Matching, RunOptions, VideoSettings};
use blurgate::media::video::VideoOptions;
use blurgate::media::{DecodeLimits, MetadataPolicy};
use blurgate::models::Device;
use blurgate::register::{today, Register, RegisterFile};

use super::args::{DetectionArgs, MatchArgs, PolicyArg, StoreArgs, TilesArg, VideoArgs};
use super::exit::usage;

pub fn detection(a: &DetectionArgs, device: Device) -> anyhow::Result<DetectorOptions> {
    if a.threshold.is_some_and(|t| !(0.0..=1.0).contains(&t)) {
        return Err(usage("--threshold must be between 0 and 1"));
    }
    Ok(DetectorOptions {
        speed: a.speed.into(),
        threshold: a.threshold,
        precision: a.precision.into(),
        max_side: a.max_side,
        tiling: match a.tiles {
            TilesArg::Never => None,
            TilesArg::Auto | TilesArg::Always => Some(Tiling { size: a.tile_size, ..Tiling::default() }),
        },
        device,
        ..DetectorOptions::default()
    })
}

pub fn limits(a: &DetectionArgs) -> DecodeLimits {
    DecodeLimits::default().with_max_side(a.max_dimension)
}

/// Run control shared by the jobs that go over many files.
pub fn run(detection: &DetectionArgs, store: &StoreArgs, jobs: Option<usize>) -> RunOptions {
    RunOptions::default()
        .with_limits(limits(detection))
        .with_jobs(jobs)
        .with_cache(store.cache_dir())
        .with_shard(store.shard)
}

/// Who is redacted: every face without a register; with one, `policy` (opt-outs by default).
pub fn decisions(
    register: Option<&RegisterFile>,
    a: &MatchArgs,
    policy: Option<PolicyArg>,
) -> anyhow::Result<Decisions> {
    let mut decisions = Decisions::default();
    if let Some(file) = register {
        decisions = decisions.with_matching(matching(a, file.load()?.0)?);
    }
    Ok(match policy {
        Some(p) => decisions.with_policy(p.into()),
        None => decisions,
    })
}

/// Recognition against `register` with the thresholds in force today.
pub fn matching(a: &MatchArgs, register: Register) -> anyhow::Result<Matching> {
    if !(a.target_far > 0.0 && a.target_far < 1.0) {
        return Err(usage("--target-far must be between 0 and 1"));
    }
    let today = today();
    let thresholds = register.thresholds(today, a.target_far).overridden(a.match_threshold, a.uncertain_threshold);
    if !(thresholds.uncertain <= thresholds.matched && thresholds.matched <= 1.0) {
        return Err(usage(format!(
            "thresholds must satisfy uncertain <= matched <= 1 (in force: {:.3} / {:.3})",
            thresholds.uncertain, thresholds.matched
        )));
    }
    Ok(Matching { register, purpose: a.purpose.clone(), thresholds, today })
}

/// How videos are read and written; `metadata` is the photos' policy, applied to their tags.
pub fn video(a: &VideoArgs, metadata: MetadataPolicy) -> VideoSettings {
    let encode = VideoOptions::default()
        .with_codec(a.video_codec.into())
        .with_crf(a.crf)
        .with_strip_audio(a.strip_audio)
        .with_metadata(metadata);
    VideoSettings::default()
        .with_detect_every(a.detect_every)
        .with_max_side(a.video_max_side)
        .with_track_margin(a.track_margin)
        .with_encode(encode)
}
