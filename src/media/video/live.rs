//! Live streams: a source FFmpeg can open (a network URL, a capture device, or a file played at
//! its own rate), read frame by frame, each frame carrying the audio packets read before it, and
//! an output muxed for a network URL, HLS segments or a file. Holding a frame back therefore
//! holds its audio back by the same time, and both keep their timestamps: they stay in sync.

use std::ffi::CString;
use std::path::Path;
use std::time::{Duration, Instant};

use ff::format::context::{Input, Output};
use ffmpeg_next as ff;
use image::RgbImage;

use super::decode::{upright_rgb, Decoding, Scaler};
use super::encode::{choose, copy_rect, muxer_name, redact_frame, Writer};
use super::probe::Probe;
use super::{VideoError, VideoOptions};
use crate::detect::FaceBox;
use crate::redact::RedactOptions;

/// How a live source is opened and read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveInputOptions {
    /// FFmpeg's input format (`mpegts`, `v4l2`...); `None`: guessed from the source.
    pub format: Option<String>,
    /// Read at the source's own frame rate (a file standing in for a camera).
    pub realtime: bool,
    /// A network read that waits longer than this fails (then the source may be reopened).
    pub timeout: Duration,
    /// Long side, in pixels, of the picture each frame carries for detection.
    pub detect_side: u32,
}

impl Default for LiveInputOptions {
    fn default() -> Self {
        LiveInputOptions { format: None, realtime: false, timeout: Duration::from_secs(5), detect_side: 640 }
    }
}

impl LiveInputOptions {
    pub fn with_format(self, format: Option<String>) -> Self {
        LiveInputOptions { format, ..self }
    }
    pub fn with_realtime(self, realtime: bool) -> Self {
        LiveInputOptions { realtime, ..self }
    }
    pub fn with_timeout(self, timeout: Duration) -> Self {
        LiveInputOptions { timeout, ..self }
    }
    pub fn with_detect_side(self, detect_side: u32) -> Self {
        LiveInputOptions { detect_side, ..self }
    }
}

/// One decoded frame of a live source, with what it needs until it is written.
pub struct LiveFrame {
    frame: ff::frame::Video,
    /// Audio packets read since the previous frame, written with this one.
    audio: Vec<ff::Packet>,
    picture: RgbImage,
    /// Upright full size over the picture's size, per axis.
    scale: (f32, f32),
    seconds: f64,
    arrived: Instant,
}

impl LiveFrame {
    /// The frame upright, scaled down for detection.
    pub fn picture(&self) -> &RgbImage {
        &self.picture
    }
    /// From picture pixels to upright full-size pixels, per axis.
    pub fn scale(&self) -> (f32, f32) {
        self.scale
    }
    /// Presentation time on the output's timeline.
    pub fn seconds(&self) -> f64 {
        self.seconds
    }
    /// When it was decoded: the start of the latency it accrues.
    pub fn arrived(&self) -> Instant {
        self.arrived
    }
}

/// Audio packets read after the last frame of a source that ended.
pub struct LiveAudio(Vec<ff::Packet>);

/// An open live source.
pub struct LiveSource {
    decoding: Decoding,
    probe: Probe,
    options: LiveInputOptions,
    scaler: Scaler,
    audio: Vec<ff::Packet>,
    /// Where a reopened source's first frame goes on the output's timeline (seconds).
    resume_at: Option<f64>,
    /// Microseconds added to every timestamp, fixed by the first frame.
    shift: Option<i64>,
    /// Wall clock and timestamp of the first frame, for reading at the source's rate.
    pace: Option<(Instant, f64)>,
}

impl LiveSource {
    /// Opens `url`. `resume_at`: the output already holds frames up to there (a reconnection),
    /// so timestamps are shifted to continue from it.
    pub fn open(url: &str, options: &LiveInputOptions, resume_at: Option<f64>) -> Result<LiveSource, VideoError> {
        let input = open_input(url, options)?;
        let (decoding, probe) = Decoding::from_input(input)?;
        Ok(LiveSource {
            decoding,
            probe,
            options: options.clone(),
            scaler: Scaler::default(),
            audio: Vec::new(),
            resume_at,
            shift: None,
            pace: None,
        })
    }

