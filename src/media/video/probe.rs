//! What a video file holds: its video stream (size, timing, display matrix) and what happens
//! to each of its other streams.

use std::path::Path;

use ff::format::context::Input;
use ff::media::Type;
use ff::Rational;
use ffmpeg_next as ff;

use super::{init, VideoError};

/// One stream of the input, as the report lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    pub index: usize,
    /// `video`, `audio`, `subtitle`, `data`, `attachment` or `unknown`.
    pub kind: &'static str,
    pub codec: String,
    /// An attached picture (cover art), not a moving stream.
    pub attached_picture: bool,
}

/// The input's streams by fate: the video stream redacted, audio copied, the rest dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Streams {
    pub video: StreamInfo,
    pub audio: Vec<StreamInfo>,
    pub dropped: Vec<StreamInfo>,
}

/// The video stream's facts both passes need.
#[derive(Debug, Clone)]
pub struct Probe {
    pub streams: Streams,
    /// Stored frame size (before the display matrix turns it).
    pub width: u32,
    pub height: u32,
    /// Clockwise degrees (0, 90, 180 or 270) the display matrix turns stored frames by to show
    /// them upright.
    pub rotation: u32,
    pub time_base: Rational,
    /// Average frame rate (the container's; `0/0` when it does not know).
    pub frame_rate: Rational,
    /// Frames the header promises (MP4 and MOV know; 0 when unknown).
    pub promised_frames: u64,
    /// Container duration in seconds, when known.
    pub duration: Option<f64>,
}

impl Probe {
    /// The frame size as shown.
    pub fn upright(&self) -> (u32, u32) {
        if self.rotation % 180 == 90 {
            (self.height, self.width)
        } else {
            (self.width, self.height)
        }
    }

    pub fn fps(&self) -> f64 {
        let r = self.frame_rate;
        if r.denominator() == 0 {
            0.0
        } else {
            r.numerator() as f64 / r.denominator() as f64
        }
    }
}

/// Opens `path` and describes it; fails on a file FFmpeg cannot open or one without video.
pub fn probe(path: &Path) -> Result<Probe, VideoError> {
    let input = open(path)?;
    describe(&input)
}

pub(super) fn open(path: &Path) -> Result<Input, VideoError> {
    init();
    ff::format::input(path).map_err(VideoError::Open)
}

/// The video stream redacted: the container's best one that is not a cover picture.
pub(super) fn video_index(input: &Input) -> Option<usize> {
    let moving = |s: &ff::format::stream::Stream| {
        s.parameters().medium() == Type::Video
            && !s.disposition().contains(ff::format::stream::Disposition::ATTACHED_PIC)
    };
    input.streams().best(Type::Video).filter(moving).or_else(|| input.streams().find(moving)).map(|s| s.index())
}

pub(super) fn describe(input: &Input) -> Result<Probe, VideoError> {
    let index = video_index(input).ok_or(VideoError::NoVideoStream)?;
    let info = |s: &ff::format::stream::Stream| StreamInfo {
        index: s.index(),
        kind: match s.parameters().medium() {
            Type::Video => "video",
            Type::Audio => "audio",
            Type::Subtitle => "subtitle",
            Type::Data => "data",
            Type::Attachment => "attachment",
            _ => "unknown",
        },
        codec: s.parameters().id().name().to_string(),
        attached_picture: s.disposition().contains(ff::format::stream::Disposition::ATTACHED_PIC),
    };
    let stream = input.stream(index).expect("index of a stream of this input");
    let (mut audio, mut dropped) = (Vec::new(), Vec::new());
    for s in input.streams().filter(|s| s.index() != index) {
        if s.parameters().medium() == Type::Audio {
            audio.push(info(&s));
        } else {
            dropped.push(info(&s));
        }
    }
    let params = stream.parameters();
    // SAFETY: the parameters belong to a stream of the open input.
    let (width, height) = unsafe { ((*params.as_ptr()).width as u32, (*params.as_ptr()).height as u32) };
    let duration = (input.duration() > 0).then(|| input.duration() as f64 / ff::ffi::AV_TIME_BASE as f64);
    Ok(Probe {
        streams: Streams { video: info(&stream), audio, dropped },
        width,
        height,
        rotation: rotation(&stream),
        time_base: stream.time_base(),
        frame_rate: stream.avg_frame_rate(),
        promised_frames: stream.frames().max(0) as u64,
        duration,
    })
}

/// Clockwise degrees to show the stream upright, from its display matrix (FFmpeg's
/// `get_rotation`, to the nearest quarter turn).
fn rotation(stream: &ff::format::stream::Stream) -> u32 {
    let Some(matrix) = stream
        .side_data()
        .find(|d| d.kind() == ff::codec::packet::side_data::Type::DisplayMatrix && d.data().len() >= 36)
    else {
        return 0;
    };
    // SAFETY: a display matrix is nine 32-bit integers (checked above); read unaligned-safe
    // through a copy.
    let mut m = [0i32; 9];
    for (i, v) in m.iter_mut().enumerate() {
        *v = i32::from_ne_bytes(matrix.data()[i * 4..i * 4 + 4].try_into().expect("four bytes"));
    }
    let counter_clockwise = unsafe { ff::ffi::av_display_rotation_get(m.as_ptr()) };
    if counter_clockwise.is_nan() {
        return 0;
    }
    let clockwise = (-counter_clockwise / 90.0).round() as i64;
    (clockwise.rem_euclid(4) * 90) as u32
}
