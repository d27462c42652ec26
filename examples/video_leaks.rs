//! Frames that show a face after `blurgate redact`: for each clip, redacts it (timed, with the
//! arguments given after `--`), then runs the detector at the photo defaults on every frame of
//! the input and of the output and counts the frames where a face the input shows (score at
//! least `--score`, default 0.5) is still found in the output at the same place (IoU at least
//! 0.3) with its detail: its box keeps at least half of the input's fine detail (Laplacian
//! energy). A blurred head can still look like a face to the detector; its features are gone,
//! and it is counted apart ("found blurred"). Frames are matched in presentation order (the
//! two have the same frames: redact checks).
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

/// Overlap between an output face and an input face for it to be the same face.
const SAME_FACE_IOU: f32 = 0.3;
/// Share of the input face's fine detail (Laplacian energy) the output must keep for the face
/// to count as left with its detail (a blur of a twentieth of the face keeps far less).
const DETAIL_KEPT: f64 = 0.5;

/// Fine detail in `b`: the mean squared Laplacian of the grey image inside the box.
fn detail(img: &image::RgbImage, b: &FaceBox) -> f64 {
    let grey = |x: u32, y: u32| {
        let p = img.get_pixel(x, y).0;
        0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64
    };
    let (x1, y1) = ((b.x1.max(1.0)) as u32, (b.y1.max(1.0)) as u32);
    let (x2, y2) = ((b.x2 as u32).min(img.width() - 1), (b.y2 as u32).min(img.height() - 1));
    let (mut sum, mut n) = (0.0, 0u32);
    for y in y1..y2 {
        for x in x1..x2 {
            let l = 4.0 * grey(x, y) - grey(x - 1, y) - grey(x + 1, y) - grey(x, y - 1) - grey(x, y + 1);
            sum += l * l;
            n += 1;
        }
    }
    sum / n.max(1) as f64
}

fn main() -> Result<()> {
    let (mut score, mut verbose) = (0.5f32, false);
    let (mut clips, mut redact_args, mut against) = (Vec::new(), Vec::new(), None::<PathBuf>);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--score" => score = args.next().context("--score needs a number")?.parse()?,
            "--verbose" => verbose = true,
            // An output made elsewhere (a `blurgate stream` recording) checked against one clip.
            "--against" => against = Some(args.next().context("--against needs a file")?.into()),
            "--" => redact_args.extend(args.by_ref()),
            "-h" | "--help" => {
                println!("usage: video_leaks [--score S] [--verbose] [--against OUTPUT] CLIP... [-- REDACT-ARGS...]");
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
        "{:<44} {:>7} {:>12} {:>14} {:>10} {:>13}   (faces: score >= {score} at the photo defaults)",
        "clip", "frames", "input faces", "leaking frames", "frames/s", "found blurred"
    );
    for clip in &clips {
        let name = clip.file_name().context("a clip has a file name")?;
        let started = Instant::now();
        let redacted = match &against {
            Some(output) => output.clone(),
            None => {
                let out = tmp.path().join("out");
                let _ = std::fs::remove_dir_all(&out);
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
                if !status.success() {
                    println!("{:<44} redact failed ({status})", clip.display());
                    continue;
                }
                out.join(name)
            }
        };
        let seconds = started.elapsed().as_secs_f64();
        // Per frame: the faces found, each with the detail inside the boxes `at` (the input's
        // faces, once known) or its own.
        let faces = |path: &Path, at: Option<&Vec<Vec<(Detection, f64)>>>| -> Result<Vec<Vec<(Detection, f64)>>> {
            let mut all = Vec::new();
            scan(path, |mut frame| -> Result<()> {
                let rgb = frame.upright_rgb(None)?;
                let found: Vec<Detection> = detector.detect(&rgb)?.into_iter().filter(|d| d.score >= score).collect();
                let boxes: Vec<Detection> = match at {
                    Some(input) => input.get(all.len()).map_or(Vec::new(), |f| f.iter().map(|(d, _)| *d).collect()),
                    None => found.clone(),
                };
                let details: Vec<f64> = boxes.iter().map(|d| detail(&rgb, &d.bbox)).collect();
                // The output's entries: its detections, then the detail at each input face.
                let mut entries: Vec<(Detection, f64)> = found.into_iter().map(|d| (d, 0.0)).collect();
                if at.is_some() {
                    entries.extend(boxes.into_iter().zip(details).map(|(d, e)| (Detection { score: -1.0, ..d }, e)));
                } else {
                    entries.iter_mut().zip(details).for_each(|(entry, e)| entry.1 = e);
                }
                all.push(entries);
                Ok(())
            })?;
            Ok(all)
        };
        let before = faces(clip, None)?;
        let after = faces(&redacted, Some(&before))?;
        if before.len() != after.len() {
            println!("{:<44} frame counts differ: {} in, {} out", clip.display(), before.len(), after.len());
            continue;
        }
        let same = |a: &FaceBox, b: &FaceBox| a.iou(b) >= SAME_FACE_IOU;
        let (mut leaking_frames, mut leaking_faces, mut blurred) = (0, 0, 0);
        for (i, (b, a)) in before.iter().zip(&after).enumerate() {
            let (found, kept): (Vec<_>, Vec<_>) = a.iter().partition(|(d, _)| d.score >= 0.0);
            let mut leaking: Vec<&Detection> = Vec::new();
            for ((f, energy), (_, left)) in b.iter().zip(&kept) {
                if found.iter().any(|(o, _)| same(&f.bbox, &o.bbox)) {
                    if *left >= DETAIL_KEPT * energy {
                        leaking.push(f);
                    } else {
                        blurred += 1;
                    }
                }
            }
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
            "{:<44} {:>7} {:>12} {:>8} ({:>3}) {:>10.2} {:>13}",
            clip.display(),
            before.len(),
            input_faces,
            leaking_frames,
            leaking_faces,
            // No redact ran for an output given with --against.
            if against.is_some() { f64::NAN } else { before.len() as f64 / seconds },
            blurred
        );
    }
    Ok(())
}
