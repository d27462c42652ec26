//! The machine-readable report (`--report FILE`). Field names are a contract read by CI
//! pipelines: add fields, never rename or remove them.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::badge::{Badges, TextRegion};
use crate::detect::{Detection, DetectionSettings, DetectionWork};
use crate::error::{Error, Result};
pub use crate::matching::Action;
use crate::matching::{Decision, FaceDecision, Thresholds};
use crate::media::{EncodeOptions, MetadataPolicy, OutputFormat};
use crate::redact::{RedactOptions, Shape, Style};

pub const REPORT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub version: u32,
    /// How faces were looked for (absent in reports of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection: Option<DetectionSettings>,
    /// How the copies were rendered, so that `review` renders one again the same way (absent
    /// in reports of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub render: Option<RenderSettings>,
    pub files: Vec<FileReport>,
    pub summary: Summary,
    /// With a register: the band edges in force and why (source, people, target rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thresholds: Option<Thresholds>,
    /// `redact --dry-run`: nothing was written; `output` says where each file would go.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileStatus {
    /// At least one face was redacted.
    Redacted,
    /// Checked, no face to redact: the copy differs only by re-encoding and metadata.
    Unchanged,
    /// Not written: see `error`.
    Failed,
    /// Not written: an uncertain match needs a person's review (`--hold-uncertain`).
    Held,
    /// Not a photo or video (or a link out of its folder): left alone; `reason` says why.
    Skipped,
    /// `check`: shows faces the policy forbids (listed in `faces`).
    Violation,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileReport {
    pub input: String,
    /// Where the redacted copy was written; `null` when the file failed.
    pub output: Option<String>,
    pub status: FileStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What kind of failure `error` is: `read`, `unsupported`, `decode`, `limit`, `model`,
    /// `encode`, `write`, `state`, `audit` or `internal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<String>,
    /// Why a `skipped` file was left alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `check`: the folder's manifest says `redact` wrote exactly this file under this policy.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub vouched: bool,
    /// What of the input the output does not carry (a second picture, other images).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// A `held` file: where its copy goes once a person has decided its uncertain faces
    /// (`blurgate review`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_output: Option<String>,
    /// Upright output size in pixels; `null` when the file could not be decoded.
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub faces: Vec<FaceReport>,
    /// Some face matched the register only uncertainly: a person should look at this file.
    #[serde(default)]
    pub review: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_sha256: Option<String>,
    /// Time spent on this file.
    #[serde(default)]
    pub seconds: f64,
    /// Finished by an earlier, interrupted run with the same input and settings: not redone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resumed: bool,
    /// `check`: the result cache knew this content under the same settings: not read again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cached: bool,
    /// `redact --replace-published`: the published file was replaced by its redacted copy.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replaced: bool,
    /// A video: frames, streams and the tracks of faces followed through it. Its `faces` hold
    /// one entry per track (the track's strongest detection, `frame` set), not every frame's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<VideoReport>,
    /// What face detection ran on this file (all frames of an animation or video together):
    /// passes, network runs, network input pixels and inference milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection: Option<DetectionWork>,
    /// Text found on redacted people (badges, lanyard cards, name cards), each with the face
    /// it belongs to (`--badges redact`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub texts: Vec<TextReport>,
    /// What the text detector ran on this file, as `detection` (absent when no face was
    /// redacted: it did not run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_detection: Option<DetectionWork>,
}

/// A region of text on a redacted person, in the upright output image's pixels.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TextReport {
    /// The index in `faces` of the face whose badge area it is in.
    pub face: usize,
    /// The text's box `[x1, y1, x2, y2]`.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    /// Mean text probability over the box.
    pub score: f32,
    /// `redacted`, or `kept` when a reviewer dropped it.
    pub action: Action,
    /// The redacted rectangle `[x1, y1, x2, y2]` (the box, grown for small text, clipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<[f32; 4]>,
    /// The frame of an animation the text is in (from 0); absent for stills.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame: Option<u32>,
    /// A person's decision in `blurgate review`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewed: Option<Reviewed>,
}

