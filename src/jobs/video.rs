//! One video of a redact run, in two passes over the file with bounded memory: the first
//! decodes every frame and finds the faces using time (the whole frame searched as a photo is,
//! every `detect_every`-th frame; the frames between searched where the live tracks are; a
//! track first found late followed backwards through the frames before it), links them into
//! tracks and, with a register, embeds each track's best faces (kept in memory only); the
//! tracks are then decided as a whole; the second pass decodes again,
//! redacts every frame of each redacted track's life (interpolated where it was not detected,
//! with a margin either side) and encodes into a temporary file renamed when complete.

use super::engine::{Engine, Matching};
use super::observer::Observer;
use super::publish::Outputs;
use super::state::RunState;
use crate::matching::Policy;
use crate::media::video::VideoOptions;
use crate::redact::RedactOptions;

/// What a video of a redact run needs of it.
pub struct VideoRun<'a> {
    pub engine: &'a Engine,
    pub policy: Policy,
    pub matching: Option<&'a Matching>,
    pub hold_uncertain: bool,
    pub redact: &'a RedactOptions,
    pub video: &'a VideoSettings,
    /// The resume journal; `None` in a dry run and when replacing.
    pub state: Option<&'a RunState>,
    /// A dry run, or published files replaced in place.
    pub outputs: Outputs<'a>,
    /// The run's settings hash, for the journal.
    pub settings: &'a str,
    pub observer: &'a dyn Observer,
}

/// How videos are read and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoSettings {
    /// Search the whole frame, as a photo, every K-th frame (1: every frame); the frames
    /// between are searched around the live tracks.
    pub detect_every: u32,
    /// Long side, in pixels, frames are scaled down to for detection; `None`: as decoded (the
    /// photo plan then reads large frames in native tiles, as it reads photos).
    pub max_side: Option<u32>,
    /// Frames a track is redacted before its first and after its last detection.
    pub track_margin: u32,
    pub encode: VideoOptions,
}

impl Default for VideoSettings {
    fn default() -> Self {
        VideoSettings { detect_every: 16, max_side: None, track_margin: 5, encode: VideoOptions::default() }
    }
}

impl VideoSettings {
    pub fn with_detect_every(self, detect_every: u32) -> Self {
        VideoSettings { detect_every: detect_every.max(1), ..self }
    }
    pub fn with_max_side(self, max_side: Option<u32>) -> Self {
        VideoSettings { max_side, ..self }
    }
    pub fn with_track_margin(self, track_margin: u32) -> Self {
        VideoSettings { track_margin, ..self }
    }
    pub fn with_encode(self, encode: VideoOptions) -> Self {
        VideoSettings { encode, ..self }
    }
}

/// Built without FFmpeg: a video is listed as failed, never skipped.
#[cfg(not(feature = "video"))]
pub(super) fn unsupported(input: &crate::storage::Location) -> super::FileError {
    let name = input.file_name().map(std::path::Path::new);
    let ext = name.and_then(|n| n.extension()).unwrap_or_default().to_string_lossy().to_ascii_lowercase();
    super::FileError::Unsupported(format!("{ext} (a video: this blurgate was built without the `video` feature)"))
}

#[cfg(not(feature = "video"))]
pub(super) fn redact_video(
    p: super::plan::Planned,
    _run: &VideoRun,
    _report: &mut crate::report::FileReport,
) -> Result<(), super::FileError> {
    Err(unsupported(&p.input))
}

#[cfg(feature = "video")]
pub(super) use with_ffmpeg::{analyse, decide_track, redact_video};

#[cfg(feature = "video")]
mod with_ffmpeg {
    use std::collections::{HashMap, VecDeque};
    use std::path::Path;

    use image::RgbImage;

    use super::super::engine::{Engine, Matching};
    use super::super::observer::Observer;
    use super::VideoSettings;
    use crate::matching::Policy;
    use crate::redact::RedactOptions;

    use super::super::outcome::FileError;
    use super::super::plan::Planned;
    use super::super::state::Finished;
    use crate::detect::{Detection, DetectionWork, FaceBox, TRACK_SCORE};
    use crate::embed::Probe;
    use crate::jobs::engine::decide_probe;
    use crate::matching::{Action, Decision, FaceDecision};
    use crate::media::video::{self, Probe as VideoProbe, VideoError};
    use crate::media::{DecodeError, EncodeError};
    use crate::redact::Mask;
    use crate::report::{FaceReport, FileReport, FileStatus, StreamReport, TrackReport, VideoDetection, VideoReport};
    use crate::track::{Playback, Track, Tracker, TrackerOptions};

