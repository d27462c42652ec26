//! Frames that show a face after `blurgate redact`: for each clip, redacts it (timed, with the
//! arguments given after `--`), then runs the detector at the photo defaults on every frame of
//! the input and of the output and counts the frames where a face the input shows (score at
//! least `--score`, default 0.5) is still found in the output at the same place (IoU at least
//! 0.3), frames matched in presentation order (the two have the same frames: redact checks).
//! `scripts/video_leaks.sh` runs it over the set-up clips and `../shared`'s.
//!
//!   cargo run --release --example video_leaks -- [--score S] CLIP... [-- REDACT-ARGS...]
//!
//! Prints, per clip: frames, faces in the input, leaking frames (and leaking faces), and the
//! redact run's frames/s; with `--verbose`, each leaking face.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use blurgate::detect::{Detection, Detector, DetectorOptions, FaceBox};
use blurgate::media::video::scan;
use blurgate::models::ModelDir;

/// Overlap between an output face and an input face for it to be the same face, unredacted.
const SAME_FACE_IOU: f32 = 0.3;

fn main() -> Result<()> {
    let (mut score, mut verbose) = (0.5f32, false);
    let (mut clips, mut redact_args) = (Vec::new(), Vec::new());
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--score" => score = args.next().context("--score needs a number")?.parse()?,
            "--verbose" => verbose = true,
            "--" => redact_args.extend(args.by_ref()),
            "-h" | "--help" => {
                println!("usage: video_leaks [--score S] [--verbose] CLIP... [-- REDACT-ARGS...]");
                return Ok(());
            }
            _ => clips.push(PathBuf::from(a)),
        }
    }
    if clips.is_empty() {
        bail!("no clips given (usage: video_leaks [--score S] [--verbose] CLIP... [-- REDACT-ARGS...])");
    }
    let blurgate = std::env::current_exe()?.parent().and_then(Path::parent).context("no target dir")?.join("blurgate");
    let dir = ModelDir::locate(None)?;
    let options = DetectorOptions::default();
    let model = dir.model(options.precision.model())?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let detector =
        Detector::try_new(dir.init_runtime()?, &model.path, DetectorOptions { threads_per_session: cores, ..options })?;
    let tmp = tempfile::tempdir()?;
    println!(
        "{:<44} {:>7} {:>12} {:>14} {:>10}   (faces: score >= {score} at the photo defaults)",
        "clip", "frames", "input faces", "leaking frames", "frames/s"
    );
    for clip in &clips {
        let out = tmp.path().join("out");
        let _ = std::fs::remove_dir_all(&out);
        let started = Instant::now();
        let status = Command::new(&blurgate)
            .arg("-q")
            .arg("redact")
            .arg(clip)
            .arg("--out")
            .arg(&out)
            .arg("--fresh")
            .args(&redact_args)
            .status()
            .with_context(|| format!("running {}", blurgate.display()))?;
        let seconds = started.elapsed().as_secs_f64();
        let name = clip.file_name().context("a clip has a file name")?;
        if !status.success() {
            println!("{:<44} redact failed ({status})", clip.display());
            continue;
        }
        let faces = |path: &Path| -> Result<Vec<Vec<Detection>>> {
            let mut all = Vec::new();
            scan(path, |mut frame| -> Result<()> {
                let rgb = frame.upright_rgb(None)?;
                all.push(detector.detect(&rgb)?.into_iter().filter(|d| d.score >= score).collect());
                Ok(())
            })?;
            Ok(all)
        };
        let before = faces(clip)?;
        let after = faces(&out.join(name))?;
        if before.len() != after.len() {
            println!("{:<44} frame counts differ: {} in, {} out", clip.display(), before.len(), after.len());
            continue;
        }
        let same = |a: &FaceBox, b: &FaceBox| a.iou(b) >= SAME_FACE_IOU;
        let (mut leaking_frames, mut leaking_faces) = (0, 0);
        for (i, (b, a)) in before.iter().zip(&after).enumerate() {
            let leaking: Vec<&Detection> = b.iter().filter(|f| a.iter().any(|o| same(&f.bbox, &o.bbox))).collect();
            let leaks = leaking.len();
            if verbose && leaks > 0 {
                let what: Vec<String> = leaking
                    .iter()
                    .map(|d| {
                        format!(
                            "{:.0}x{:.0} at ({:.0}, {:.0}) score {:.2}",
                            d.bbox.width(),
                            d.bbox.height(),
                            d.bbox.x1,
                            d.bbox.y1,
                            d.score
                        )
                    })
                    .collect();
                println!("  frame {i}: {}", what.join("; "));
            }
            leaking_faces += leaks;
            leaking_frames += usize::from(leaks > 0);
        }
        let input_faces: usize = before.iter().map(Vec::len).sum();
        println!(
            "{:<44} {:>7} {:>12} {:>8} ({:>3}) {:>10.2}",
            clip.display(),
            before.len(),
            input_faces,
            leaking_frames,
            leaking_faces,
            before.len() as f64 / seconds
        );
    }
    Ok(())
}
