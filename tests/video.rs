//! `blurgate redact` on videos, end to end: the clips scripts/setup.sh makes from the fixture
//! photos (fixtures/generated/videos/), checked with the real detector on every frame and with
//! ffprobe / ffmpeg on everything that must not change.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::*;
use blurgate::detect::Detection;
use blurgate::matching::Decision;
use blurgate::report::{Action, FileStatus};
use image::RgbImage;
use serde_json::Value;

pub(crate) fn clip(name: &str) -> PathBuf {
    fixture(&format!("generated/videos/{name}"))
}

pub(crate) fn ffprobe(path: &Path, args: &[&str]) -> Value {
    let o = Command::new("ffprobe")
        .args(["-v", "error", "-of", "json"])
        .args(args)
        .arg(path)
        .output()
        .expect("ffprobe runs (scripts/setup.sh installs it)");
    assert!(o.status.success(), "ffprobe {}: {}", path.display(), String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// What must survive redaction.
#[derive(Debug, PartialEq)]
struct Timing {
    /// Per stream: kind, codec (audio only), time base and frame rate.
    streams: Vec<(String, String, String)>,
    /// The video frames' presentation times.
    pts: Vec<String>,
    start: String,
    duration: String,
    rotation: Option<i64>,
}

fn timing(path: &Path) -> Timing {
    let s = ffprobe(path, &["-show_streams", "-show_format"]);
    let streams = s["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|st| {
            let kind = st["codec_type"].as_str().unwrap().to_string();
            let codec = if kind == "audio" { st["codec_name"].as_str().unwrap().to_string() } else { String::new() };
            (kind, codec, format!("{} {}", st["time_base"], st["avg_frame_rate"]))
        })
        .collect();
    let rotation =
        s["streams"][0]["side_data_list"].as_array().and_then(|l| l.iter().find_map(|d| d["rotation"].as_i64()));
    let f = ffprobe(path, &["-select_streams", "v:0", "-show_entries", "frame=best_effort_timestamp_time"]);
    let pts = f["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|fr| fr["best_effort_timestamp_time"].as_str().unwrap().to_string())
        .collect();
    let format = &s["format"];
    Timing { streams, pts, start: format["start_time"].to_string(), duration: format["duration"].to_string(), rotation }
}

/// Checksums of the audio packets, as `ffmpeg -f framemd5` lists them.
fn audio_md5(path: &Path) -> Vec<String> {
    let o = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:a", "-c", "copy", "-f", "framemd5", "-"])
        .output()
        .unwrap();
    assert!(o.status.success());
    String::from_utf8(o.stdout).unwrap().lines().filter(|l| !l.starts_with('#')).map(str::to_string).collect()
}

/// The upright frames of a video, one at a time, in presentation order (ffmpeg applies the
/// display matrix; `-vsync passthrough` keeps one picture per frame).
pub(crate) struct Frames {
    child: std::process::Child,
    size: (u32, u32),
}

impl Frames {
    pub(crate) fn open(path: &Path) -> Frames {
        let s = ffprobe(path, &["-select_streams", "v:0", "-show_streams"]);
        let st = &s["streams"][0];
        let (w, h) = (st["width"].as_u64().unwrap() as u32, st["height"].as_u64().unwrap() as u32);
        let turned = st["side_data_list"]
            .as_array()
            .and_then(|l| l.iter().find_map(|d| d["rotation"].as_i64()))
            .is_some_and(|r| r.rem_euclid(180) == 90);
        let child = Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(path)
            .args(["-map", "0:v:0", "-vsync", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        Frames { child, size: if turned { (h, w) } else { (w, h) } }
    }
}

impl Iterator for Frames {
    type Item = RgbImage;
    fn next(&mut self) -> Option<RgbImage> {
        let (w, h) = self.size;
        let mut buf = vec![0u8; (w * h * 3) as usize];
        self.child.stdout.as_mut().unwrap().read_exact(&mut buf).ok()?;
        RgbImage::from_raw(w, h, buf)
    }
}

/// Faces the detector is sure of.
pub(crate) fn faces(img: &RgbImage) -> Vec<Detection> {
    models().detector.detect(img).unwrap().into_iter().filter(|d| d.score >= 0.5).collect()
}

/// Frame by frame: how many faces the input shows, and the faces of the output found where
/// the input had one (leaks).
pub(crate) fn leaks(input: &Path, output: &Path) -> (usize, Vec<(usize, Detection)>) {
    let (mut shown, mut leaked) = (0, Vec::new());
    let mut n = 0;
    for (i, (before, after)) in Frames::open(input).zip(Frames::open(output)).enumerate() {
        let found = faces(&before);
        shown += found.len();
        for d in faces(&after) {
            if found.iter().any(|f| f.bbox.iou(&d.bbox) > 0.3) {
                leaked.push((i, d));
            }
        }
        n += 1;
    }
    assert!(n > 0, "no frames decoded");
    (shown, leaked)
}

#[test]
fn every_face_is_gone_from_every_frame_and_everything_else_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, report) = (tmp.path().join("out"), tmp.path().join("r.json"));
    let input = clip("pan.mp4");
    let r = redact_ok(&input, &out, &report, &[]);
    let f = &r.files[0];
    let output = out.join("pan.mp4");
    assert_eq!(f.status, FileStatus::Redacted, "{f:?}");
    let v = f.video.as_ref().expect("a video report");
    assert_eq!((v.frames, v.fps, v.rotation, v.encoder.as_deref(), v.crf), (100, 25.0, 0, Some("libx264"), Some(18)));
    let actions: Vec<(&str, &str)> = v.streams.iter().map(|s| (s.kind.as_str(), s.action.as_str())).collect();
    assert_eq!(actions, [("video", "redacted"), ("audio", "copied")]);
    assert!(v.tracks.len() >= 6, "six people: {:?}", v.tracks);
    for t in &v.tracks {
        assert_eq!(t.action, Action::Redacted);
        assert!(t.frames_redacted > t.last_frame - t.first_frame, "{t:?}");
    }
    assert_eq!(f.faces.len(), v.tracks.len(), "one face entry per track");
    assert_eq!(f.output_sha256.as_deref(), Some(sha256_of(&output).as_str()));

    assert_eq!(timing(&input), timing(&output), "streams, frame times, start, duration");
    assert_eq!(audio_md5(&input), audio_md5(&output), "audio packets copied as they were");
    let (shown, leaked) = leaks(&input, &output);
    assert!(shown >= 500, "the input shows about six faces a frame: {shown}");
    assert!(leaked.is_empty(), "faces left in the output: {leaked:?}");
}

fn sha256_of(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    format!("{:x}", Sha256::digest(std::fs::read(path).unwrap()))
}

#[test]
fn rotation_variable_frame_rate_and_odd_sizes_are_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, report) = (tmp.path().join("out"), tmp.path().join("r.json"));
    let dir = tmp.path().join("in");
    std::fs::create_dir(&dir).unwrap();
    for name in ["rotated.mp4", "vfr.mkv"] {
        std::fs::copy(clip(name), dir.join(name)).unwrap();
    }
    let r = redact_ok(&dir, &out, &report, &["--strip-audio"]);
    for name in ["rotated.mp4", "vfr.mkv"] {
        let (input, output) = (dir.join(name), out.join(name));
        let f = r.files.iter().find(|f| f.input.ends_with(name)).unwrap();
        assert_eq!(f.status, FileStatus::Redacted, "{name}: {f:?}");
        assert!(f.video.as_ref().unwrap().tracks.len() >= 5, "{name}: faces found upright");
        assert_eq!(timing(&input), timing(&output), "{name}");
        let (shown, leaked) = leaks(&input, &output);
        assert!(shown > 0 && leaked.is_empty(), "{name}: {shown} faces shown, left: {leaked:?}");
    }
    let rotated = r.files.iter().find(|f| f.input.ends_with("rotated.mp4")).unwrap();
    let v = rotated.video.as_ref().unwrap();
    // Stored 360x640, shown 640x360: faces are looked for and reported upright.
    assert_eq!((v.rotation, rotated.width, rotated.height), (270, Some(640), Some(360)));
    assert_eq!(timing(&out.join("rotated.mp4")).rotation, Some(90), "the display matrix is kept");
    let vfr = ffprobe(&out.join("vfr.mkv"), &["-show_streams"]);
    let st = &vfr["streams"][0];
    assert_eq!((st["width"].as_u64(), st["height"].as_u64()), (Some(427), Some(239)));
    // H.264 cannot subsample chroma along an odd side: 4:4:4 keeps every pixel.
    assert_eq!(st["pix_fmt"].as_str(), Some("yuv444p"));
}