impl TextReport {
    /// Region `t` of face `face` (in `faces`), redacted under `mask`.
    pub fn new(t: &TextRegion, face: usize, mask: Option<[f32; 4]>) -> Self {
        let r = |v: f32| (v * 10.0).round() / 10.0;
        let b = &t.bbox;
        TextReport {
            face,
            bbox: [r(b.x1), r(b.y1), r(b.x2), r(b.y2)],
            score: (t.score * 1000.0).round() / 1000.0,
            action: if mask.is_some() { Action::Redacted } else { Action::Kept },
            mask: mask.map(|m| m.map(r)),
            frame: None,
            reviewed: None,
        }
    }
}

/// What `redact` did to a video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoReport {
    /// Frames of the video stream (all of them decoded, detected or tracked, and written).
    pub frames: u64,
    /// Average frame rate (the container's).
    pub fps: f64,
    /// Container duration in seconds, when it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    /// Clockwise degrees the display matrix turns frames by (kept in the output); faces are
    /// looked for, and reported, in the upright frame.
    pub rotation: u32,
    /// The encoder of the redacted video stream (`libx264`...) and its constant rate factor
    /// (absent in a dry run or a held file, which encode nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crf: Option<u8>,
    /// Detection ran on every `detect_every`-th frame, scaled to `max_side`; tracks were drawn
    /// `track_margin` frames (plus `detect_every - 1`) before and after their detections.
    pub detect_every: u32,
    pub max_side: u32,
    pub track_margin: u32,
    /// Every stream of the input and what became of it.
    pub streams: Vec<StreamReport>,
    pub tracks: Vec<TrackReport>,
    /// How faces were looked for in the frames (absent in reports of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection: Option<VideoDetection>,
}

/// What detection ran over a video's frames.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoDetection {
    /// The schedule, in words.
    pub schedule: String,
    /// Network input pixels per frame, all looks together.
    pub network_pixels_per_frame: u64,
    /// The whole-frame searches (every `detect_every`-th frame).
    pub whole: DetectionWork,
    /// The searches around the live tracks in the frames between.
    pub around: DetectionWork,
    /// New tracks followed backwards through the frames before their first detection.
    pub back: DetectionWork,
}

/// One stream of a video's input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamReport {
    pub index: usize,
    /// `video`, `audio`, `subtitle`, `data`, `attachment`.
    pub kind: String,
    pub codec: String,
    /// `redacted` (the video stream, encoded again), `copied` (audio, packet for packet) or
    /// `dropped` (subtitles, data, attachments, cover pictures, further video streams, and
    /// audio with --strip-audio: they can carry names and faces blurgate does not check).
    pub action: String,
}

/// A face followed through a video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackReport {
    pub id: u32,
    /// First and last frame it was detected in (from 0).
    pub first_frame: u64,
    pub last_frame: u64,
    /// Frames it was detected in.
    pub detections: u64,
    /// Frames its mask was drawn in (0 when kept): every frame from before its first to after
    /// its last detection.
    pub frames_redacted: u64,
    pub action: Action,
    /// With a register: the decision from its best faces, for the whole track.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f32>,
}

impl FileReport {
    /// The status as the report writes it.
    pub fn status_name(&self) -> String {
        serde_json::to_value(self.status).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
    }

    pub fn new(input: &impl std::fmt::Display) -> Self {
        FileReport {
            input: input.to_string(),
            output: None,
            status: FileStatus::Failed,
            error: None,
            error_kind: None,
            reason: None,
            vouched: false,
            notes: Vec::new(),
            pending_output: None,
            width: None,
            height: None,
            faces: Vec::new(),
            review: false,
            input_sha256: None,
            output_sha256: None,
            resumed: false,
            cached: false,
            replaced: false,
            seconds: 0.0,
            video: None,
            detection: None,
            texts: Vec::new(),
            text_detection: None,
        }
    }
}

/// One face, in the upright output image's pixels.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaceReport {
    /// Detected box `[x1, y1, x2, y2]`.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    pub score: f32,
    /// Left eye, right eye, nose, left and right mouth corner.
    pub landmarks: [[f32; 2]; 5],
    pub action: Action,
    /// The redacted area `[x1, y1, x2, y2]` (the box scaled by --mask-scale, clipped); an
    /// ellipse inscribed in the unclipped scaled box unless --boxes was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<[f32; 4]>,
    /// Register match band; absent when no register was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// Register id, only for `matched` and `uncertain` faces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    /// Cosine similarity to the closest register entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f32>,
    /// The frame of an animated GIF or PNG, or of a video, the face is in (from 0); absent for
    /// stills.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame: Option<u32>,
    /// A video's face: the time of `frame` in seconds from the start of the video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<f64>,
    /// A person's decision in `blurgate review`: `action` is theirs from then on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewed: Option<Reviewed>,
}

