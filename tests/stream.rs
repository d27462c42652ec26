//! `blurgate stream` end to end: the pan clip scripts/setup.sh makes, sent over a real TCP
//! socket on 127.0.0.1 by ffmpeg (or played at its own rate), redacted into an MPEG-TS file and
//! checked frame by frame with the real detector, with ffprobe on timing and audio. Every child
//! process runs under a deadline and is killed past it.

use std::fs::File;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use blurgate::detect::Detection;

use serde_json::Value;

use crate::common::*;
use crate::video::{clip, faces, ffprobe, Frames};

/// Frames in the pan clip (4 s at 25 fps).
const FRAMES: u64 = 100;
const DEADLINE: Duration = Duration::from_secs(90);

/// A port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits for `child` until `deadline`, killing it past that.
fn wait(child: &mut Child, deadline: Duration, what: &str) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} still running after {deadline:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The right to run a stream now: one at a time, with the clip's faces found before, so the
/// tests' frame checks do not eat into a stream's time.
fn live_slot() -> MutexGuard<'static, ()> {
    static LIVE: Mutex<()> = Mutex::new(());
    clip_faces();
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// `blurgate stream ARGS` with stderr to a file; its status and stderr.
fn stream(dir: &Path, args: &[&str]) -> (ExitStatus, String) {
    let log = dir.join("stderr.txt");
    let mut child = command()
        .arg("stream")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&log).unwrap())
        .spawn()
        .expect("blurgate runs");
    let status = wait(&mut child, DEADLINE, "blurgate stream");
    (status, std::fs::read_to_string(&log).unwrap())
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// Presentation times (seconds) of the packets of one kind (`video`, `audio`), in file order.
fn packet_times(path: &Path, kind: &str) -> Vec<f64> {
    let p = ffprobe(path, &["-show_entries", "packet=codec_type,pts_time"]);
    p["packets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|pk| pk["codec_type"] == kind)
        .filter_map(|pk| pk["pts_time"].as_str().and_then(|t| t.parse().ok()))
        .collect()
}

/// Video frames' presentation times, in presentation order.
fn frame_times(path: &Path) -> Vec<f64> {
    let f = ffprobe(path, &["-select_streams", "v:0", "-show_entries", "frame=best_effort_timestamp_time"]);
    f["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|fr| fr["best_effort_timestamp_time"].as_str().unwrap().parse().unwrap())
        .collect()
}

/// The input frame each output frame shows, by presentation time: output times moved back by
/// the audio's offset (first audio packet out against in; audio is never left out) must land on
/// an input frame's time within 2 ms. So video and audio moved by the same delay (in sync), and
/// frames left out are told apart from frames moved.
fn matching_frames(input: &Path, output: &Path) -> Vec<usize> {
    let shift = packet_times(output, "audio")[0] - packet_times(input, "audio")[0];
    let before = frame_times(input);
    frame_times(output)
        .iter()
        .map(|t| {
            before
                .iter()
                .position(|b| (b - (t - shift)).abs() < 0.002)
                .unwrap_or_else(|| panic!("output frame at {t} s (input time {} s) matches no input frame", t - shift))
        })
        .collect()
}

/// Every audio packet is there, in order and at the same spacing.
fn assert_audio_kept(input: &Path, output: &Path) {
    let (a, b) = (packet_times(input, "audio"), packet_times(output, "audio"));
    assert_eq!(a.len(), b.len(), "audio packets");
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(((x - a[0]) - (y - b[0])).abs() < 0.002, "audio packet {i}: input at {x}, output at {y}");
    }
}

/// The faces of every frame of the pan clip, found once for all the tests.
fn clip_faces() -> &'static [Vec<Detection>] {
    static FACES: OnceLock<Vec<Vec<Detection>>> = OnceLock::new();
    FACES.get_or_init(|| Frames::open(&clip("pan.mp4")).map(|f| faces(&f)).collect())
}

/// No output frame shows a face the detector finds in the input frame at the same time.
/// Frames written black (failing closed) show nothing and are not searched.
fn assert_no_leak(input: &Path, output: &Path) {
    let shown = matching_frames(input, output);
    let before = clip_faces();
    assert!(before.iter().any(|f| !f.is_empty()), "the clip shows faces");
    let (mut n, mut leaked) = (0, Vec::new());
    for (after, &i) in Frames::open(output).zip(&shown) {
        n += 1;
        if after.as_raw().iter().all(|v| *v < 24) {
            continue;
        }
        leaked.extend(faces(&after).into_iter().filter(|d| before[i].iter().any(|f| f.bbox.iou(&d.bbox) > 0.3)));
    }
    assert_eq!(n, shown.len(), "frames decoded from {}", output.display());
    assert!(leaked.is_empty(), "faces left in the stream: {leaked:?}");
}

