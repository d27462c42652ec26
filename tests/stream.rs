//! `blurgate stream` end to end: the pan clip scripts/setup.sh makes, sent over a real TCP
//! socket on 127.0.0.1 by ffmpeg (or played at its own rate), redacted into an MPEG-TS file and
//! checked frame by frame with the real detector, with ffprobe on timing and audio. Every child
//! process runs under a deadline and is killed past it.

use std::fs::File;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
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

/// Output frames sit at the input's presentation times (from the first frame on, whatever
/// offset the transport added), so frame i of one is frame i of the other.
fn assert_same_frame_times(input: &Path, output: &Path) {
    let (a, b) = (frame_times(input), frame_times(output));
    assert_eq!(a.len(), b.len(), "frames in {} and {}", input.display(), output.display());
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(((x - a[0]) - (y - b[0])).abs() < 0.002, "frame {i}: input at {x}, output at {y}");
    }
}

/// Audio starts at the same place relative to the video, within one frame, and every audio
/// packet is there.
fn assert_audio_in_sync(input: &Path, output: &Path) {
    let start = |path: &Path| {
        let (v, a) = (packet_times(path, "video"), packet_times(path, "audio"));
        assert!(!a.is_empty(), "{}: no audio", path.display());
        let first_video = v.iter().copied().fold(f64::INFINITY, f64::min);
        (a[0] - first_video, a.len())
    };
    let ((offset_in, n_in), (offset_out, n_out)) = (start(input), start(output));
    assert!((offset_in - offset_out).abs() < 0.04, "audio starts {offset_in} s after video in, {offset_out} s out");
    assert_eq!(n_in, n_out, "audio packets");
}

/// The faces of every frame of the pan clip, found once for all the tests.
fn clip_faces() -> &'static [Vec<Detection>] {
    static FACES: OnceLock<Vec<Vec<Detection>>> = OnceLock::new();
    FACES.get_or_init(|| Frames::open(&clip("pan.mp4")).map(|f| faces(&f)).collect())
}

/// No output frame shows a face the detector finds in the input frame at the same time.
/// Frames written black (failing closed) show nothing and are not searched.
fn assert_no_leak(input: &Path, output: &Path) {
    assert_same_frame_times(input, output);
    let before = clip_faces();
    assert!(before.iter().any(|f| !f.is_empty()), "the clip shows faces");
    let (mut n, mut leaked) = (0, Vec::new());
    for (i, after) in Frames::open(output).enumerate() {
        n += 1;
        if after.as_raw().iter().all(|v| *v < 24) {
            continue;
        }
        leaked.extend(faces(&after).into_iter().filter(|d| before[i].iter().any(|f| f.bbox.iou(&d.bbox) > 0.3)));
    }
    assert_eq!(n, before.len(), "frames decoded from {}", output.display());
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
    assert!(status.success(), "blurgate stream: {status}: {err}");
    assert!(sent.success(), "ffmpeg sender: {sent}");
    assert!(err.contains("stream: in "), "once-a-second counters on stderr: {err}");

    let st = json(&stats);
    assert_eq!(st["ended"], "input-ended", "{st:#}");
    assert_eq!((st["frames_in"].as_u64(), st["frames_out"].as_u64()), (Some(FRAMES), Some(FRAMES)), "{st:#}");
    assert!(st["frames_redacted"].as_u64().unwrap() > 0, "{st:#}");
    assert_eq!(st["muxer"], "mpegts");
    let bound = st["latency_bound_ms"].as_f64().unwrap();
    let p95 = st["latency_ms"]["p95"].as_f64().unwrap();
    assert!(bound <= 1000.0 && p95 > 0.0 && p95 < bound, "added latency p95 {p95} ms, bound {bound} ms: {st:#}");

    assert_audio_in_sync(&input, &out);
    assert_no_leak(&input, &out);

    let events = audit_events(&audit);
    let tracks: Vec<&Value> = events.iter().filter(|e| e["type"] == "stream-track").collect();
    assert!(!tracks.is_empty() && tracks.iter().all(|t| t["action"] == "redacted"), "{events:?}");
    let last = events.last().unwrap();
    assert_eq!((last["type"].as_str(), last["frames_out"].as_u64()), (Some("stream"), Some(FRAMES)), "{last}");
    let text = std::fs::read_to_string(&audit).unwrap();
    assert!(!text.contains("embedding") && !text.contains("landmarks"), "no biometrics in the audit log");
}

#[test]
fn a_detector_that_cannot_keep_up_thins_out_then_blanks_frames_never_leaks() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let input = clip("pan.mp4");
    let (out, stats, audit) = (dir.join("out.ts"), dir.join("stats.json"), dir.join("audit.jsonl"));
    // 300 ms per detection against 40 ms per frame: even every 4th frame is too slow.
    let (status, err) = stream(
        dir,
        &[
            s(&input),
            s(&out),
            "--realtime",
            "--speed",
            "fast",
            "--test-detect-delay-ms",
            "300",
            "--max-detect-every",
            "4",
            "--stats",
            s(&stats),
            "--audit",
            s(&audit),
            "-q",
        ],
    );
    assert!(status.success(), "blurgate stream: {status}: {err}");
    assert!(err.contains("detecting every") && err.contains("failing closed"), "said on stderr: {err}");
    assert!(!err.contains("stream: in "), "-q keeps the counters quiet: {err}");

    let st = json(&stats);
    assert!(st["detect_every_peak"].as_u64().unwrap() > 1, "{st:#}");
    assert_eq!(st["max_detect_every"], 4);
    assert!(st["frames_blanked"].as_u64().unwrap() > 0, "{st:#}");
    assert_eq!(st["frames_out"].as_u64(), Some(FRAMES), "every frame written, redacted or black: {st:#}");

    assert_no_leak(&input, &out);
    let events = audit_events(&audit);
    assert!(
        events.iter().any(|e| e["type"] == "stream-notice" && e["notice"].as_str().unwrap().contains("failing closed")),
        "fail-closed recorded in the audit log: {events:?}"
    );
}