/// obama2 and biden side by side, panned for two seconds: the person to enrol and somebody
/// else.
fn two_people_clip(dir: &Path) -> PathBuf {
    use image::imageops;
    let a = rgb(&fixture("photos/obama2.jpg"));
    let b = rgb(&fixture("photos/biden.jpg"));
    let h = 400;
    let a = imageops::resize(&a, a.width() * h / a.height(), h, imageops::FilterType::Triangle);
    let b = imageops::resize(&b, b.width() * h / b.height(), h, imageops::FilterType::Triangle);
    let mut both = RgbImage::new(a.width() + b.width() + 100, h + 60);
    imageops::replace(&mut both, &a, 50, 30);
    imageops::replace(&mut both, &b, 50 + a.width() as i64, 30);
    let still = dir.join("two.png");
    both.save(&still).unwrap();
    let video = dir.join("two.mp4");
    let (w, hh) = (both.width() / 2 * 2 - 40, both.height() / 2 * 2 - 40);
    let o = Command::new("ffmpeg")
        .args(["-v", "error", "-loop", "1", "-i"])
        .arg(&still)
        .args([
            "-vf",
            &format!("crop={w}:{hh}:x='20+20*sin(t*2)':y='20',format=yuv420p"),
            "-t",
            "2",
            "-r",
            "25",
            "-c:v",
            "libx264",
            "-crf",
            "18",
        ])
        .arg(&video)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    video
}

