//! `blurgate stream`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, ValueEnum};

use blurgate::jobs::stream::{Ending, LookAhead, OnError};
use blurgate::jobs::{run_stream, StreamJob, StreamObserver, StreamSettings, StreamStats};
use blurgate::media::video::{LiveInputOptions, LiveOutputOptions};
use blurgate::media::MetadataPolicy;
use blurgate::register::RegisterFile;

use super::args::{refuse_keys_inside, AuditArg, DetectionArgs, MatchArgs, PolicyArg, StyleArgs, VideoArgs};
use super::config::take_opt;
use super::exit::{usage, FILES_FAILED};
use super::{options, Context};

pub const AFTER_HELP: &str = "\
Sources and outputs: anything FFmpeg opens. Input: srt://, rtmp://, rtsp://, udp:// or tcp://
MPEG-TS (add ?listen to wait for the sender), a capture device (--input-format v4l2 /dev/video0),
or a file (--realtime plays it at its own rate, as a camera would). Output: tcp://, udp:// and
srt:// get MPEG-TS, rtmp:// FLV, a folder or NAME.m3u8 HLS (2 s segments, a rolling playlist of
6), a file the muxer its extension names; --format overrides. Audio is copied packet for packet
and held back with the video frames it came with, so it stays in sync; --strip-audio drops it.

Latency: every frame is held for a look-ahead (--latency, default 500ms: 12 frames at 25 fps)
so that a face first detected at frame t is also redacted on the held frames before t, and
tracks are interpolated between detections. The added latency (decoding to writing) is bounded
by the look-ahead plus a processing reserve (a quarter of it, at least 100 ms and twice a
detection timed at start-up); the counters and --stats state the bound and the measured
latency of the frames written (mean, p50, p95, max). Detection dominates: on a small machine
give --speed fast and a smaller --video-max-side.

Keeping up: faces are detected every K frames, on a thread beside the frames being written, and
followed between; tracked faces are looked at in small crops, only new candidates in zoomed
looks. Before the first frame is written, detection is timed on the first frame and K is chosen
so that detection takes at most half of real time at the stream's frame rate (--detect-every N: at least N); stderr says
what was chosen and --stats records it (planned_detect_every). When decoded frames still queue
up, detection thins out (K doubles, up to --max-detect-every and never beyond the look-ahead)
and comes back to the planned K as the queue empties. Past that limit it fails closed.

Fail closed: no frame is written unless a detection ran on it or on a later frame it was held
for. A frame that cannot be checked in time is written black, one that would leave past the
latency bound is dropped (its audio still goes out), and with K at its limit and the queue
still longer than the look-ahead, frames are blanked until it drains; each change is said on
stderr and recorded in the audit log. The output opens only after the detector has run
once (warm). A failed input is reopened --reconnect times (backoff 0.5 s doubling to 8 s),
its timestamps continuing the output's. An error (input lost for good, detection, encoding)
stops the output (--on-error stop: held frames not yet checked are dropped) or, with
--on-error slate, writes black frames instead (a failed detection blanks the held frames and
the stream goes on). The raw input is never written.

