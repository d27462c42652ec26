//! `blurgate stream`: a live source redacted into a live output in one pass, with a bounded
//! look-ahead.
//!
//! A reader thread decodes the source (reconnecting with backoff when it fails) into a bounded
//! queue; the job takes frames from it and holds each for the look-ahead, while a detection
//! thread searches every K-th one (as video keyframes are searched) beside it; the faces found
//! are linked into tracks, so a face first detected at frame t is also redacted on the held
//! frames before t. A frame leaves only once a detection has run on it or on a later frame; one
//! that cannot be checked in time is written black (fail closed), and one that would leave past
//! the latency bound is dropped (its audio kept); none leaves as it came. A slow detection
//! thins the detections out by itself (the next starts on the first frame after it); when
//! frames queue behind the job, K doubles (up to `max_detect_every`); when the queue empties,
//! K comes back down; with K at its limit and the queue still longer than the look-ahead,
//! frames are blanked until it drains.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::time::{Duration, Instant};

use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::engine::{decide_probe, Engine, Recognition};
use super::video::decide_track;
use super::Decisions;
use crate::audit::{AuditLog, AuditTarget, AuditTrack, Event};
use crate::detect::{Detection, DetectionWork, DetectorOptions, FaceBox};
use crate::embed::Probe;
use crate::matching::{Action, FaceDecision, Policy};
use crate::media::video::{
    LiveAudio, LiveFrame, LiveInputOptions, LiveOutput, LiveOutputOptions, LiveSource, VideoError,
};
use crate::models::ModelDir;
use crate::redact::RedactOptions;
use crate::track::{Observation, Track, Tracker, TrackerOptions};

/// Faces per track kept embedded for its decision (as for video files).
const BEST_FACES: usize = 3;
/// First wait before reopening a lost source; doubled per failed try, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// Share of real time a live stream's detections may take: decoding, redaction and encoding
/// need the rest.
const DETECT_SHARE: f64 = 0.5;

/// The look-ahead: frames held so tracks can reach back, by count or by time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LookAhead {
    Frames(u32),
    Millis(u32),
}

impl Default for LookAhead {
    fn default() -> Self {
        LookAhead::Millis(500)
    }
}

impl LookAhead {
    /// Frames held at `fps` (at least one).
    fn frames(self, fps: f64) -> u32 {
        match self {
            LookAhead::Frames(n) => n.max(1),
            LookAhead::Millis(ms) => ((ms as f64 / 1000.0 * fps).floor() as u32).max(1),
        }
    }
}

/// What an error mid-stream does to the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnError {
    /// Close the output (held frames that were not checked are not written) and exit 1.
    #[default]
    Stop,
    /// Write black frames instead: a failed detection blanks that frame and every held one and
    /// the stream goes on; a lost input has its held frames blanked before the output closes.
    Slate,
}

/// How a stream is read, checked and written.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSettings {
    pub look_ahead: LookAhead,
    /// Detect on every K-th frame at first (K grows when the machine falls behind).
    pub detect_every: u32,
    /// Largest K before frames are blanked instead.
    pub max_detect_every: u32,
    /// Frames a track stays redacted after its last detection (plus K - 1).
    pub track_margin: u32,
    pub on_error: OnError,
    /// Reopenings of a source that failed (not one that ended), with backoff.
    pub reconnect: u32,
    pub input: LiveInputOptions,
    pub output: LiveOutputOptions,
    /// Test aid: a fixed wait added to every detection, to play a machine that cannot keep up.
    pub detect_delay: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            look_ahead: LookAhead::default(),
            detect_every: 1,
            max_detect_every: 8,
            track_margin: 5,
            on_error: OnError::Stop,
            reconnect: 0,
            input: LiveInputOptions::default(),
            output: LiveOutputOptions::default(),
            detect_delay: Duration::ZERO,
        }
    }
}

impl StreamSettings {
    pub fn with_look_ahead(self, look_ahead: LookAhead) -> Self {
        StreamSettings { look_ahead, ..self }
    }
    pub fn with_detect_every(self, detect_every: u32) -> Self {
        StreamSettings { detect_every: detect_every.max(1), ..self }
    }
    pub fn with_max_detect_every(self, max_detect_every: u32) -> Self {
        StreamSettings { max_detect_every: max_detect_every.max(1), ..self }
    }
    pub fn with_track_margin(self, track_margin: u32) -> Self {
        StreamSettings { track_margin, ..self }
    }
    pub fn with_on_error(self, on_error: OnError) -> Self {
        StreamSettings { on_error, ..self }
    }
    pub fn with_reconnect(self, reconnect: u32) -> Self {
        StreamSettings { reconnect, ..self }
    }
    pub fn with_input(self, input: LiveInputOptions) -> Self {
        StreamSettings { input, ..self }
    }
    pub fn with_output(self, output: LiveOutputOptions) -> Self {
        StreamSettings { output, ..self }
    }
    pub fn with_detect_delay(self, detect_delay: Duration) -> Self {
        StreamSettings { detect_delay, ..self }
    }
}