    pub fn probe(&self) -> &Probe {
        &self.probe
    }

    /// The audio read after the last frame, once [`LiveSource::read_frame`] has said the end.
    pub fn rest(&mut self) -> LiveAudio {
        let mut audio = std::mem::take(&mut self.audio);
        self.shift_audio(&mut audio);
        LiveAudio(audio)
    }

    /// Moves audio packets onto the output's timeline.
    fn shift_audio(&self, audio: &mut [ff::Packet]) {
        let shift = self.shift.unwrap_or(0);
        for p in audio {
            let tb = self.decoding.input.stream(p.stream()).map_or(self.probe.time_base, |s| s.time_base());
            let by = ff::rescale::Rescale::rescale(&shift, ff::rescale::TIME_BASE, tb);
            p.set_pts(p.pts().map(|v| v + by));
            p.set_dts(p.dts().map(|v| v + by));
        }
    }

    /// The next frame; `None` when the source ends.
    pub fn read_frame(&mut self) -> Result<Option<LiveFrame>, VideoError> {
        let mut frame = ff::frame::Video::empty();
        let audio = &mut self.audio;
        if !self.decoding.next(&mut frame, &mut |p| {
            audio.push(p);
            Ok(())
        })? {
            return Ok(None);
        }
        let tb = self.probe.time_base;
        let micros = |pts: i64, tb: ff::Rational| ff::rescale::Rescale::rescale(&pts, tb, ff::rescale::TIME_BASE);
        let pts = frame.pts().unwrap_or(0);
        let shift = *self.shift.get_or_insert_with(|| self.resume_at.map_or(0, |t| (t * 1e6) as i64 - micros(pts, tb)));
        let shifted = pts + ff::rescale::Rescale::rescale(&shift, ff::rescale::TIME_BASE, tb);
        frame.set_pts(Some(shifted));
        let seconds = micros(shifted, tb) as f64 / 1e6;
        let mut audio = std::mem::take(&mut self.audio);
        self.shift_audio(&mut audio);
        if self.options.realtime {
            let (start, first) = *self.pace.get_or_insert((Instant::now(), seconds));
            let due = start + Duration::from_secs_f64((seconds - first).max(0.0));
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        let picture = upright_rgb(&frame, self.probe.rotation, &mut self.scaler, Some(self.options.detect_side))?;
        let (w, h) = self.probe.upright();
        let scale = (w as f32 / picture.width() as f32, h as f32 / picture.height() as f32);
        Ok(Some(LiveFrame { frame, audio, picture, scale, seconds, arrived: Instant::now() }))
    }
}

/// Opens `url` with the input format asked for and a read timeout for network sources.
fn open_input(url: &str, options: &LiveInputOptions) -> Result<Input, VideoError> {
    super::init();
    let bad_name = |name: &str| VideoError::NoContainer(name.to_string());
    let path = CString::new(url).map_err(|_| bad_name(url))?;
    let format = match &options.format {
        Some(name) => {
            let c = CString::new(name.as_str()).map_err(|_| bad_name(name))?;
            // SAFETY: a NUL-terminated name; the result is a static demuxer description or null.
            let f = unsafe { ff::ffi::av_find_input_format(c.as_ptr()) };
            if f.is_null() {
                return Err(bad_name(name));
            }
            f
        }
        None => std::ptr::null(),
    };
    let mut settings = ff::Dictionary::new();
    // Protocol option in microseconds: a stalled network read fails instead of hanging.
    settings.set("rw_timeout", &options.timeout.as_micros().to_string());
    // SAFETY: FFmpeg's documented open sequence; the context is closed on failure and owned by
    // the returned Input otherwise; the dictionary is handed back and freed.
    unsafe {
        let mut ps = std::ptr::null_mut();
        let mut opts = settings.disown();
        let r = ff::ffi::avformat_open_input(&mut ps, path.as_ptr(), format, &mut opts);
        ff::Dictionary::own(opts);
        if r < 0 {
            return Err(VideoError::Open(ff::Error::from(r)));
        }
        let r = ff::ffi::avformat_find_stream_info(ps, std::ptr::null_mut());
        if r < 0 {
            ff::ffi::avformat_close_input(&mut ps);
            return Err(VideoError::Open(ff::Error::from(r)));
        }
        Ok(Input::wrap(ps))
    }
}

/// How a live output is written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LiveOutputOptions {
    /// FFmpeg's muxer (`mpegts`, `flv`, `hls`...); `None`: from the URL's scheme or extension.
    pub format: Option<String>,
    pub encode: VideoOptions,
}