    /// Faces per track kept embedded for its decision.
    const BEST_FACES: usize = 3;
    /// Overlap with a face's box in the next frame for a detection to be that face, when a
    /// new track is followed backwards.
    const FOLLOW_IOU: f32 = 0.3;
    /// Frames in a row a face followed backwards may go unseen before the search gives up.
    const FOLLOW_MISSES: u32 = 2;
    /// Frames between progress reports.
    const PROGRESS_EVERY: u64 = 10;

    impl From<VideoError> for FileError {
        fn from(e: VideoError) -> FileError {
            if e.is_input() {
                FileError::Decode(DecodeError::Ffmpeg(e))
            } else {
                FileError::Encode(EncodeError::Ffmpeg(e))
            }
        }
    }

    /// What pass 1 keeps of a track beside its boxes: its strongest detection (for the
    /// report) and its best faces, embedded.
    #[derive(Default)]
    struct TrackFaces {
        strongest: Option<(u64, Detection)>,
        /// (size × score, embedding and quality), best first.
        best: Vec<(f32, Probe)>,
    }

    /// Pass 1 over a video: every frame decoded, faces detected (every `detect_every`-th
    /// frame, scaled to `max_side`) and linked into tracks, each track decided from its best
    /// faces (embedded in memory only, with a register).
    pub(in crate::jobs) struct Analysis {
        pub probe: VideoProbe,
        pub frames: u64,
        pub tracks: Vec<Track>,
        pub verdicts: Vec<Option<FaceDecision>>,
        /// Each track's strongest detection and the frame it is in.
        strongest: HashMap<u32, (u64, Detection)>,
        pub work: FrameWork,
        /// Long side of the pictures searched.
        pub side: u32,
    }

