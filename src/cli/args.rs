//! Argument types shared by several commands, and the value enums with their one mapping each
//! onto the library's types.

use std::path::{Path, PathBuf};

use clap::ValueEnum;
use serde::Deserialize;

use blurgate::audit::{AuditLog, AuditTarget};
use blurgate::badge::Badges;
use blurgate::detect::{Precision, Speed, Tiling};
use blurgate::jobs::plan::Shard;
use blurgate::matching::{Policy, DEFAULT_TARGET_FAR};
use blurgate::media::video::VideoCodec;
use blurgate::media::{DecodeLimits, OutputFormat};
use blurgate::models::Device;
use blurgate::redact::{RedactOptions, Shape, Style};
use blurgate::register::keystore::refuse_inside;
use blurgate::register::{RegisterFile, DEFAULT_PURPOSE};
use blurgate::storage::{Location, StoreOptions};

use super::exit::usage;

#[derive(clap::Args, Debug)]
pub struct RegisterArgs {
    /// The encrypted register file.
    #[arg(long, value_name = "FILE")]
    pub register: PathBuf,

    /// File holding the register key (64 hex digits); never inside the register's folder.
    /// Default: $BLURGATE_REGISTER_KEY, else the per-user key store ($BLURGATE_KEY_DIR, else
    /// $XDG_DATA_HOME/blurgate/keys, else ~/.local/share/blurgate/keys), where a new register's
    /// key goes.
    #[arg(long, value_name = "KEYFILE")]
    pub key_file: Option<PathBuf>,
}

impl RegisterArgs {
    pub fn file(&self) -> RegisterFile {
        RegisterFile::new(&self.register, self.key_file.as_deref())
    }
}

#[derive(clap::Args, Debug)]
pub struct AuditArg {
    /// Append a keyed, hash-chained record of every decision to this JSON Lines file.
    #[arg(long, value_name = "FILE")]
    pub audit: Option<PathBuf>,

    /// File holding the audit key for --audit (64 hex digits); never in the log's folder.
    /// Default: $BLURGATE_AUDIT_KEY, else audit.key in the key store (made on first use).
    #[arg(long, value_name = "KEYFILE")]
    pub audit_key_file: Option<PathBuf>,
}

impl AuditArg {
    pub fn target(&self) -> Option<AuditTarget> {
        self.audit.as_deref().map(|log| AuditTarget::new(log, self.audit_key_file.as_deref()))
    }

    /// The audit log, if one was given: opened before a command changes anything, so a log
    /// that cannot be written (or whose key is wrong) stops it first.
    pub fn open(&self) -> anyhow::Result<Option<AuditLog>> {
        Ok(self.target().as_ref().map(AuditLog::open).transpose()?)
    }
}

/// Refuses a register or audit key inside a folder the run reads (`inputs`) or writes (`out`):
/// that folder may be copied or published, and the key with it.
pub fn refuse_keys_inside(
    register: Option<&RegisterFile>,
    audit: Option<&AuditTarget>,
    inputs: &[Location],
    out: Option<&Location>,
) -> anyhow::Result<()> {
    let mut keys = Vec::new();
    if let Some(register) = register {
        keys.extend(register.key_source()?.path().map(Path::to_path_buf));
    }
    if let Some(audit) = audit {
        keys.extend(audit.key_path()?);
    }
    for key in &keys {
        for folder in inputs.iter().chain(out).filter_map(Location::local_path) {
            refuse_inside(key, folder, "a folder this run reads or writes")?;
        }
    }
    Ok(())
}

/// Where files live and how a run over many of them is shared out and remembered.
#[derive(clap::Args, Debug)]
pub struct StoreArgs {
    /// Endpoint for s3:// (an S3-compatible server: MinIO, Garage, Ceph, s3s-fs) and az://
    /// locations, e.g. http://127.0.0.1:8014 (default: $AWS_ENDPOINT_URL, else the provider's).
    /// Credentials and region come from the usual variables: AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, AWS_REGION; GOOGLE_SERVICE_ACCOUNT / GOOGLE_APPLICATION_CREDENTIALS;
    /// AZURE_STORAGE_ACCOUNT_NAME, AZURE_STORAGE_ACCOUNT_KEY.
    #[arg(long, env = "BLURGATE_ENDPOINT", value_name = "URL")]
    pub endpoint: Option<String>,