impl LiveOutputOptions {
    pub fn with_format(self, format: Option<String>) -> Self {
        LiveOutputOptions { format, ..self }
    }
    pub fn with_encode(self, encode: VideoOptions) -> Self {
        LiveOutputOptions { encode, ..self }
    }
}

/// The muxer for a live output: MPEG-TS for TCP, UDP and SRT, FLV for RTMP, RTSP for RTSP, HLS
/// for a `.m3u8` name or a folder, else what the file name's extension says.
pub fn live_muxer(url: &str) -> Result<String, VideoError> {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    let name = match scheme.as_deref() {
        Some("tcp" | "udp" | "srt" | "pipe") => "mpegts",
        Some("rtp") => "rtp_mpegts",
        Some("rtmp" | "rtmps") => "flv",
        Some("rtsp") => "rtsp",
        _ if url.ends_with('/') || Path::new(url).is_dir() || url.ends_with(".m3u8") => "hls",
        _ => return muxer_name(Path::new(url)),
    };
    Ok(name.to_string())
}

/// Where HLS goes: a folder gets `index.m3u8` in it (created if missing).
fn hls_playlist(url: &str) -> Result<String, VideoError> {
    if url.ends_with(".m3u8") {
        return Ok(url.to_string());
    }
    std::fs::create_dir_all(url)?;
    Ok(Path::new(url).join("index.m3u8").to_string_lossy().into_owned())
}

/// Creates the output context for `muxer` and opens its connection or file (not for muxers that
/// open their own, such as HLS and RTSP), flushing every packet out at once.
fn open_output(url: &str, muxer: &str) -> Result<Output, VideoError> {
    super::init();
    let ffmpeg = |what| move |err| VideoError::Ffmpeg { what, err };
    let path = CString::new(url).map_err(|_| VideoError::NoContainer(url.to_string()))?;
    let name = CString::new(muxer).map_err(|_| VideoError::NoContainer(muxer.to_string()))?;
    // SAFETY: FFmpeg's documented sequence; on failure the context is freed, otherwise owned by
    // the returned Output (which closes its connection).
    unsafe {
        let mut ps = std::ptr::null_mut();
        let r = ff::ffi::avformat_alloc_output_context2(&mut ps, std::ptr::null(), name.as_ptr(), path.as_ptr());
        if r < 0 || ps.is_null() {
            return Err(VideoError::NoContainer(muxer.to_string()));
        }
        (*ps).flags |= ff::ffi::AVFMT_FLAG_FLUSH_PACKETS;
        if (*(*ps).oformat).flags & ff::ffi::AVFMT_NOFILE == 0 {
            let r = ff::ffi::avio_open(&mut (*ps).pb, path.as_ptr(), ff::ffi::AVIO_FLAG_WRITE);
            if r < 0 {
                ff::ffi::avformat_free_context(ps);
                return Err(ffmpeg("opening the output")(ff::Error::from(r)));
            }
        }
        if muxer == "hls" {
            // Short segments, a rolling playlist: a live window, not an archive.
            for (k, v) in [("hls_time", "2"), ("hls_list_size", "6"), ("hls_flags", "delete_segments")] {
                let (k, v) = (CString::new(k).expect("static"), CString::new(v).expect("static"));
                let r = ff::ffi::av_opt_set((*ps).priv_data, k.as_ptr(), v.as_ptr(), 0);
                if r < 0 {
                    ff::ffi::avformat_free_context(ps);
                    return Err(ffmpeg("setting up HLS")(ff::Error::from(r)));
                }
            }
        }
        Ok(Output::wrap(ps))
    }
}