#[derive(Debug, Clone)]
pub struct StreamJob {
    /// What FFmpeg opens: a URL, a device or a file.
    pub input: String,
    pub output: String,
    pub detection: DetectorOptions,
    pub redact: RedactOptions,
    pub decisions: Decisions,
    pub audit: Option<AuditTarget>,
    pub settings: StreamSettings,
}

impl StreamJob {
    pub fn new(input: impl Into<String>, output: impl Into<String>) -> Self {
        StreamJob {
            input: input.into(),
            output: output.into(),
            detection: DetectorOptions::default(),
            redact: RedactOptions::default(),
            decisions: Decisions::default(),
            audit: None,
            settings: StreamSettings::default(),
        }
    }
    pub fn with_detection(self, detection: DetectorOptions) -> Self {
        StreamJob { detection, ..self }
    }
    pub fn with_redact(self, redact: RedactOptions) -> Self {
        StreamJob { redact, ..self }
    }
    pub fn with_decisions(self, decisions: Decisions) -> Self {
        StreamJob { decisions, ..self }
    }
    pub fn with_audit(self, audit: Option<AuditTarget>) -> Self {
        StreamJob { audit, ..self }
    }
    pub fn with_settings(self, settings: StreamSettings) -> Self {
        StreamJob { settings, ..self }
    }
}

/// Added latency (a frame's decoding to its writing) in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyStats {
    pub last: f64,
    pub mean: f64,
    pub p50: f64,
    pub p95: f64,
    pub max: f64,
}

/// How the stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ending {
    /// The source ended: everything was written.
    InputEnded,
    /// An error stopped it (see `error`).
    Failed,
}

/// Live counters, and the summary at the end (`--stats`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamStats {
    pub input: String,
    pub output: String,
    pub muxer: String,
    pub encoder: String,
    pub width: u32,
    pub height: u32,
    /// The source's frame rate.
    pub fps: f64,
    /// Frames held for tracks to reach back.
    pub look_ahead_frames: u32,
    /// The stated bound on added latency: the look-ahead plus the processing reserve.
    pub latency_bound_ms: f64,
    pub latency_ms: LatencyStats,
    /// Frames per second decoded and written over the last second.
    pub fps_in: f64,
    pub fps_out: f64,
    pub frames_in: u64,
    pub frames_out: u64,
    pub frames_detected: u64,
    /// Frames written with at least one face redacted.
    pub frames_redacted: u64,
    /// Frames written black: not checked in time, or after an error (fail closed).
    pub frames_blanked: u64,
    /// Frames left out (their audio kept): past the latency bound, or held when an error
    /// stopped the stream.
    pub frames_dropped: u64,
    /// K now, the largest K used and its limit.
    pub detect_every: u32,
    /// K chosen at start-up from the detection time on the first frame and the frame rate.
    #[serde(default)]
    pub planned_detect_every: u32,
    pub detect_every_peak: u32,
    pub max_detect_every: u32,
    /// Frames decoded and waiting for the job.
    pub queue: u32,
    pub tracks: u64,
    pub active_tracks: u32,
    pub reconnects: u32,
    /// Time to load and warm the detector, before the output opened.
    pub warmup_ms: f64,
    /// A detection's time, averaged over the recent ones.
    pub detect_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<Ending>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a stream tells whoever runs it.
pub trait StreamObserver {
    /// Once a second, and at the end.
    fn tick(&self, _stats: &StreamStats) {}
    /// A change worth a line on stderr (also logged, and in the audit log).
    fn notice(&self, _message: &str) {}
}

/// Why a stream could not start (once it has, errors end it with [`Ending::Failed`]).
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("cannot read {url}: {err}")]
    Input { url: String, err: VideoError },
    #[error("cannot write {url}: {err}")]
    Output { url: String, err: VideoError },
    #[error("the source {0} ended before its first frame")]
    Empty(String),
    #[error(transparent)]
    Setup(#[from] crate::Error),
}