#[test]
fn with_a_register_the_opt_out_is_redacted_in_every_frame_and_the_other_face_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let register = dir.join("optouts.reg");
    let obama = fixture("photos/obama.jpg");
    run_ok(&["enroll", "--register", s(&register), "--id", "P-0042", "--label", "Quiet Person", s(&obama)]);
    let input = two_people_clip(dir);
    let (out, report) = (dir.join("out"), dir.join("r.json"));
    let r = redact_ok(&input, &out, &report, &["--register", s(&register)]);
    let f = &r.files[0];
    let v = f.video.as_ref().unwrap();
    let mut tracks = v.tracks.clone();
    tracks.retain(|t| t.detections >= 10);
    assert_eq!(tracks.len(), 2, "two people followed: {:?}", v.tracks);
    let opted: Vec<_> = v.tracks.iter().filter(|t| t.person.as_deref() == Some("P-0042")).collect();
    assert!(!opted.is_empty(), "the enrolled person is named: {:?}", v.tracks);
    for t in &opted {
        assert_eq!((t.decision, t.action), (Some(Decision::Matched), Action::Redacted), "{t:?}");
    }
    assert_eq!(opted.iter().map(|t| t.frames_redacted).max(), Some(v.frames), "redacted in every frame");
    assert!(
        v.tracks.iter().any(|t| t.decision == Some(Decision::Unknown) && t.action == Action::Kept),
        "the other person is kept: {:?}",
        v.tracks
    );

    // Frame by frame: the enrolled person's face is found in the input and never in the
    // output; the other face is found in both, at the same place.
    let output = out.join("two.mp4");
    let mut frames = 0;
    for (before, after) in Frames::open(&input).zip(Frames::open(&output)) {
        frames += 1;
        let mut found = faces(&before);
        found.sort_by(|a, b| a.bbox.x1.total_cmp(&b.bbox.x1));
        assert_eq!(found.len(), 2, "frame {frames}: two faces in the input");
        let left = faces(&after);
        assert!(!left.iter().any(|d| d.bbox.iou(&found[0].bbox) > 0.3), "frame {frames}: the opt-out shows");
        assert!(
            left.iter().any(|d| d.bbox.iou(&found[1].bbox) > 0.7),
            "frame {frames}: the other face must still show"
        );
        let b = found[1].bbox;
        let (mut sum, mut n) = (0u64, 0u64);
        for y in b.y1 as u32..(b.y2 as u32).min(before.height()) {
            for x in b.x1 as u32..(b.x2 as u32).min(before.width()) {
                sum += diff(&before, &after, x, y) as u64;
                n += 1;
            }
        }
        assert!((sum as f64 / n as f64) < 12.0, "frame {frames}: the kept face changed beyond re-encoding");
    }
    assert_eq!(frames, v.frames);
}