    /// Folder of the result cache: files checked before with the same content, models,
    /// settings, policy and register are not checked again (default: $XDG_CACHE_HOME/blurgate,
    /// else ~/.cache/blurgate). It holds no face data.
    #[arg(long, env = "BLURGATE_CACHE_DIR", value_name = "DIR")]
    pub cache: Option<PathBuf>,

    /// Check every file in full, neither reading nor writing the result cache.
    #[arg(long)]
    pub no_cache: bool,

    /// Only part I of N of the inputs (0 <= I < N), chosen by a hash of each file's path below
    /// its input folder: N processes with --shard 0/N ... (N-1)/N cover the inputs exactly once
    /// (e.g. a Kubernetes Indexed Job: BLURGATE_SHARD=$(JOB_COMPLETION_INDEX)/N). Merge their
    /// reports with `blurgate report merge`.
    #[arg(long, env = "BLURGATE_SHARD", value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<Shard>,
}

fn parse_shard(text: &str) -> Result<Shard, String> {
    let (i, n) = text.split_once('/').ok_or("expected I/N, e.g. 0/3")?;
    let (i, n) =
        (i.trim().parse().map_err(|_| "I is not a number")?, n.trim().parse().map_err(|_| "N is not a number")?);
    Shard::new(i, n).map_err(|e| e.to_string())
}

impl StoreArgs {
    pub fn options(&self) -> StoreOptions {
        StoreOptions::default().with_endpoint(self.endpoint.clone())
    }

    pub fn location(&self, text: &str) -> anyhow::Result<Location> {
        Ok(Location::parse(text, &self.options())?)
    }

    pub fn locations(&self, texts: &[String]) -> anyhow::Result<Vec<Location>> {
        texts.iter().map(|t| self.location(t)).collect()
    }

    /// The cache folder in force, `None` with --no-cache (or with nowhere to put it).
    pub fn cache_dir(&self) -> Option<PathBuf> {
        if self.no_cache {
            return None;
        }
        self.cache.clone().or_else(|| {
            let xdg = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()).map(PathBuf::from);
            let home = || std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".cache"));
            Some(xdg.or_else(home)?.join("blurgate"))
        })
    }
}

#[derive(clap::Args, Debug)]
pub struct MatchArgs {
    /// Share of strangers' faces that may be redacted for resembling someone in the register;
    /// the thresholds are chosen for it and for the register's size.
    #[arg(long, default_value_t = DEFAULT_TARGET_FAR, value_name = "RATE")]
    pub target_far: f64,

    /// Similarity at or above which a face is the registered person (default: chosen for
    /// --target-far and the register's size).
    #[arg(long, value_name = "SIM")]
    pub match_threshold: Option<f32>,

    /// Similarity at or above which a face may be the person: redacted and flagged for review
    /// (default: chosen for --target-far and the register's size).
    #[arg(long, value_name = "SIM")]
    pub uncertain_threshold: Option<f32>,

    /// The use the photos are for, checked against each person's refused purposes.
    #[arg(long, default_value = DEFAULT_PURPOSE)]
    pub purpose: String,
}

#[derive(clap::Args, Debug)]
pub struct DetectionArgs {
    /// How hard to look for faces. balanced (default): the whole photo, a mirrored copy, a
    /// half-size copy, native-resolution tiles for large photos, and x2 / x3 zoomed tiles
    /// wherever the finest whole-photo pass saw any candidate, fused per face. thorough: also
    /// mirrored zooms and the photo turned 90/180/270 degrees (faces upside down in the
    /// pixels); about three times as slow. fast: the whole photo and native tiles only; about
    /// ten times faster on crowd photos, but misses many faces under 16 px. The report records
    /// the preset.
    #[arg(long, value_enum, default_value_t = SpeedArg::Balanced, value_name = "PRESET")]
    pub speed: SpeedArg,