/// Runs the stream until its source ends or an error stops it.
pub fn run_stream(
    job: &StreamJob,
    models: &ModelDir,
    observer: &dyn StreamObserver,
) -> Result<StreamStats, StreamError> {
    let started = Instant::now();
    let recognition = if job.decisions.matching.is_some() { Recognition::On } else { Recognition::Off };
    let d = &job.decisions;
    if d.policy != Policy::All && d.matching.is_none() {
        return Err(crate::Error::PolicyNeedsRegister { policy: d.policy.name() }.into());
    }
    let engine = Engine::new(models, job.detection.clone(), recognition, 1)?;
    let audit = job.audit.as_ref().map(AuditLog::open).transpose()?;
    // Warm the detector (first-run allocations, lazy kernels) before anything is opened.
    let side = job.settings.input.detect_side;
    let dummy = RgbImage::new(side, side * 9 / 16);
    engine.detector().detect(&dummy)?;
    let warmup = started.elapsed();

    let settings = &job.settings;
    let (source, first) = open_first(job, observer)?;
    // Detection timed on the first real frame (faces open the zoomed looks, which a dummy
    // frame does not), as a new scene and with its faces tracked: the first sizes the latency
    // reserve, the second how often the stream can afford to detect. The frames arriving meanwhile wait in the source, not in the output.
    let (detector, mut work) = (engine.detector(), DetectionWork::default());
    let timed = Instant::now();
    let found = detector.detect_frame(first.picture(), &mut work)?;
    let detect_time = timed.elapsed();
    // Once faces are tracked, they are looked at in small crops instead of zoomed looks: the
    // detections that follow cost this.
    let known: Vec<FaceBox> = found.iter().map(|d| d.bbox).collect();
    let timed = Instant::now();
    detector.detect_frame_tracked(first.picture(), &known, &mut work)?;
    let tracked_time = timed.elapsed();
    let output = LiveOutput::open(&job.output, &settings.output, &source, &first)
        .map_err(|err| StreamError::Output { url: job.output.clone(), err })?;
    let probe = source.probe();
    let fps = if probe.fps() > 0.0 { probe.fps() } else { 25.0 };
    let n = settings.look_ahead.frames(fps);
    let hold = Duration::from_secs_f64(n as f64 / fps);
    // Detection, redaction and encoding of the frame leaving: a quarter of the look-ahead, at
    // least 100 ms and twice a detection's time on this machine.
    let reserve = (hold / 4).max(Duration::from_millis(100)).max(detect_time * 2);
    let (w, h) = probe.upright();
    let limit = settings.max_detect_every.min(n);
    // Detection may take this share of real time; decoding, redaction and encoding need the rest.
    let affordable = (tracked_time.as_secs_f64() * fps / DETECT_SHARE).ceil() as u32;
    let planned = settings.detect_every.max(affordable).min(limit);
    let mut stats = StreamStats {
        input: job.input.clone(),
        output: job.output.clone(),
        muxer: output.muxer.clone(),
        encoder: output.encoder.to_string(),
        width: w,
        height: h,
        fps,
        look_ahead_frames: n,
        latency_bound_ms: ms(hold + reserve),
        detect_every: planned,
        planned_detect_every: planned,
        max_detect_every: limit,
        warmup_ms: ms(warmup),
        detect_ms: ms(detect_time),
        ..StreamStats::default()
    };
    let plan = format!(
        "a detection takes {:.0} ms on a new scene and {:.0} ms once its faces are tracked, on {}x{} pictures at \
         {fps:.2} frames/s: detecting every {planned} frame(s) (the whole frame, tracked faces in small crops) \
         beside the frames being written, following the faces between",
        stats.detect_ms,
        ms(tracked_time),
        first.picture().width(),
        first.picture().height()
    );
    tracing::info!("{plan}");
    observer.notice(&plan);
    if affordable > limit {
        observer.notice(&format!(
            "even detecting every {limit} frames (the look-ahead's limit) this machine may fall behind: frames it \
             cannot check in time are blanked; a longer --latency, --speed fast or a smaller --video-max-side help"
        ));
    }
    stats.detect_every_peak = stats.detect_every;

    let queued = AtomicUsize::new(0);
    let (tx, rx) = mpsc::sync_channel(4 * n as usize + 16);
    let (jobs, job_rx) = mpsc::channel();
    let mut live = Live {
        job,
        engine: &engine,
        audit: audit.as_ref(),
        observer,
        output: Some(output),
        inbox: Inbox { rx: Some(rx), queued: &queued, deferred: VecDeque::new() },
        jobs: Some(jobs),
        in_flight: None,
        last_started: None,
        look_ahead: n,
        hold,
        reserve,
        tracker: Tracker::new(TrackerOptions::default().with_max_gap(30.max(3 * stats.max_detect_every as u64))),
        tracks: HashMap::new(),
        held: VecDeque::new(),
        next_index: 0,
        last_detected: None,
        failing: false,
        late: false,
        retired: 0,
        detect_time,
        latency: Latency::default(),
        window: Window::new(),
        stats,
    };
    std::thread::scope(|scope| {
        let (worker, engine, delay) = (tx.clone(), &engine, settings.detect_delay);
        scope.spawn(move || detect_worker(engine, delay, job_rx, worker));
        let reader = Reader { job, queued: &queued, tx };
        scope.spawn(move || reader.run(source));
        live.accept(first, 0);
        live.run();
        // Closing both channels stops the detection thread and the reader at their next step.
        live.jobs = None;
        live.inbox.rx = None;
    });
    Ok(live.finish())
}