    pub(in crate::jobs) fn analyse(
        path: &Path,
        name: &str,
        engine: &Engine,
        (policy, matching): (Policy, Option<&Matching>),
        settings: &VideoSettings,
        observer: &dyn Observer,
    ) -> Result<Analysis, FileError> {
        let probe = video::probe(path)?;
        let (w, h) = probe.upright();
        let every = settings.detect_every.max(1) as u64;
        let mut tracker = Tracker::new(TrackerOptions::default().with_max_gap(30.max(3 * every)));
        let mut faces: HashMap<u32, TrackFaces> = HashMap::new();
        let mut work = FrameWork::default();
        // The frames since the last whole-frame search, for following new tracks backwards.
        let mut recent: VecDeque<(u64, RgbImage)> = VecDeque::new();
        let mut tracks_seen = 0u32;
        let frames = video::scan(path, |mut frame| -> Result<(), FileError> {
            let index = frame.index();
            if index % PROGRESS_EVERY == 0 {
                observer.video_frames(name, 1, index);
            }
            let picture = frame.upright_rgb(settings.max_side)?;
            let (sx, sy) = (w as f32 / picture.width() as f32, h as f32 / picture.height() as f32);
            let to_frame = |d: Detection| d.mapped(sx, sy, 0.0, 0.0);
            let to_picture = |b: &FaceBox| b.mapped(1.0 / sx, 1.0 / sy, 0.0, 0.0);
            let detector = engine.detector();
            let whole = index % every == 0;
            let found: Vec<Detection> = if whole {
                detector.detect_frame(&picture, &mut work.whole).map_err(FileError::Model)?
            } else {
                // A track predicted wholly out of the picture has left it: nothing there to look at.
                let expected: Vec<FaceBox> =
                    tracker.expected(index).iter().filter(|b| b.touches(w, h)).map(to_picture).collect();
                if expected.is_empty() {
                    Vec::new()
                } else {
                    detector
                        .detect_around(&picture, &expected, TRACK_SCORE, &mut work.around)
                        .map_err(FileError::Model)?
                }
            };
            let found: Vec<Detection> = found.into_iter().map(to_frame).collect();
            let ids = tracker.update(index, &found);
            // A face first found now (by the whole-frame search, or beside a track in a look
            // around it) was there before, unseen: followed backwards, frame by frame, through
            // the frames since the last whole-frame search (that one included).
            for (d, &id) in found.iter().zip(&ids).filter(|(_, id)| **id >= tracks_seen) {
                let (mut last, mut missed) = (to_picture(&d.bbox), 0);
                for (before, img) in recent.iter().rev() {
                    let near = detector.detect_around(img, &[last], TRACK_SCORE, &mut work.back);
                    let near = near.map_err(FileError::Model)?;
                    let same = near.iter().filter(|o| o.bbox.iou(&last) >= FOLLOW_IOU);
                    match same.max_by(|a, b| a.bbox.iou(&last).total_cmp(&b.bbox.iou(&last))) {
                        Some(o) => {
                            (last, missed) = (o.bbox, 0);
                            tracker.prepend(id, *before, &to_frame(*o));
                        }
                        // A frame or two can hide it (turned away, blurred by motion).
                        None if missed < FOLLOW_MISSES => missed += 1,
                        None => break,
                    }
                }
            }
            if whole {
                recent.clear();
            }
            recent.push_back((index, picture));
            tracks_seen = tracks_seen.max(ids.iter().map(|id| id + 1).max().unwrap_or(0));
            // Faces are embedded from the frame as decoded.
            let mut native = None;
            for (d, id) in found.iter().zip(ids) {
                let entry = faces.entry(id).or_default();
                if entry.strongest.is_none_or(|(_, s)| d.score > s.score) {
                    entry.strongest = Some((index, *d));
                }
                let key = d.bbox.width().min(d.bbox.height()) * d.score;
                let better = entry.best.len() < BEST_FACES || entry.best.last().is_some_and(|(k, _)| key > *k);
                if matching.is_none() || !better {
                    continue;
                }
                let rgb = match (settings.max_side, &native) {
                    (None, _) => &recent.back().expect("pushed above").1,
                    (Some(_), Some(rgb)) => rgb,
                    (Some(_), None) => native.insert(frame.upright_rgb(None)?),
                };
                let embedder = engine.embedder().map_err(FileError::Model)?;
                let probe = embedder.probes(rgb, std::slice::from_ref(d)).map_err(FileError::Model)?.remove(0);
                entry.best.push((key, probe));
                entry.best.sort_by(|a, b| b.0.total_cmp(&a.0));
                entry.best.truncate(BEST_FACES);
            }
            Ok(())
        })?;
        let tracks = tracker.finish();
        let verdicts: Vec<Option<FaceDecision>> = tracks
            .iter()
            .map(|t| {
                let m = matching?;
                let probes = faces.get(&t.id).map_or(&[][..], |f| &f.best[..]);
                decide_track(probes.iter().map(|(_, p)| decide_probe(p, policy, m)).collect())
            })
            .collect();
        let strongest = faces.into_iter().filter_map(|(id, f)| Some((id, f.strongest?))).collect();
        let long_side = |(w, h): (u32, u32)| w.max(h);
        let side = settings.max_side.map_or(long_side((w, h)), |m| m.min(long_side((w, h))));
        Ok(Analysis { probe, frames, tracks, verdicts, strongest, work, side })
    }

    /// What detection ran over a video's frames, by kind of look.
    #[derive(Default)]
    pub(in crate::jobs) struct FrameWork {
        /// Whole-frame searches (every `detect_every`-th frame).
        pub whole: DetectionWork,
        /// Searches around the live tracks, in the frames between.
        pub around: DetectionWork,
        /// New tracks followed backwards.
        pub back: DetectionWork,
    }

    impl FrameWork {
        pub fn total(&self) -> DetectionWork {
            let mut all = self.whole.clone();
            all.add(&self.around);
            all.add(&self.back);
            all
        }
    }

    impl Analysis {
        pub fn action(v: &Option<FaceDecision>) -> Action {
            v.as_ref().map_or(Action::Redacted, |d| d.action)
        }