    /// Score a face needs, from 0 to 1 (default: 0.16 for balanced and thorough with the int8
    /// model, 0.15 with fp32, where it is the face's score averaged over the passes that could
    /// see it; 0.3 for fast); lower finds more faces and more false alarms.
    #[arg(long, value_name = "SCORE")]
    pub threshold: Option<f32>,

    /// Detection model: int8 (the default) is about 1.5x faster than fp32 and, measured on the
    /// WIDER FACE dev set at balanced, finds as many faces (recall within 0.005 of fp32 on every
    /// level); fast (a single look) loses 0.010 of hard-face recall with it. fp32 is the
    /// original model. The report records the precision.
    #[arg(long, value_enum, default_value_t = PrecisionArg::Int8, value_name = "PRECISION")]
    pub precision: PrecisionArg,

    /// Long side, in pixels, the whole photo is scaled to for the first detection pass.
    #[arg(long, default_value_t = 1280, value_name = "PIXELS")]
    pub max_side: u32,

    /// Pass over photos larger than --max-side in overlapping tiles at full resolution, for
    /// faces too small for the whole-photo pass: auto and always run it on every large photo
    /// (auto no longer skips it when only large faces were found: a speaker in front of an
    /// audience is exactly that photo); never skips it (small faces will be missed).
    #[arg(long, value_enum, default_value_t = TilesArg::Auto, value_name = "WHEN")]
    pub tiles: TilesArg,

    /// Largest tile side, in network input pixels, for the native-resolution and zoomed passes
    /// (multiple of 32).
    #[arg(long, default_value_t = Tiling::default().size, value_name = "PIXELS")]
    pub tile_size: u32,

    /// Refuse photos whose width or height exceeds this many pixels.
    #[arg(long, default_value_t = DecodeLimits::default().max_side, value_name = "PIXELS")]
    pub max_dimension: u32,
}

/// How faces are hidden (redact and stream).
#[derive(clap::Args, Debug)]
pub struct StyleArgs {
    /// How faces are hidden.
    #[arg(long, value_enum, default_value_t = StyleArg::Blur)]
    pub style: StyleArg,

    /// Redact rectangles instead of ellipses.
    #[arg(long)]
    pub boxes: bool,

    /// Mask size relative to the detected face box.
    #[arg(long, default_value_t = 1.3, value_name = "FACTOR")]
    pub mask_scale: f32,
}

impl StyleArgs {
    pub fn options(&self) -> anyhow::Result<RedactOptions> {
        if self.mask_scale < 1.0 {
            return Err(usage("--mask-scale must be at least 1.0 (the mask never shrinks below the face)"));
        }
        Ok(RedactOptions {
            style: self.style.into(),
            shape: if self.boxes { Shape::Box } else { Shape::Ellipse },
            mask_scale: self.mask_scale,
        })
    }
}

#[derive(clap::Args, Debug)]
pub struct VideoArgs {
    /// Video encoder for redacted videos: auto (H.264 with libx264, but VP9 in WebM and Theora
    /// in Ogg, which cannot hold H.264), h264, h265, vp9 or av1. The container is always kept;
    /// a codec it cannot hold fails the file.
    #[arg(long, value_enum, default_value_t = VideoCodecArg::Auto, value_name = "CODEC")]
    pub video_codec: VideoCodecArg,

    /// Constant rate factor of the video encoder (lower is better and larger; default: visually
    /// lossless-ish, H.264 18, H.265 20, VP9 24, AV1 28; Theora has a fixed quality of 8/10).
    #[arg(long, value_name = "CRF", value_parser = clap::value_parser!(u8).range(0..=63))]
    pub crf: Option<u8>,