/// Opens the source (retrying under `--reconnect`) and reads its first frame.
fn open_first(job: &StreamJob, observer: &dyn StreamObserver) -> Result<(LiveSource, LiveFrame), StreamError> {
    let s = &job.settings;
    let mut backoff = FIRST_BACKOFF;
    let mut tries = 0;
    loop {
        let opened = LiveSource::open(&job.input, &s.input, None).and_then(|mut src| Ok((src.read_frame()?, src)));
        match opened {
            Ok((Some(first), source)) => return Ok((source, first)),
            Ok((None, _)) => return Err(StreamError::Empty(job.input.clone())),
            Err(err) if tries >= s.reconnect => return Err(StreamError::Input { url: job.input.clone(), err }),
            Err(err) => {
                tries += 1;
                observer
                    .notice(&format!("cannot open the input ({err}); try {tries} of {} in {backoff:?}", s.reconnect));
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// What the reader hands over.
enum Arrival {
    Frame(Box<LiveFrame>),
    Notice(String),
    Reconnected,
    /// The source ended; its audio after the last frame.
    Ended(LiveAudio),
    /// The source failed past its reconnections.
    Lost(VideoError),
    /// The detection thread's answer for a frame.
    Detected(Box<Detected>),
}

/// A frame handed to the detection thread: its detection picture, that picture's scale and the
/// faces expected in it.
struct DetectJob {
    index: u64,
    picture: RgbImage,
    scale: (f32, f32),
    /// Where the tracks expect their faces, in the picture's pixels.
    known: Vec<FaceBox>,
}

/// The detection thread's answer: the faces in the picture (in its pixels), the picture back
/// (faces are embedded from it), and the time it took.
struct Detected {
    index: u64,
    found: crate::Result<Vec<Detection>>,
    picture: RgbImage,
    scale: (f32, f32),
    took: Duration,
}

/// The detection thread: searches each frame it is handed as video keyframes are searched,
/// while the job goes on holding, redacting and writing frames.
fn detect_worker(engine: &Engine, delay: Duration, jobs: Receiver<DetectJob>, tx: SyncSender<Arrival>) {
    for job in jobs {
        let timed = Instant::now();
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        let found = engine.detector().detect_frame_tracked(&job.picture, &job.known, &mut DetectionWork::default());
        let done = Detected { index: job.index, found, picture: job.picture, scale: job.scale, took: timed.elapsed() };
        if tx.send(Arrival::Detected(Box::new(done))).is_err() {
            return;
        }
    }
}

/// What reaches the job: arrivals in order, except those set aside while it waited for a
/// detection.
struct Inbox<'a> {
    /// `None` once the stream is over.
    rx: Option<Receiver<Arrival>>,
    /// Frames decoded and not yet taken by the job.
    queued: &'a AtomicUsize,
    deferred: VecDeque<Arrival>,
}

impl Inbox<'_> {
    fn next(&mut self, timeout: Duration) -> Result<Arrival, RecvTimeoutError> {
        match (self.deferred.pop_front(), &self.rx) {
            (Some(a), _) => Ok(a),
            (None, Some(rx)) => rx.recv_timeout(timeout),
            (None, None) => Err(RecvTimeoutError::Disconnected),
        }
    }

    /// The next detection within `timeout`; other arrivals meanwhile are set aside.
    fn detected(&mut self, timeout: Duration) -> Option<Detected> {
        let until = Instant::now() + timeout;
        let rx = self.rx.as_ref()?;
        loop {
            match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(Arrival::Detected(d)) => return Some(*d),
                Ok(other) => self.deferred.push_back(other),
                Err(_) => return None,
            }
        }
    }

    /// A frame taken: the frames still waiting behind it.
    fn take_frame(&self) -> usize {
        self.queued.fetch_sub(1, Ordering::SeqCst).saturating_sub(1)
    }
}

/// The reader thread: decodes the source into the queue, reopening it when it fails.
struct Reader<'a> {
    job: &'a StreamJob,
    queued: &'a AtomicUsize,
    tx: SyncSender<Arrival>,
}

impl Reader<'_> {
    fn run(self, mut source: LiveSource) {
        let s = &self.job.settings;
        let step = 1.0 / if source.probe().fps() > 0.0 { source.probe().fps() } else { 25.0 };
        let mut last = None;
        let mut tries = 0;
        loop {
            let err = match source.read_frame() {
                Ok(Some(frame)) => {
                    last = Some(frame.seconds());
                    tries = 0;
                    self.queued.fetch_add(1, Ordering::SeqCst);
                    if self.tx.send(Arrival::Frame(Box::new(frame))).is_err() {
                        return;
                    }
                    continue;
                }
                Ok(None) => {
                    let _ = self.tx.send(Arrival::Ended(source.rest()));
                    return;
                }
                Err(err) => err,
            };
            let mut err = err;
            let mut backoff = FIRST_BACKOFF;
            loop {
                if tries >= s.reconnect {
                    let _ = self.tx.send(Arrival::Lost(err));
                    return;
                }
                tries += 1;
                let note = format!("input lost ({err}); reconnecting, try {tries} of {} in {backoff:?}", s.reconnect);
                if self.tx.send(Arrival::Notice(note)).is_err() {
                    return;
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                match LiveSource::open(&self.job.input, &s.input, last.map(|t| t + step)) {
                    Ok(reopened) => {
                        source = reopened;
                        if self.tx.send(Arrival::Reconnected).is_err() {
                            return;
                        }
                        break;
                    }
                    Err(e) => err = e,
                }
            }
        }
    }
}