/// Who decided a face in review, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reviewed {
    /// The operator's name.
    pub by: String,
    /// RFC 3339, UTC.
    pub at: String,
    /// The operator drew this face: the detector missed it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drawn: bool,
}

/// The rendering settings of a run, as recorded in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderSettings {
    pub style: Style,
    pub shape: Shape,
    pub mask_scale: f32,
    /// `null`: each JPEG kept its own quality.
    pub jpeg_quality: Option<u8>,
    /// `keep`, `jpeg` or `png`.
    pub output_format: String,
    pub keep_metadata: bool,
    /// `redact`: whether text on redacted people was redacted (`redact`) or kept (`keep`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub badges: Option<Badges>,
}

impl RenderSettings {
    pub fn new(redact: &RedactOptions, encode: &EncodeOptions) -> Self {
        RenderSettings {
            style: redact.style,
            shape: redact.shape,
            mask_scale: redact.mask_scale,
            jpeg_quality: encode.jpeg_quality,
            output_format: encode.extension().map_or("keep", |e| if e == "jpg" { "jpeg" } else { e }).into(),
            keep_metadata: encode.metadata == MetadataPolicy::Keep,
            badges: None,
        }
    }

    pub fn redact(&self) -> RedactOptions {
        RedactOptions { style: self.style, shape: self.shape, mask_scale: self.mask_scale }
    }

    /// `None` for an output format this version does not know.
    pub fn encode(&self) -> Option<EncodeOptions> {
        let output = match self.output_format.as_str() {
            "keep" => OutputFormat::Keep,
            "jpeg" => OutputFormat::Jpeg,
            "png" => OutputFormat::Png,
            _ => return None,
        };
        let metadata = if self.keep_metadata { MetadataPolicy::Keep } else { MetadataPolicy::Strip };
        Some(EncodeOptions::default().with_output(output).with_metadata(metadata).with_jpeg_quality(self.jpeg_quality))
    }
}