    /// Leave the audio out of redacted videos (by default it is copied packet for packet).
    #[arg(long)]
    pub strip_audio: bool,

    /// Search every N-th video frame whole, as a photo is searched (1: every frame). The frames
    /// between are searched around the faces already followed (zoomed crops, cheap), and a face
    /// first found late is followed backwards through the frames since the last whole search,
    /// so every frame is covered.
    #[arg(long, default_value_t = 16, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub detect_every: u32,

    /// Long side, in pixels, video frames are scaled down to for detection (default: as decoded;
    /// frames larger than --max-side are then read in native tiles, as photos are: scaling
    /// down loses the small faces).
    #[arg(long, value_name = "PIXELS", value_parser = clap::value_parser!(u32).range(64..))]
    pub video_max_side: Option<u32>,

    /// Frames a face's track is redacted before its first and after its last detection (plus
    /// --detect-every minus one).
    #[arg(long, default_value_t = 5, value_name = "FRAMES")]
    pub track_margin: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VideoCodecArg {
    Auto,
    H264,
    H265,
    Vp9,
    Av1,
}

impl From<VideoCodecArg> for VideoCodec {
    fn from(c: VideoCodecArg) -> VideoCodec {
        match c {
            VideoCodecArg::Auto => VideoCodec::Auto,
            VideoCodecArg::H264 => VideoCodec::H264,
            VideoCodecArg::H265 => VideoCodec::H265,
            VideoCodecArg::Vp9 => VideoCodec::Vp9,
            VideoCodecArg::Av1 => VideoCodec::Av1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceArg {
    Cpu,
    Cuda,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SpeedArg {
    Fast,
    Balanced,
    Thorough,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrecisionArg {
    Fp32,
    Int8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TilesArg {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyArg {
    All,
    OptOuts,
    ConsentedOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StyleArg {
    Blur,
    Pixelate,
    Fill,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BadgesArg {
    Redact,
    Keep,
}

impl From<BadgesArg> for Badges {
    fn from(b: BadgesArg) -> Badges {
        match b {
            BadgesArg::Redact => Badges::Redact,
            BadgesArg::Keep => Badges::Keep,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputFormatArg {
    Keep,
    Jpeg,
    Png,
}

impl From<OutputFormatArg> for OutputFormat {
    fn from(o: OutputFormatArg) -> OutputFormat {
        match o {
            OutputFormatArg::Keep => OutputFormat::Keep,
            OutputFormatArg::Jpeg => OutputFormat::Jpeg,
            OutputFormatArg::Png => OutputFormat::Png,
        }
    }
}

impl From<DeviceArg> for Device {
    fn from(d: DeviceArg) -> Device {
        match d {
            DeviceArg::Cpu => Device::Cpu,
            DeviceArg::Cuda => Device::Cuda,
        }
    }
}

impl From<SpeedArg> for Speed {
    fn from(s: SpeedArg) -> Speed {
        match s {
            SpeedArg::Fast => Speed::Fast,
            SpeedArg::Balanced => Speed::Balanced,
            SpeedArg::Thorough => Speed::Thorough,
        }
    }
}

impl From<PrecisionArg> for Precision {
    fn from(p: PrecisionArg) -> Precision {
        match p {
            PrecisionArg::Fp32 => Precision::Fp32,
            PrecisionArg::Int8 => Precision::Int8,
        }
    }
}

impl From<PolicyArg> for Policy {
    fn from(p: PolicyArg) -> Policy {
        match p {
            PolicyArg::All => Policy::All,
            PolicyArg::OptOuts => Policy::OptOuts,
            PolicyArg::ConsentedOnly => Policy::ConsentedOnly,
        }
    }
}

impl From<StyleArg> for Style {
    fn from(s: StyleArg) -> Style {
        match s {
            StyleArg::Blur => Style::Blur,
            StyleArg::Pixelate => Style::Pixelate,
            StyleArg::Fill => Style::Fill,
        }
    }
}