Counters: once a second on stderr (not with -q): fps in/out, latency, K, frames redacted,
tracks, blanked and dropped frames. --stats FILE keeps the same as JSON, rewritten each second
and at the end: {input, output, muxer, encoder, width, height, fps, look_ahead_frames,
latency_bound_ms, latency_ms:{last, mean, p50, p95, max}, fps_in, fps_out, frames_in,
frames_out, frames_detected, frames_redacted, frames_blanked, frames_dropped, detect_every,
detect_every_peak, planned_detect_every, max_detect_every, queue, tracks, active_tracks,
reconnects, warmup_ms,
ended: \"input-ended\"|\"failed\", error}. --audit records each track's decision when its last
frame is written (times, detections, frames redacted, action; no images, no embeddings), each
notice, and the run.

Exit codes: 0 the input ended and everything was written, 1 an error stopped the stream (the
output was closed cleanly), 2 usage or set-up error (the output was never opened).";

#[derive(clap::Args, Debug)]
pub struct StreamArgs {
    /// The live source: a URL, a capture device or a file (with --realtime).
    #[arg(value_name = "INPUT")]
    pub input: String,

    /// Where the redacted stream goes: a URL, a folder or .m3u8 name (HLS), or a file.
    #[arg(value_name = "OUTPUT")]
    pub output: String,

    /// Output container (FFmpeg muxer: mpegts, flv, hls, matroska...); default from OUTPUT.
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,

    /// Input container or device (FFmpeg demuxer: mpegts, v4l2...); default: probed.
    #[arg(long, value_name = "FORMAT")]
    pub input_format: Option<String>,

    /// Read the input at its own frame rate (a file standing in for a camera).
    #[arg(long)]
    pub realtime: bool,

    /// Look-ahead: frames are held this long (e.g. 500ms, 0.5s) or this many frames (12f).
    #[arg(long, default_value = "500ms", value_name = "TIME", value_parser = parse_latency)]
    pub latency: LookAhead,

    /// Largest detection stride when the machine falls behind; past it frames are blanked.
    #[arg(long, default_value_t = 8, value_name = "K", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_detect_every: u32,

    /// What an error does to the output: stop (close it) or slate (black frames).
    #[arg(long, value_enum, default_value_t = OnErrorArg::Stop)]
    pub on_error: OnErrorArg,

    /// Reopen a failed input up to N times (backoff from 0.5 s, doubling to 8 s).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub reconnect: u32,

    /// A network read waiting longer than this fails (then --reconnect applies).
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    pub input_timeout: f64,

    /// Write the counters as JSON to FILE, each second and at the end.
    #[arg(long, value_name = "FILE")]
    pub stats: Option<PathBuf>,

    #[command(flatten)]
    pub style: StyleArgs,

    #[command(flatten)]
    pub detection: DetectionArgs,

    #[command(flatten)]
    pub video: VideoArgs,

    /// Register of enrolled people (see `blurgate enroll`). With it the default policy is
    /// opt-outs; a track is decided from its best faces seen so far, and redacted until then.
    #[arg(long, value_name = "FILE")]
    pub register: Option<PathBuf>,

    /// File holding the register key (default: $BLURGATE_REGISTER_KEY, else the key store).
    #[arg(long, value_name = "KEYFILE", requires = "register")]
    pub key_file: Option<PathBuf>,

    /// Who is redacted: all, opt-outs, consented-only (as for redact).
    #[arg(long, value_enum)]
    pub policy: Option<PolicyArg>,

    #[command(flatten)]
    pub matching: MatchArgs,

    #[command(flatten)]
    pub audit: AuditArg,

    /// Test aid: wait this many milliseconds in every detection, to play a machine that cannot
    /// keep up (the degradation and fail-closed tests use it).
    #[arg(long, hide = true, default_value_t = 0, value_name = "MS")]
    pub test_detect_delay_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnErrorArg {
    Stop,
    Slate,
}

/// `500ms`, `0.5s` or a bare number of milliseconds; `12f` frames.
fn parse_latency(text: &str) -> Result<LookAhead, String> {
    let t = text.trim();
    let number = |s: &str| s.trim().parse::<f64>().ok().filter(|v| *v > 0.0 && v.is_finite());
    let bad = || format!("{text}: expected a time (500ms, 0.5s) or a number of frames (12f)");
    if let Some(f) = t.strip_suffix('f') {
        return number(f).map(|v| LookAhead::Frames(v as u32)).ok_or_else(bad);
    }
    let ms = if let Some(v) = t.strip_suffix("ms") {
        number(v)
    } else if let Some(v) = t.strip_suffix('s') {
        number(v).map(|s| s * 1000.0)
    } else {
        number(t)
    };
    ms.map(|v| LookAhead::Millis(v.round() as u32)).ok_or_else(bad)
}

/// Counters on stderr, once a second (not with -q), notices always; --stats rewritten.
struct Counters {
    quiet: bool,
    stats: Option<PathBuf>,
}

impl StreamObserver for Counters {
    fn tick(&self, s: &StreamStats) {
        if !self.quiet {
            eprintln!(
                "stream: in {:.1} fps, out {:.1} fps, latency {:.0} ms (bound {:.0}), detect every {}, frames {} \
                 redacted {} blanked {} dropped {}, tracks {} ({} active), queue {}",
                s.fps_in,
                s.fps_out,
                s.latency_ms.last,
                s.latency_bound_ms,
                s.detect_every,
                s.frames_out,
                s.frames_redacted,
                s.frames_blanked,
                s.frames_dropped,
                s.tracks,
                s.active_tracks,
                s.queue
            );
        }
        if let Some(path) = &self.stats {
            if let Err(e) = write_stats(path, s) {
                eprintln!("warning: cannot write {}: {e}", path.display());
            }
        }
    }

    fn notice(&self, message: &str) {
        eprintln!("stream: {message}");
    }
}

/// Through a temporary file renamed over the old one: a reader never sees half a file.
fn write_stats(path: &Path, stats: &StreamStats) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec_pretty(stats).map_err(std::io::Error::other)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

pub fn run(mut a: StreamArgs, m: &ArgMatches, ctx: &Context) -> anyhow::Result<ExitCode> {
    let c = &ctx.config;
    a.detection.merge(m, &c.detection);
    a.matching.merge(m, &c.matching);
    a.style.merge(m, &c.render);
    take_opt(m, "register", &mut a.register, &c.matching.register);
    take_opt(m, "key_file", &mut a.key_file, &c.matching.key_file);
    take_opt(m, "policy", &mut a.policy, &c.matching.policy);
    take_opt(m, "audit", &mut a.audit.audit, &c.run.audit);
    if !(a.input_timeout > 0.0 && a.input_timeout.is_finite()) {
        return Err(usage("--input-timeout must be a positive number of seconds"));
    }
    let register = a.register.as_deref().map(|r| RegisterFile::new(r, a.key_file.as_deref()));
    refuse_keys_inside(register.as_ref(), a.audit.target().as_ref(), &[], None)?;
    let video = options::video(&a.video, MetadataPolicy::Strip);
    let mut input = LiveInputOptions::default()
        .with_format(a.input_format.clone())
        .with_realtime(a.realtime)
        .with_timeout(Duration::from_secs_f64(a.input_timeout));
    if let Some(side) = video.max_side {
        input = input.with_detect_side(side);
    }
    // Unless set, how often a live stream detects is chosen at start-up from the time a
    // detection takes on its first frame (see `blurgate stream --help`).
    let detect_every =
        if m.value_source("detect_every") == Some(ValueSource::CommandLine) { video.detect_every } else { 1 };
    let settings = StreamSettings::default()
        .with_look_ahead(a.latency)
        .with_detect_every(detect_every)
        .with_max_detect_every(a.max_detect_every)
        .with_track_margin(video.track_margin)
        .with_on_error(match a.on_error {
            OnErrorArg::Stop => OnError::Stop,
            OnErrorArg::Slate => OnError::Slate,
        })
        .with_reconnect(a.reconnect)
        .with_input(input)
        .with_output(LiveOutputOptions::default().with_format(a.format.clone()).with_encode(video.encode))
        .with_detect_delay(Duration::from_millis(a.test_detect_delay_ms));
    let job = StreamJob::new(a.input.clone(), a.output.clone())
        .with_detection(options::detection(&a.detection, ctx.device)?)
        .with_redact(a.style.options()?)
        .with_decisions(options::decisions(register.as_ref(), &a.matching, a.policy)?)
        .with_audit(a.audit.target())
        .with_settings(settings);
    let observer = Counters { quiet: ctx.quiet, stats: a.stats.clone() };
    let stats = run_stream(&job, &ctx.models()?, &observer)?;
    observer.tick(&stats);
    if let Some(err) = &stats.error {
        eprintln!("error: {err}");
    }
    Ok(match stats.ended {
        Some(Ending::InputEnded) => ExitCode::SUCCESS,
        _ => ExitCode::from(FILES_FAILED),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_takes_times_and_frames() {
        assert_eq!(parse_latency("500ms"), Ok(LookAhead::Millis(500)));
        assert_eq!(parse_latency("0.75s"), Ok(LookAhead::Millis(750)));
        assert_eq!(parse_latency("300"), Ok(LookAhead::Millis(300)));
        assert_eq!(parse_latency("12f"), Ok(LookAhead::Frames(12)));
        assert!(parse_latency("fast").is_err() && parse_latency("-3ms").is_err());
    }
}