        /// One face per track: its strongest detection, with the frame and time it is in, its
        /// decision, and with `masks` the area a redacted track's mask covers there.
        pub fn faces(&self, masks: Option<&RedactOptions>) -> Vec<FaceReport> {
            let (w, h) = self.probe.upright();
            let fps = self.probe.fps();
            self.tracks
                .iter()
                .zip(&self.verdicts)
                .filter_map(|(t, v)| {
                    let (frame, d) = *self.strongest.get(&t.id)?;
                    let a = Analysis::action(v);
                    let mask = masks.filter(|_| a == Action::Redacted).map(|r| {
                        let m = Mask::for_face(&d.bbox, r, w, h).area;
                        [m.x1, m.y1, m.x2, m.y2]
                    });
                    let time = (fps > 0.0).then(|| (frame as f64 / fps * 1000.0).round() / 1000.0);
                    Some(FaceReport { frame: Some(frame as u32), time, ..FaceReport::new(&d, a, mask, v.clone()) })
                })
                .collect()
        }
    }

    pub(in crate::jobs) fn redact_video(
        p: Planned,
        run: &super::VideoRun,
        report: &mut FileReport,
    ) -> Result<(), FileError> {
        let settings = run.video;
        let input_sha256 = p.input.sha256().map_err(FileError::Read)?;
        report.input_sha256 = Some(input_sha256.clone());
        if let Some(done) = run.state.and_then(|s| s.finished(&p.output, &input_sha256, run.settings)) {
            *report = FileReport { resumed: true, ..done.report.clone() };
            return Ok(());
        }
        // Videos are read by name (FFmpeg seeks in them): the local path of the input, or a
        // copy of an object.
        let copy = p.input.local_copy().map_err(FileError::Read)?;
        let path = copy.path();
        let name = p.input.to_string();
        let analysis = analyse(path, &name, run.engine, (run.policy, run.matching), settings, run.observer)?;
        let (w, h) = analysis.probe.upright();
        (report.width, report.height) = (Some(w), Some(h));

        let every = settings.detect_every.max(1) as u64;
        let Analysis { frames, tracks, verdicts, .. } = &analysis;
        let frames = *frames;
        let redacted: Vec<bool> = verdicts.iter().map(|v| Analysis::action(v) == Action::Redacted).collect();

        report.review = verdicts.iter().flatten().any(FaceDecision::needs_review);
        report.faces = analysis.faces(Some(run.redact));
        let margin = settings.track_margin as u64 + every - 1;
        let mut summary = video_report(&analysis, settings);
        report.detection = Some(analysis.work.total());
        let dropped = summary.streams.iter().filter(|s| s.action == "dropped").count();
        if dropped > 0 {
            report.notes.push(format!(
                "{dropped} stream(s) dropped (subtitles, data, attachments, cover pictures, further video or stripped \
                 audio): only the video stream was checked and written, with its audio"
            ));
        }
        if report.review && run.hold_uncertain {
            run.outputs.withdraw(&p.output);
            report.status = FileStatus::Held;
            report.pending_output = Some(p.output.to_string());
            report.video = Some(summary);
            return Ok(());
        }
        report.status = if redacted.iter().any(|r| *r) { FileStatus::Redacted } else { FileStatus::Unchanged };
        if run.outputs.leave_published(&p, report) {
            report.video = Some(summary);
            return Ok(());
        }
        if run.outputs.dry_run {
            // A dry run decides everything; encoding is left out, so no output_sha256.
            report.output = Some(p.output.to_string());
            report.video = Some(summary);
            return Ok(());
        }
        run.outputs.keep_original(&p, |kept| kept.write_atomic_with(|tmp| std::fs::copy(path, tmp).map(drop)))?;

        // Pass 2: redact and encode.
        let mut playback = Playback::new(tracks, margin);
        let mut drawn = vec![0u64; tracks.len()];
        let mut encoded = None;
        // The output's name (a path, or an object's URL) tells its container.
        let container_of = std::path::PathBuf::from(p.output.to_string());
        let written = p.output.write_atomic_with(|tmp| {
            let e = video::transcode(
                path,
                tmp,
                &container_of,
                &settings.encode,
                run.redact,
                |frame| {
                    let boxes: Vec<(usize, FaceBox)> =
                        playback.boxes_at(frame).into_iter().filter(|(i, _)| redacted[*i]).collect();
                    boxes.iter().for_each(|(i, _)| drawn[*i] += 1);
                    boxes.into_iter().map(|(_, b)| b).collect()
                },
                |frame| {
                    if frame % PROGRESS_EVERY == 0 {
                        run.observer.video_frames(&name, 2, frame);
                    }
                },
            )?;
            // Both passes must have seen the same frames, or the masks would be misplaced.
            if e.frames != frames {
                return Err(VideoError::FramesChanged { first: frames, second: e.frames });
            }
            encoded = Some(e);
            Ok(())
        });
        match written {
            Ok(()) => {}
            Err(VideoError::Io(err)) => return Err(FileError::Write { path: p.output.to_string().into(), err }),
            Err(e) => return Err(e.into()),
        }
        let encoded = encoded.expect("set when written");
        for (t, n) in summary.tracks.iter_mut().zip(drawn) {
            t.frames_redacted = n;
        }
        (summary.encoder, summary.crf) = (Some(encoded.encoder.to_string()), encoded.crf);
        report.video = Some(summary);
        let output_sha256 = p.output.sha256().map_err(FileError::Read)?;
        report.output = Some(p.output.to_string());
        report.output_sha256 = Some(output_sha256.clone());
        report.replaced = run.outputs.replace.is_some();
        let Some(state) = run.state else { return Ok(()) };
        state
            .record(&Finished {
                output: p.output.to_string(),
                input_sha256,
                settings: run.settings.to_string(),
                output_sha256,
                report: report.clone(),
            })
            .map_err(FileError::State)
    }