impl FaceReport {
    pub fn new(d: &Detection, action: Action, mask: Option<[f32; 4]>, decision: Option<FaceDecision>) -> Self {
        let r = |v: f32| (v * 10.0).round() / 10.0;
        let b = &d.bbox;
        let (decision, person, similarity) = match decision {
            Some(fd) => (Some(fd.decision), fd.person, fd.similarity),
            None => (None, None, None),
        };
        FaceReport {
            bbox: [r(b.x1), r(b.y1), r(b.x2), r(b.y2)],
            score: (d.score * 1000.0).round() / 1000.0,
            landmarks: d.landmarks.0.map(|p| p.map(r)),
            action,
            mask: mask.map(|m| m.map(r)),
            decision,
            person,
            similarity,
            frame: None,
            time: None,
            reviewed: None,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    pub files: usize,
    pub redacted: usize,
    pub unchanged: usize,
    pub failed: usize,
    /// Held back for review (`--hold-uncertain`), not written.
    #[serde(default)]
    pub held: usize,
    /// Files with an uncertain match (redacted or held) that a person should review.
    #[serde(default)]
    pub review: usize,
    pub faces: usize,
    pub faces_redacted: usize,
    /// Faces whose register match was uncertain (redacted, or held with --hold-uncertain).
    #[serde(default)]
    pub faces_uncertain: usize,
    /// Files in the input folders that are not media and were left out (the same as
    /// `skipped`; kept for older readers).
    pub ignored: usize,
    /// Files listed with status `skipped`.
    #[serde(default)]
    pub skipped: usize,
    /// `check`: files that show faces the policy forbids.
    #[serde(default)]
    pub violations: usize,
    /// Files an earlier, interrupted run had finished (`resumed`).
    #[serde(default)]
    pub resumed: usize,
    /// `check`: files whose result came from the cache (`cached`).
    #[serde(default)]
    pub cached: usize,
    /// `redact --replace-published`: published files replaced by redacted copies.
    #[serde(default)]
    pub replaced: usize,
    pub seconds: f64,
}

impl Report {
    pub fn new(files: Vec<FileReport>, seconds: f64) -> Report {
        let summary = Summary::of(&files, seconds);
        Report {
            version: REPORT_VERSION,
            detection: None,
            render: None,
            files,
            summary,
            thresholds: None,
            dry_run: false,
        }
    }

    /// The summary counted again after files changed (a review), keeping the run's time.
    pub fn recount(&mut self) {
        self.summary = Summary::of(&self.files, self.summary.seconds);
    }

    /// Reads a report written by [`Report::write`].
    pub fn read(path: &Path) -> Result<Report> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::io(path, std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
    }
}

/// Why reports cannot be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("no reports to merge")]
    Empty,
    #[error("{input} is in two of the reports: the shards overlap (same inputs with another --shard N?)")]
    Twice { input: String },
    #[error("the reports were made with different {what}: merge only the shards of one run")]
    Settings { what: &'static str },
}

impl Report {
    /// One report from the reports of a run's shards (`--shard I/N`): every file once, the
    /// summary counted again, the time that of the slowest shard (they run side by side).
    pub fn merge(reports: Vec<Report>) -> Result<Report, MergeError> {
        let first = reports.first().ok_or(MergeError::Empty)?;
        let same = |what, differs: bool| if differs { Err(MergeError::Settings { what }) } else { Ok(()) };
        for r in &reports[1..] {
            same("detection settings", r.detection != first.detection)?;
            same("rendering settings", r.render != first.render)?;
            same("thresholds", r.thresholds != first.thresholds)?;
            same("dry-run modes", r.dry_run != first.dry_run)?;
        }
        let (detection, render, thresholds, dry_run) =
            (first.detection.clone(), first.render.clone(), first.thresholds, first.dry_run);
        let seconds = reports.iter().map(|r| r.summary.seconds).fold(0.0, f64::max);
        let mut files: Vec<FileReport> = reports.into_iter().flat_map(|r| r.files).collect();
        files.sort_by(|a, b| a.input.cmp(&b.input));
        if let Some(w) = files.windows(2).find(|w| w[0].input == w[1].input) {
            return Err(MergeError::Twice { input: w[0].input.clone() });
        }
        Ok(Report { detection, render, thresholds, dry_run, ..Report::new(files, seconds) })
    }
}

impl Summary {
    fn of(files: &[FileReport], seconds: f64) -> Summary {
        let count = |s: FileStatus| files.iter().filter(|f| f.status == s).count();
        let faces = files.iter().flat_map(|f| &f.faces);
        Summary {
            files: files.len(),
            redacted: count(FileStatus::Redacted),
            unchanged: count(FileStatus::Unchanged),
            failed: count(FileStatus::Failed),
            held: count(FileStatus::Held),
            review: files.iter().filter(|f| f.review).count(),
            faces: faces.clone().count(),
            faces_redacted: faces.clone().filter(|f| f.action == Action::Redacted).count(),
            faces_uncertain: faces.filter(|f| f.decision == Some(Decision::Uncertain)).count(),
            ignored: count(FileStatus::Skipped),
            skipped: count(FileStatus::Skipped),
            violations: count(FileStatus::Violation),
            resumed: files.iter().filter(|f| f.resumed).count(),
            cached: files.iter().filter(|f| f.cached).count(),
            replaced: files.iter().filter(|f| f.replaced).count(),
            seconds: (seconds * 1000.0).round() / 1000.0,
        }
    }
}

impl Report {
    pub fn write(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).expect("report serialises");
        crate::storage::write_atomic(path, &json).map_err(|e| Error::io(path, e))
    }

    /// One line for people: what happened, how fast.
    pub fn summary_line(&self) -> String {
        let s = &self.summary;
        let rate = if s.seconds > 0.0 { s.files as f64 / s.seconds } else { 0.0 };
        let mut line = format!(
            "{} file{}: {} redacted ({} face{}), {} unchanged, {} failed in {:.1} s ({:.1} files/s)",
            s.files,
            if s.files == 1 { "" } else { "s" },
            s.redacted,
            s.faces_redacted,
            if s.faces_redacted == 1 { "" } else { "s" },
            s.unchanged,
            s.failed,
            s.seconds,
            rate
        );
        if self.thresholds.is_some() {
            let n = s.faces_uncertain;
            line.push_str(&format!("; {n} face{} uncertain", if n == 1 { "" } else { "s" }));
        }
        if s.held > 0 || s.review > 0 {
            line.push_str(&format!("; {} to review ({} held back)", s.review, s.held));
        }
        if s.skipped > 0 {
            line.push_str(&format!("; {} skipped (not media)", s.skipped));
        }
        line
    }
}