/// What becomes of a held frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Written with its tracks' faces redacted, once a detection at or after it has run.
    Check,
    /// Written black: it could not be checked in time, or an error came (fail closed).
    Blank,
    /// Left out (only its audio is written): it would have been written past the latency
    /// bound.
    Drop,
}

/// A frame in the look-ahead.
struct Held {
    frame: LiveFrame,
    index: u64,
    fate: Fate,
}

/// A track as the stream keeps it: its detections, best faces and decision.
struct LiveTrack {
    track: Track,
    best: Vec<(f32, Probe)>,
    verdict: Option<FaceDecision>,
    frames_redacted: u64,
    /// The tracker has let it go: it is recorded once its last frame is written.
    ended: bool,
}

impl LiveTrack {
    fn redacted(&self) -> bool {
        self.verdict.as_ref().is_none_or(|v| v.action == Action::Redacted)
    }
}

/// Frames in and out over the last second.
struct Window {
    since: Instant,
    frames_in: u64,
    frames_out: u64,
}

impl Window {
    fn new() -> Window {
        Window { since: Instant::now(), frames_in: 0, frames_out: 0 }
    }
}

/// Latencies by whole millisecond, for percentiles in fixed memory.
struct Latency {
    counts: Vec<u64>,
    total: f64,
    n: u64,
}

impl Default for Latency {
    fn default() -> Self {
        Latency { counts: vec![0; 60_001], total: 0.0, n: 0 }
    }
}

impl Latency {
    fn add(&mut self, ms: f64) {
        let bucket = (ms.round() as usize).min(self.counts.len() - 1);
        self.counts[bucket] += 1;
        self.total += ms;
        self.n += 1;
    }

    fn percentile(&self, p: f64) -> f64 {
        let want = ((self.n as f64) * p).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (ms, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                return ms as f64;
            }
        }
        0.0
    }
}

/// The job's side: look-ahead, tracks, degradation, output.
struct Live<'a> {
    job: &'a StreamJob,
    engine: &'a Engine,
    audit: Option<&'a AuditLog>,
    observer: &'a dyn StreamObserver,
    /// `None` once closed.
    output: Option<LiveOutput>,
    inbox: Inbox<'a>,
    /// To the detection thread; `None` once the stream is over.
    jobs: Option<Sender<DetectJob>>,
    /// The frame the detection thread is searching.
    in_flight: Option<u64>,
    /// The last frame handed to the detection thread.
    last_started: Option<u64>,
    look_ahead: u32,
    hold: Duration,
    reserve: Duration,
    tracker: Tracker,
    tracks: HashMap<u32, LiveTrack>,
    held: VecDeque<Held>,
    next_index: u64,
    /// Index of the last frame detected on.
    last_detected: Option<u64>,
    /// Blanking frames until the queue drains.
    failing: bool,
    /// The last frame was blanked because its detection came too late (said once per run of them).
    late: bool,
    /// Tracks recorded and forgotten.
    retired: u64,
    /// A detection's time, averaged (exponentially) over the recent ones.
    detect_time: Duration,
    latency: Latency,
    window: Window,
    stats: StreamStats,
}