/// Every line of the audit log, parsed.
fn audit_events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["event"].clone())
        .collect()
}

#[test]
fn a_tcp_stream_is_redacted_with_audio_in_sync_within_the_stated_latency() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let input = clip("pan.mp4");
    let url = format!("tcp://127.0.0.1:{}", free_port());
    let slot = live_slot();
    // ffmpeg plays the clip at its own rate into a socket it listens on; blurgate connects
    // (retrying while ffmpeg starts).
    let mut sender = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-re", "-i"])
        .arg(&input)
        .args(["-c", "copy", "-f", "mpegts"])
        .arg(format!("{url}?listen=1&listen_timeout=60000"))
        .stdin(Stdio::null())
        .spawn()
        .expect("ffmpeg runs (scripts/setup.sh installs it)");
    let (out, stats, audit) = (dir.join("out.ts"), dir.join("stats.json"), dir.join("audit.jsonl"));
    let (status, err) = stream(
        dir,
        &[&url, s(&out), "--reconnect", "6", "--speed", "fast", "--stats", s(&stats), "--audit", s(&audit)],
    );
    let sent = wait(&mut sender, Duration::from_secs(30), "ffmpeg sender");
    drop(slot);
    assert!(status.success(), "blurgate stream: {status}: {err}");
    assert!(sent.success(), "ffmpeg sender: {sent}");
    assert!(err.contains("stream: in "), "once-a-second counters on stderr: {err}");

    let st = json(&stats);
    assert_eq!(st["ended"], "input-ended", "{st:#}");
    let count = |k: &str| st[k].as_u64().unwrap();
    assert_eq!(count("frames_in"), FRAMES, "{st:#}");
    assert_eq!(count("frames_out") + count("frames_dropped"), FRAMES, "{st:#}");
    assert!(count("frames_redacted") > 0, "{st:#}");
    assert_eq!(st["muxer"], "mpegts");
    let bound = st["latency_bound_ms"].as_f64().unwrap();
    let p95 = st["latency_ms"]["p95"].as_f64().unwrap();
    // Frames written within the bound stated up front: the look-ahead (500 ms, 12 frames) plus a reserve sized from
    // a timed detection.
    assert!(bound >= 480.0 && p95 > 0.0 && p95 < bound, "added latency p95 {p95} ms, bound {bound} ms: {st:#}");

    assert_audio_kept(&input, &out);
    assert_no_leak(&input, &out);

    let events = audit_events(&audit);
    let tracks: Vec<&Value> = events.iter().filter(|e| e["type"] == "stream-track").collect();
    assert!(!tracks.is_empty() && tracks.iter().all(|t| t["action"] == "redacted"), "{events:?}");
    let last = events.last().unwrap();
    assert_eq!((last["type"].as_str(), last["frames_in"].as_u64()), (Some("stream"), Some(FRAMES)), "{last}");
    let text = std::fs::read_to_string(&audit).unwrap();
    assert!(!text.contains("embedding") && !text.contains("landmarks"), "no biometrics in the audit log");
}

#[test]
fn a_detector_that_cannot_keep_up_thins_out_then_blanks_frames_never_leaks() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let input = clip("pan.mp4");
    let (out, stats, audit) = (dir.join("out.ts"), dir.join("stats.json"), dir.join("audit.jsonl"));
    // 700 ms per detection against a 500 ms look-ahead: detection runs beside the frames being written, so it thins
    // itself out, but frames whose detection comes too late are blanked.
    let slot = live_slot();
    let (status, err) = stream(
        dir,
        &[
            s(&input),
            s(&out),
            "--realtime",
            "--speed",
            "fast",
            "--test-detect-delay-ms",
            "700",
            "--max-detect-every",
            "4",
            "--stats",
            s(&stats),
            "--audit",
            s(&audit),
            "-q",
        ],
    );
    drop(slot);
    assert!(status.success(), "blurgate stream: {status}: {err}");
    assert!(err.contains("detecting every") && err.contains("failing closed"), "said on stderr: {err}");
    assert!(!err.contains("stream: in "), "-q keeps the counters quiet: {err}");

    let st = json(&stats);
    assert!(st["detect_every_peak"].as_u64().unwrap() > 1, "{st:#}");
    assert_eq!(st["max_detect_every"], 4);
    assert!(st["frames_blanked"].as_u64().unwrap() > 0, "{st:#}");
    let count = |k: &str| st[k].as_u64().unwrap();
    assert_eq!(count("frames_out") + count("frames_dropped"), FRAMES, "every frame written or left out: {st:#}");

    assert_audio_kept(&input, &out);
    assert_no_leak(&input, &out);
    let events = audit_events(&audit);
    assert!(
        events.iter().any(|e| e["type"] == "stream-notice" && e["notice"].as_str().unwrap().contains("failing closed")),
        "fail-closed recorded in the audit log: {events:?}"
    );
}