    /// A track's decision from its best faces' decisions: the most certain one (matched, then
    /// uncertain, then unknown; the most similar among equals) decides; and a track any of
    /// whose faces is named for redaction is redacted, whatever another face says.
    pub(in crate::jobs) fn decide_track(faces: Vec<FaceDecision>) -> Option<FaceDecision> {
        let rank = |d: &FaceDecision| match d.decision {
            Decision::Matched => 2,
            Decision::Uncertain => 1,
            Decision::Unknown => 0,
        };
        let named_redacted = faces.iter().any(|d| d.decision != Decision::Unknown && d.action == Action::Redacted);
        let best = faces.into_iter().max_by(|a, b| {
            rank(a).cmp(&rank(b)).then(a.similarity.unwrap_or(-1.0).total_cmp(&b.similarity.unwrap_or(-1.0)))
        });
        best.map(|d| if named_redacted { FaceDecision { action: Action::Redacted, ..d } } else { d })
    }

    fn video_report(a: &Analysis, settings: &super::VideoSettings) -> VideoReport {
        let Analysis { probe, frames, tracks, verdicts, work, .. } = a;
        let (frames, strip_audio) = (*frames, settings.encode.strip_audio);
        let s = &probe.streams;
        let stream = |i: &video::StreamInfo, action: &str| StreamReport {
            index: i.index,
            kind: i.kind.to_string(),
            codec: i.codec.clone(),
            action: action.to_string(),
        };
        let mut streams = vec![stream(&s.video, "redacted")];
        streams.extend(s.audio.iter().map(|a| stream(a, if strip_audio { "dropped" } else { "copied" })));
        streams.extend(s.dropped.iter().map(|d| stream(d, "dropped")));
        streams.sort_by_key(|s| s.index);
        VideoReport {
            frames,
            fps: (probe.fps() * 1000.0).round() / 1000.0,
            duration: probe.duration.map(|d| (d * 1000.0).round() / 1000.0),
            rotation: probe.rotation,
            encoder: None,
            crf: None,
            detect_every: settings.detect_every,
            max_side: a.side,
            track_margin: settings.track_margin,
            streams,
            detection: Some(VideoDetection {
                schedule: format!(
                    "whole frame every {} frames at {} px; between, zoomed looks around the live tracks; new \
                     tracks followed backwards",
                    settings.detect_every.max(1),
                    a.side
                ),
                network_pixels_per_frame: (work.total().network_pixels as f64 / frames.max(1) as f64).round() as u64,
                whole: work.whole.clone(),
                around: work.around.clone(),
                back: work.back.clone(),
            }),
            tracks: tracks
                .iter()
                .zip(verdicts)
                .map(|(t, v)| TrackReport {
                    id: t.id,
                    first_frame: t.first_frame(),
                    last_frame: t.last_frame(),
                    detections: t.observations.len() as u64,
                    frames_redacted: 0,
                    action: v.as_ref().map_or(Action::Redacted, |d| d.action),
                    decision: v.as_ref().map(|d| d.decision),
                    person: v.as_ref().and_then(|d| d.person.clone()),
                    similarity: v.as_ref().and_then(|d| d.similarity),
                })
                .collect(),
        }
    }
}