#[test]
fn broken_videos_fail_cleanly_and_leave_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("in");
    std::fs::create_dir(&dir).unwrap();
    let whole = std::fs::read(clip("pan.mp4")).unwrap();
    std::fs::write(dir.join("truncated.mp4"), &whole[..whole.len() / 2]).unwrap();
    std::fs::write(dir.join("garbage.mp4"), (0..20_000u32).map(|i| (i * 7919 % 251) as u8).collect::<Vec<_>>())
        .unwrap();
    let o = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac"])
        .arg(dir.join("no_video.mp4"))
        .output()
        .unwrap();
    assert!(o.status.success());
    let (out, report) = (tmp.path().join("out"), tmp.path().join("r.json"));
    let o = blurgate(&["redact", s(&dir), "--out", s(&out), "--report", s(&report), "-q"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let r = read_report(&report);
    assert_eq!(r.files.len(), 3);
    for f in &r.files {
        assert_eq!(
            (f.status, f.error_kind.as_deref(), &f.output),
            (FileStatus::Failed, Some("decode"), &None),
            "{f:?}"
        );
    }
    let no_video = r.files.iter().find(|f| f.input.ends_with("no_video.mp4")).unwrap();
    assert!(no_video.error.as_deref().unwrap().contains("no video stream"), "{no_video:?}");
    let left: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".blurgate-manifest.json")
        .collect();
    assert!(left.is_empty(), "nothing of a failed video (nor a temporary) is left: {left:?}");
}

/// The shared corpus (only where `../shared/fixtures/videos/` exists): the codec variants, the
/// event clip and the rotated clip are redacted with their frame count, frame times (Theora in
/// Ogg counts frames, so it closes gaps; WebM may move by the Opus pre-skip) and rotation kept; the broken ones fail. The two
/// longest clips are left to the benchmark.
#[test]
fn shared_video_corpus() {
    let corpus = root().join("../shared/fixtures/videos");
    if !corpus.is_dir() {
        eprintln!("skipped: no {}", corpus.display());
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("in");
    let mut chosen = Vec::new();
    for entry in walk(&corpus) {
        let rel = entry.strip_prefix(&corpus).unwrap().to_path_buf();
        let name = rel.to_string_lossy().into_owned();
        if name.ends_with(".tsv") || name.contains("hikers") || name.contains("marathon") {
            continue;
        }
        std::fs::create_dir_all(dir.join(&rel).parent().unwrap()).unwrap();
        std::fs::copy(&entry, dir.join(&rel)).unwrap();
        chosen.push(name);
    }
    let (out, report) = (tmp.path().join("out"), tmp.path().join("r.json"));
    let args = ["--detect-every", "3", "--video-max-side", "480"];
    let o = blurgate(&[&["redact", s(&dir), "--out", s(&out), "--report", s(&report), "-q"][..], &args].concat());
    assert_eq!(o.status.code(), Some(1), "the broken ones fail: {}", stderr(&o));
    let r = read_report(&report);
    let mut videos = 0;
    for rel in chosen.iter().filter(|n| !n.ends_with(".gif")) {
        let f = r.files.iter().find(|f| f.input.ends_with(rel.as_str())).unwrap();
        if rel.starts_with("broken/") {
            assert_eq!((f.status, &f.output), (FileStatus::Failed, &None), "{rel}: {f:?}");
            assert!(!out.join(rel).exists(), "{rel}");
            continue;
        }
        assert!(matches!(f.status, FileStatus::Redacted | FileStatus::Unchanged), "{rel}: {f:?}");
        videos += 1;
        let (a, b) = (timing(&dir.join(rel)), timing(&out.join(rel)));
        assert_eq!((a.pts.len(), a.rotation), (b.pts.len(), b.rotation), "{rel}: frame count and rotation");
        if !rel.ends_with(".ogg") {
            // FFmpeg 5.1's Matroska muxer moves the video by the Opus pre-skip (7 ms), as
            // `ffmpeg -c copy` does: the spacing of the frames is what must match.
            let t = |v: &[String]| v.iter().map(|x| x.parse::<f64>().unwrap()).collect::<Vec<_>>();
            let (ta, tb) = (t(&a.pts), t(&b.pts));
            let shift = tb[0] - ta[0];
            assert!(shift.abs() <= 0.0075, "{rel}: frames moved by {shift} s");
            assert!(ta.iter().zip(&tb).all(|(x, y)| (y - x - shift).abs() < 1e-6), "{rel}: frame times {ta:?} {tb:?}");
        }
    }
    assert!(videos >= 9, "the clips were read as videos: {chosen:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files.extend(walk(&p));
        } else {
            files.push(p);
        }
    }
    files.sort();
    files
}