/// A live output: frames redacted (or blanked) and encoded as they come, their audio copied.
pub struct LiveOutput {
    writer: Writer,
    rotation: u32,
    scaler: Scaler,
    /// A black picture in the encoder's format, made on first need.
    black: Option<ff::frame::Video>,
    /// The encoder's name (`libx264`...).
    pub encoder: &'static str,
    /// The muxer in use.
    pub muxer: String,
}

impl LiveOutput {
    /// Opens `url` for `source`'s stream, whose first frame (not yet written) tells the pixel
    /// format.
    pub fn open(
        url: &str,
        options: &LiveOutputOptions,
        source: &LiveSource,
        first: &LiveFrame,
    ) -> Result<LiveOutput, VideoError> {
        let muxer = match &options.format {
            Some(f) => f.clone(),
            None => live_muxer(url)?,
        };
        let target = if muxer == "hls" { hls_playlist(url)? } else { url.to_string() };
        let output = open_output(&target, &muxer)?;
        let choice = choose(&options.encode, &muxer, &output, Path::new(&target))?.live();
        let encoder = choice.encoder;
        let writer = Writer::open(output, &source.decoding, &source.probe, &first.frame, &choice, &options.encode)?;
        Ok(LiveOutput {
            writer,
            rotation: source.probe.rotation,
            scaler: Scaler::default(),
            black: None,
            encoder,
            muxer,
        })
    }

    /// Writes `frame` with `faces` (upright full-size pixels) redacted, after its audio.
    pub fn write(&mut self, mut frame: LiveFrame, faces: &[FaceBox], redact: &RedactOptions) -> Result<(), VideoError> {
        self.audio(&mut frame)?;
        let mut picture = self.writer.convert(&mut frame.frame)?;
        if !faces.is_empty() {
            redact_frame(&mut picture, faces, self.rotation, redact, &mut self.scaler)?;
        }
        self.writer.encode(Some(&picture))
    }

    /// Writes a black picture at `frame`'s time instead of it (fail closed), after its audio.
    pub fn write_blank(&mut self, mut frame: LiveFrame) -> Result<(), VideoError> {
        self.audio(&mut frame)?;
        let mut picture = self.writer.convert(&mut frame.frame)?;
        let (w, h) = (picture.width(), picture.height());
        if self.black.as_ref().is_none_or(|b| (b.width(), b.height(), b.format()) != (w, h, picture.format())) {
            let mut black = ff::frame::Video::empty();
            self.scaler.unrgb(&RgbImage::new(w, h), picture.format(), &mut black)?;
            self.black = Some(black);
        }
        let black = self.black.as_ref().expect("made above");
        copy_rect(black, &mut picture, (0, 0, w, h));
        self.writer.encode(Some(&picture))
    }

    /// Leaves `frame` out, writing only its audio.
    pub fn skip(&mut self, mut frame: LiveFrame) -> Result<(), VideoError> {
        self.audio(&mut frame)
    }

    fn audio(&mut self, frame: &mut LiveFrame) -> Result<(), VideoError> {
        self.write_audio(LiveAudio(std::mem::take(&mut frame.audio)))
    }

    /// Writes audio packets as they are (after the last frame of a source that ended).
    pub fn write_audio(&mut self, audio: LiveAudio) -> Result<(), VideoError> {
        for packet in audio.0 {
            self.writer.copy(packet)?;
        }
        Ok(())
    }

    /// Drains the encoder and closes the container (its trailer, the HLS playlist's end).
    pub fn finish(mut self) -> Result<(), VideoError> {
        self.writer.encode(None)?;
        self.writer.output.write_trailer().map_err(|err| VideoError::Ffmpeg { what: "finishing the output", err })
    }
}