impl Live<'_> {
    fn run(&mut self) {
        let mut tail = None;
        loop {
            self.tick(false);
            let arrival = match self.inbox.next(Duration::from_millis(100)) {
                Ok(a) => a,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            match arrival {
                Arrival::Frame(frame) => {
                    let backlog = self.inbox.take_frame();
                    self.accept(*frame, backlog);
                }
                Arrival::Detected(done) => {
                    self.detected(*done);
                    self.release_due();
                }
                Arrival::Notice(text) => self.notice(&text),
                Arrival::Reconnected => {
                    self.stats.reconnects += 1;
                    self.notice("input reconnected");
                }
                Arrival::Ended(audio) => {
                    tail = Some(audio);
                    break;
                }
                Arrival::Lost(err) => {
                    let slate = self.job.settings.on_error == OnError::Slate;
                    self.fail(format!("the input failed: {err}"), slate);
                    return;
                }
            }
            if self.stats.ended.is_some() {
                return;
            }
        }
        // The source ended: every held frame leaves, checked, then the audio after them.
        while !self.held.is_empty() {
            self.release();
            if self.stats.ended.is_some() {
                return;
            }
        }
        if let (Some(audio), Some(output)) = (tail, self.output.as_mut()) {
            if let Err(err) = output.write_audio(audio) {
                self.fail(format!("writing the output failed: {err}"), false);
                return;
            }
        }
        self.stats.ended = Some(Ending::InputEnded);
    }

    /// Takes a frame from the queue (`backlog` frames wait behind it).
    fn accept(&mut self, frame: LiveFrame, backlog: usize) {
        let index = self.next_index;
        self.next_index += 1;
        self.stats.frames_in += 1;
        self.window.frames_in += 1;
        self.stats.queue = backlog as u32;
        self.adapt(backlog);
        let age = frame.arrived().elapsed();
        let fate = if age > self.hold + self.reserve {
            Fate::Drop
        } else if self.failing || age > self.hold + self.reserve / 2 {
            Fate::Blank
        } else {
            Fate::Check
        };
        self.held.push_back(Held { frame, index, fate });
        let every = self.stats.detect_every as u64;
        let due = self.last_started.is_none_or(|d| index >= d + every);
        // A detection due while the thread is busy starts on the first frame after it is free.
        if fate == Fate::Check && due && self.in_flight.is_none() {
            self.start(index);
        }
        self.release_due();
    }

    /// Writes the held frames beyond the look-ahead, or whose hold has ended.
    fn release_due(&mut self) {
        while self.stats.ended.is_none()
            && (self.held.len() > self.look_ahead as usize
                || self.held.front().is_some_and(|h| h.frame.arrived().elapsed() >= self.hold))
        {
            self.release();
        }
    }

    /// K up when frames queue behind, down when the queue is empty; blanking past the limit.
    fn adapt(&mut self, backlog: usize) {
        let (k, limit) = (self.stats.detect_every, self.stats.max_detect_every);
        let start = self.stats.planned_detect_every.min(limit);
        if backlog > k as usize + 1 && k < limit {
            self.stats.detect_every = (k * 2).min(limit);
            self.stats.detect_every_peak = self.stats.detect_every_peak.max(self.stats.detect_every);
            self.notice(&format!(
                "falling behind ({backlog} frames queued): detecting every {} frames, tracking between",
                self.stats.detect_every
            ));
        } else if backlog == 0 && k > start && self.next_index.is_multiple_of(self.stats.fps.round().max(1.0) as u64) {
            self.stats.detect_every = k - 1;
        }
        if !self.failing && k >= limit && backlog > self.look_ahead as usize {
            self.failing = true;
            self.notice(&format!(
                "cannot keep up even detecting every {limit} frames ({backlog} frames queued): failing closed, frames \
                 are blanked until the queue drains"
            ));
        } else if self.failing && backlog == 0 {
            self.failing = false;
            self.notice("caught up: frames are checked again");
        }
    }

    /// Hands the held frame `index` to the detection thread.
    fn start(&mut self, index: u64) {
        let Some(held) = self.held.iter().find(|h| h.index == index) else { return };
        let (sx, sy) = held.frame.scale();
        // Where the tracks expect their faces, in the detection picture (none wholly outside).
        let known = (self.tracker.expected(index).iter())
            .filter(|b| b.touches(self.stats.width, self.stats.height))
            .map(|b| b.mapped(1.0 / sx, 1.0 / sy, 0.0, 0.0))
            .collect();
        let job = DetectJob { index, picture: held.frame.picture().clone(), scale: (sx, sy), known };
        if self.jobs.as_ref().is_some_and(|jobs| jobs.send(job).is_ok()) {
            self.in_flight = Some(index);
            self.last_started = Some(index);
        } else {
            self.fail("face detection failed: the detection thread stopped".to_string(), false);
        }
    }

    /// Waits, until `deadline`, for a detection at or after the held frame `index`, starting
    /// one on the newest held frame when none under way covers it; `false` if none came in time
    /// (the frame is then blanked).
    fn cover(&mut self, index: u64, deadline: Instant) -> bool {
        loop {
            if self.last_detected.is_some_and(|d| d >= index) {
                return true;
            }
            if self.stats.ended.is_some() || self.held.front().is_none_or(|h| h.index != index || h.fate != Fate::Check)
            {
                return false;
            }
            if self.in_flight.is_none() {
                let newest = self.held.iter().rev().find(|h| h.fate == Fate::Check).map(|h| h.index);
                match newest {
                    Some(i) => self.start(i),
                    None => return false,
                }
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.inbox.detected(left).filter(|_| !left.is_zero()) {
                Some(done) => self.detected(done),
                None => return false,
            }
        }
    }

    /// Takes the detection thread's answer: updates the tracks (and their decisions), or, if
    /// it failed, blanks the frames (or stops the stream).
    fn detected(&mut self, done: Detected) {
        self.in_flight = None;
        self.detect_time = (self.detect_time * 7 + done.took) / 8;
        self.stats.detect_ms = ms(self.detect_time);
        let found = match done.found {
            Ok(found) => found,
            Err(err) => {
                let slate = self.job.settings.on_error == OnError::Slate;
                self.fail(format!("face detection failed: {err}"), slate);
                return;
            }
        };
        self.stats.frames_detected += 1;
        self.last_detected = Some(done.index);
        let picture = &done.picture;
        let (sx, sy) = done.scale;
        let full: Vec<Detection> = found.iter().map(|d| d.mapped(sx, sy, 0.0, 0.0)).collect();
        let ids = self.tracker.update(done.index, &full);
        for ((d, small), id) in full.iter().zip(&found).zip(ids) {
            let t = self.tracks.entry(id).or_insert_with(|| LiveTrack {
                track: Track { id, observations: Vec::new() },
                best: Vec::new(),
                verdict: None,
                frames_redacted: 0,
                ended: false,
            });
            t.track.observations.push(Observation { frame: done.index, bbox: d.bbox, score: d.score });
            let key = d.bbox.width().min(d.bbox.height()) * d.score;
            let better = t.best.len() < BEST_FACES || t.best.last().is_some_and(|(k, _)| key > *k);
            let Some(m) = self.job.decisions.matching.as_ref().filter(|_| better) else { continue };
            // Embedded from the detection picture: the full frame is not kept in RGB.
            let probe = self.engine.embedder().and_then(|e| e.probes(picture, std::slice::from_ref(small)));
            match probe {
                Ok(mut p) => {
                    t.best.push((key, p.remove(0)));
                    t.best.sort_by(|a, b| b.0.total_cmp(&a.0));
                    t.best.truncate(BEST_FACES);
                    let policy = self.job.decisions.policy;
                    t.verdict = decide_track(t.best.iter().map(|(_, p)| decide_probe(p, policy, m)).collect());
                }
                // The track stays undecided, so redacted.
                Err(err) => tracing::warn!("embedding a face of track {id}: {err}"),
            }
        }
        for t in self.tracker.take_finished() {
            if let Some(live) = self.tracks.get_mut(&t.id) {
                live.ended = true;
            }
        }
    }

    /// Frames a track stays redacted after its last detection.
    fn after(&self) -> u64 {
        self.job.settings.track_margin as u64 + self.stats.detect_every_peak as u64 - 1
    }

    /// Writes the oldest held frame: redacted, black when nothing checked it in time, or only
    /// its audio when it is already past the latency bound.
    fn release(&mut self) {
        let Some(front) = self.held.front() else { return };
        if front.fate == Fate::Check && self.last_detected.is_none_or(|d| d < front.index) {
            // No detection at or after it yet: wait for one while there is time, else blank it.
            let (index, deadline) = (front.index, front.frame.arrived() + self.hold + self.reserve / 2);
            if !self.cover(index, deadline) {
                if let Some(h) = self.held.front_mut().filter(|h| h.index == index && h.fate == Fate::Check) {
                    h.fate = Fate::Blank;
                    if !std::mem::replace(&mut self.late, true) {
                        self.notice(&format!(
                            "a detection took longer than the look-ahead allows (about {:.0} ms): failing closed, \
                             frames it could not check in time are blanked",
                            self.stats.detect_ms
                        ));
                    }
                }
            }
        }
        if self.stats.ended.is_some() {
            return;
        }
        let Some(mut held) = self.held.pop_front() else { return };
        if held.frame.arrived().elapsed() > self.hold + self.reserve {
            held.fate = Fate::Drop;
        }
        let (before, after) = (self.look_ahead as u64, self.after());
        let mut boxes: Vec<FaceBox> = Vec::new();
        if held.fate == Fate::Check {
            for t in self.tracks.values_mut().filter(|t| t.redacted()) {
                if let Some(b) = t.track.box_near(held.index, before, after) {
                    boxes.push(b);
                    t.frames_redacted += 1;
                }
            }
        }
        let Some(output) = self.output.as_mut() else { return };
        let arrived = held.frame.arrived();
        let written = match held.fate {
            Fate::Drop => output.skip(held.frame),
            Fate::Blank => output.write_blank(held.frame),
            Fate::Check => output.write(held.frame, &boxes, &self.job.redact),
        };
        if let Err(err) = written {
            self.fail(format!("writing the output failed: {err}"), false);
            return;
        }
        match held.fate {
            Fate::Drop => {
                self.stats.frames_dropped += 1;
                self.retire(held.index);
                return;
            }
            Fate::Blank => self.stats.frames_blanked += 1,
            Fate::Check => {
                self.late = false;
                self.stats.frames_redacted += u64::from(!boxes.is_empty());
            }
        }
        let latency = ms(arrived.elapsed());
        self.latency.add(latency);
        self.stats.latency_ms.last = latency;
        self.stats.frames_out += 1;
        self.window.frames_out += 1;
        self.retire(held.index);
    }

    /// Records and forgets tracks the tracker let go whose frames have all been written.
    fn retire(&mut self, written: u64) {
        let after = self.after();
        let done: Vec<u32> = self
            .tracks
            .iter()
            .filter(|(_, t)| t.ended && t.track.last_frame() + after <= written)
            .map(|(id, _)| *id)
            .collect();
        for id in done {
            if let Some(t) = self.tracks.remove(&id) {
                self.record(t);
            }
        }
    }

    fn record(&mut self, t: LiveTrack) {
        self.retired += 1;
        let Some(log) = self.audit else { return };
        let fps = self.stats.fps;
        let seconds = |frame: u64| (frame as f64 / fps * 1000.0).round() / 1000.0;
        let track = AuditTrack {
            track: t.track.id,
            first_seconds: seconds(t.track.first_frame()),
            last_seconds: seconds(t.track.last_frame()),
            detections: t.track.observations.len() as u64,
            frames_redacted: t.frames_redacted,
            action: t.verdict.as_ref().map_or(Action::Redacted, |v| v.action),
            decision: t.verdict.as_ref().map(|v| v.decision),
            person: t.verdict.as_ref().and_then(|v| v.person.clone()),
        };
        let event = Event::StreamTrack { input: self.job.input.clone(), output: self.job.output.clone(), track };
        if let Err(err) = log.append(&event) {
            tracing::error!("audit log: {err}");
        }
    }

    /// An error: with a slate the held frames are written black; else they are dropped. The
    /// output is closed (with a slate, a failed detection only blanks and goes on).
    fn fail(&mut self, message: String, slate: bool) {
        self.notice(&message);
        let detection = message.starts_with("face detection");
        if slate {
            for h in self.held.iter_mut().filter(|h| h.fate == Fate::Check) {
                h.fate = Fate::Blank;
            }
            if detection {
                return;
            }
            while !self.held.is_empty() && self.output.is_some() {
                self.release();
            }
        }
        self.stats.frames_dropped += self.held.len() as u64;
        self.held.clear();
        if let Some(output) = self.output.take() {
            if let Err(err) = output.finish() {
                tracing::warn!("closing the output after an error: {err}");
            }
        }
        self.stats.ended = Some(Ending::Failed);
        self.stats.error.get_or_insert(message);
    }

    fn notice(&mut self, text: &str) {
        tracing::warn!("{text}");
        self.observer.notice(text);
        let Some(log) = self.audit else { return };
        let seconds = self.held.back().map_or(0.0, |h| h.frame.seconds());
        let event = Event::StreamNotice {
            input: self.job.input.clone(),
            output: self.job.output.clone(),
            seconds: (seconds * 1000.0).round() / 1000.0,
            notice: text.to_string(),
        };
        if let Err(err) = log.append(&event) {
            tracing::error!("audit log: {err}");
        }
    }

    /// The counters, once a second (or now, with `force`).
    fn tick(&mut self, force: bool) {
        let elapsed = self.window.since.elapsed();
        if !force && elapsed < Duration::from_secs(1) {
            return;
        }
        let secs = elapsed.as_secs_f64().max(1e-3);
        self.stats.fps_in = (self.window.frames_in as f64 / secs * 10.0).round() / 10.0;
        self.stats.fps_out = (self.window.frames_out as f64 / secs * 10.0).round() / 10.0;
        self.window = Window::new();
        let l = &self.latency;
        self.stats.latency_ms = LatencyStats {
            last: self.stats.latency_ms.last,
            mean: if l.n > 0 { (l.total / l.n as f64).round() } else { 0.0 },
            p50: l.percentile(0.5),
            p95: l.percentile(0.95),
            max: l.counts.iter().rposition(|c| *c > 0).unwrap_or(0) as f64,
        };
        self.stats.active_tracks = self.tracks.len() as u32;
        self.stats.tracks = self.retired + self.tracks.len() as u64;
        self.observer.tick(&self.stats);
    }

    /// Closes the output, records what is left and the run, and returns the summary.
    fn finish(mut self) -> StreamStats {
        if let Some(output) = self.output.take() {
            if let Err(err) = output.finish() {
                self.stats.ended = Some(Ending::Failed);
                self.stats.error = Some(format!("closing the output failed: {err}"));
            }
        }
        for (_, t) in std::mem::take(&mut self.tracks) {
            self.record(t);
        }
        self.tick(true);
        if let Some(log) = self.audit {
            let d = &self.job.decisions;
            let event = Event::Stream {
                input: self.job.input.clone(),
                output: self.job.output.clone(),
                models: self.engine.model_digests().clone(),
                detector_threshold: self.job.detection.threshold(),
                thresholds: d.matching.as_ref().map(|m| m.thresholds),
                policy: d.policy,
                frames_in: self.stats.frames_in,
                frames_out: self.stats.frames_out,
                frames_blanked: self.stats.frames_blanked,
                tracks: self.stats.tracks,
                error: self.stats.error.clone(),
            };
            if let Err(err) = log.append(&event) {
                tracing::error!("audit log: {err}");
            }
        }
        self.stats
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}
