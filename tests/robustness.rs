//! Fail-closed behaviour under hostile input and interruption: decompression bombs, awkward
//! real-world files, SIGKILL at random moments with resume, symlinks, concurrent runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;

const MANIFEST: &str = blurgate::jobs::manifest::FILE_NAME;
use blurgate::report::{FileStatus, Report};

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut c = (data.len() as u32).to_be_bytes().to_vec();
    c.extend_from_slice(kind);
    c.extend_from_slice(data);
    let mut crc_input = kind.to_vec();
    crc_input.extend_from_slice(data);
    c.extend(crc32(&crc_input).to_be_bytes());
    c
}

/// Tiny files that declare enormous images.
fn bombs(dir: &Path) {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = 65535u32.to_be_bytes().to_vec();
    ihdr.extend(65535u32.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    png.extend(png_chunk(b"IHDR", &ihdr));
    png.extend(png_chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]));
    png.extend(png_chunk(b"IEND", &[]));
    std::fs::write(dir.join("bomb.png"), png).unwrap();
    // Baseline JPEG header declaring 65535×65535, three components, then end of image.
    let jpeg = [
        0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01,
        0x03, 0x11, 0x01, 0xFF, 0xD9,
    ];
    std::fs::write(dir.join("bomb.jpg"), jpeg).unwrap();
    // GIF whose logical screen and frame are 65535×65535.
    let mut gif = b"GIF89a".to_vec();
    gif.extend([0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00]);
    gif.extend([0x2C, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3B]);
    std::fs::write(dir.join("bomb.gif"), gif).unwrap();
}

#[test]
fn decompression_bombs_are_refused_before_allocation() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, out, report_path) = (tmp.path().join("in"), tmp.path().join("out"), tmp.path().join("r.json"));
    std::fs::create_dir(&src).unwrap();
    bombs(&src);
    std::fs::copy(fixture("photos/obama.jpg"), src.join("fine.jpg")).unwrap();
    let started = Instant::now();
    let o = blurgate(&["redact", s(&src), "--out", s(&out), "--report", s(&report_path), "-q"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // Allocating 65535² pixels would take many seconds and ~12 GiB; refusing takes none.
    assert!(started.elapsed() < Duration::from_secs(30));
    let report = read_report(&report_path);
    for name in ["bomb.png", "bomb.jpg", "bomb.gif"] {
        let f = report.files.iter().find(|f| f.input.ends_with(name)).unwrap();
        assert_eq!(f.status, FileStatus::Failed, "{name}");
        assert!(!out.join(name).exists());
    }
    assert!(out.join("fine.jpg").exists());
}

/// The awkward corpus from ../shared when it is there; otherwise generated equivalents.
fn awkward_inputs(tmp: &Path) -> PathBuf {
    let shared = root().join("../shared/fixtures/awkward");
    if shared.is_dir() {
        return shared;
    }
    let dir = tmp.join("awkward");
    std::fs::create_dir(&dir).unwrap();
    bombs(&dir);
    for name in ["obama.jpg", "t1.jpg", "biden.jpg"] {
        let bytes = std::fs::read(fixture(&format!("photos/{name}"))).unwrap();
        for (i, frac) in [0.1, 0.5, 0.9, 0.999].iter().enumerate() {
            std::fs::write(dir.join(format!("cut{i}_{name}")), &bytes[..(bytes.len() as f64 * frac) as usize]).unwrap();
        }
        let mut flipped = bytes.clone();
        let mid = flipped.len() / 2;
        flipped[mid..mid + 64].iter_mut().for_each(|b| *b = !*b);
        std::fs::write(dir.join(format!("corrupt_{name}")), flipped).unwrap();
    }
    let img = image::open(fixture("photos/astronaut.png")).unwrap();
    image::DynamicImage::ImageRgb16(img.to_rgb16()).save(dir.join("sixteen_bit.png")).unwrap();
    image::DynamicImage::ImageLumaA8(img.to_luma_alpha8()).save(dir.join("grey_alpha.png")).unwrap();
    img.save(dir.join("astronaut.bmp")).unwrap();
    img.save(dir.join("astronaut.gif")).unwrap();
    std::fs::write(dir.join("photo.heic"), b"\0\0\0\x18ftypheic").unwrap();
    dir
}

#[test]
fn awkward_files_are_redacted_or_refused_never_leaked() {
    let tmp = tempfile::tempdir().unwrap();
    let src = awkward_inputs(tmp.path());
    let (out, report_path) = (tmp.path().join("out"), tmp.path().join("r.json"));
    let started = Instant::now();
    let o = blurgate(&["redact", s(&src), "--out", s(&out), "--report", s(&report_path), "--policy", "all", "-q"]);
    assert!(o.status.code() == Some(0) || o.status.code() == Some(1), "{}", stderr(&o));
    assert!(started.elapsed() < Duration::from_secs(600), "the corpus must finish in bounded time");
    let report = read_report(&report_path);
    assert!(report.files.len() >= 20);
    for f in &report.files {
        let err = f.error.as_deref().unwrap_or("");
        assert!(!err.contains("internal error"), "{}: panicked: {err}", f.input);
        assert!(f.seconds < 120.0, "{}: took {} s", f.input, f.seconds);
        let rel = Path::new(&f.input).strip_prefix(&src).unwrap();
        match f.status {
            FileStatus::Failed => {
                assert!(!err.is_empty(), "{}: failed without a reason", f.input);
                assert!(!out.join(rel).exists(), "{}: failed but present in the output", f.input);
            }
            FileStatus::Redacted | FileStatus::Unchanged => {
                let written = std::fs::read(out.join(rel)).unwrap();
                // Readable, in a format known by its content, whatever the extension says.
                let decoded = blurgate::media::decode(&written, Default::default())
                    .unwrap_or_else(|e| panic!("{}: output unreadable: {e}", f.input));
                assert_eq!((Some(decoded.rgb.width()), Some(decoded.rgb.height())), (f.width, f.height), "{}", f.input);
            }
            FileStatus::Skipped => {
                assert!(f.reason.is_some(), "{}: skipped without a reason", f.input);
                assert!(!out.join(rel).exists(), "{}: skipped but present in the output", f.input);
            }
            FileStatus::Held | FileStatus::Violation => {
                panic!("{}: no register, nothing to hold; redact finds no violations", f.input)
            }
        }
    }
    // Nothing the corpus holds appears in the output unless it was checked (beside the
    // manifest redact writes of what it wrote).
    let listed: Vec<PathBuf> = report.files.iter().filter_map(|f| f.output.as_ref().map(PathBuf::from)).collect();
    assert!(out.join(MANIFEST).is_file());
    let written = walkdir::WalkDir::new(&out).into_iter().flatten().filter(|e| e.file_type().is_file());
    for entry in written.filter(|e| e.file_name() != MANIFEST) {
        assert!(
            listed.contains(&entry.path().to_path_buf()),
            "{} was written but not reported",
            entry.path().display()
        );
    }
}

#[test]
fn exif_orientation_corpus_comes_out_upright() {
    // Pillow's hopper with Orientation 2-8: once the tag is applied each equals hopper.jpg.
    let dir = root().join("../shared/fixtures/awkward/exif_orientation/hopper");
    if !dir.is_dir() {
        eprintln!("skipped: ../shared is not here (generated orientations are covered by tests/redact.rs)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let report_path = tmp.path().join("r.json");
    let o = blurgate(&[
        "redact",
        s(&dir),
        "--out",
        s(&out),
        "--tiles",
        "never",
        "--style",
        "fill",
        "-q",
        "--report",
        s(&report_path),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Filled masks may sit a pixel apart: compare what lies outside all of them.
    let masks: Vec<[f32; 4]> =
        read_report(&report_path).files.iter().flat_map(|f| f.faces.iter().filter_map(|x| x.mask)).collect();
    assert_eq!(masks.len(), 8, "one face in each of the eight photos");
    let outside = |x: u32, y: u32| {
        let (fx, fy) = (x as f32, y as f32);
        masks.iter().all(|m| fx < m[0] - 2.0 || fx >= m[2] + 2.0 || fy < m[1] - 2.0 || fy >= m[3] + 2.0)
    };
    let reference = rgb(&out.join("hopper.jpg"));
    for entry in std::fs::read_dir(&out).unwrap().flatten().filter(|e| e.file_name() != MANIFEST) {
        let img = rgb(&entry.path());
        assert_eq!(img.dimensions(), reference.dimensions(), "{}", entry.path().display());
        let diffs: Vec<u64> = (0..img.height())
            .flat_map(|y| (0..img.width()).map(move |x| (x, y)))
            .filter(|&(x, y)| outside(x, y))
            .map(|(x, y)| diff(&img, &reference, x, y) as u64)
            .collect();
        assert!(diffs.len() > 5000, "too little of the photo lies outside the faces");
        let mean = diffs.iter().sum::<u64>() as f64 / diffs.len() as f64;
        // The rotated copies were each encoded on their own: before blurgate touches them they
        // differ from hopper.jpg by about 14; a mirrored or turned copy differs by over 180.
        assert!(mean < 30.0, "{}: differs from the upright reference (mean {mean:.1})", entry.path().display());
    }
}

fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| (e.path().strip_prefix(dir).unwrap().to_path_buf(), std::fs::read(e.path()).unwrap()))
        .collect()
}

fn is_temporary(p: &Path) -> bool {
    let name = p.file_name().unwrap().to_string_lossy();
    name.starts_with('.') && name.ends_with(".tmp")
}

#[test]
fn killed_runs_never_leave_partial_files_and_resume_to_completion() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("event");
    std::fs::create_dir_all(src.join("day2")).unwrap();
    for (i, name) in
        ["t1.jpg", "obama.jpg", "biden.jpg", "obama3.jpg", "astronaut.png", "obama2.jpg"].iter().enumerate()
    {
        let sub = if i % 2 == 0 { "" } else { "day2" };
        std::fs::copy(fixture(&format!("photos/{name}")), src.join(sub).join(format!("{i}_{name}"))).unwrap();
    }
    let reference_out = tmp.path().join("reference");
    let started = Instant::now();
    let o = blurgate(&["redact", s(&src), "--out", s(&reference_out), "-j", "1", "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let full_run = started.elapsed();
    let reference = tree(&reference_out);
    assert_eq!(reference.len(), 7, "six photos and the manifest");
    assert!(reference.contains_key(Path::new(MANIFEST)));

    let out = tmp.path().join("publish");
    let spawn = || {
        command()
            .args(["redact", s(&src), "--out", s(&out), "-j", "1", "-q"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let check_final_names = || {
        for (rel, bytes) in tree(&out) {
            if !is_temporary(&rel) {
                assert_eq!(
                    Some(&bytes),
                    reference.get(&rel),
                    "{} under its final name differs from a complete run",
                    rel.display()
                );
            }
        }
    };
    let state = tmp.path().canonicalize().unwrap().join(".publish.blurgate");
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut kills = 0;
    // Twenty kills at random moments; runs that reach the end restart the job from scratch.
    for _ in 0..100 {
        if kills == 20 {
            break;
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_millis(seed % full_run.as_millis() as u64);
        let mut child = spawn();
        std::thread::sleep(delay);
        let killed = child.try_wait().unwrap().is_none();
        if killed {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
        check_final_names();
        if !killed {
            // The run got to the end: start the job over so later kills land mid-way again.
            std::fs::remove_dir_all(&out).unwrap();
            std::fs::remove_dir_all(&state).unwrap();
        }
    }
    assert_eq!(kills, 20, "twenty runs must be interrupted");
    // A last kill just after the first photo is finished, so the resumed run has work to skip.
    std::fs::remove_dir_all(&out).ok();
    let mut child = spawn();
    while tree(&out).keys().all(|p| is_temporary(p)) && child.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().ok();
    child.wait().unwrap();
    check_final_names();
    let report_path = tmp.path().join("final.json");
    let o = blurgate(&["redact", s(&src), "--out", s(&out), "--report", s(&report_path), "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let finished = tree(&out);
    assert_eq!(finished, reference, "the resumed run must complete the job exactly");
    let report: Report = read_report(&report_path);
    assert_eq!(report.summary.files, 6);
    assert!(report.files.iter().any(|f| f.resumed), "finished files are skipped on resume");
    assert!(report.files.iter().all(|f| f.status != FileStatus::Failed));
}

#[test]
fn symlinks_out_of_the_input_folder_are_not_followed_unless_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, outside) = (tmp.path().join("in"), tmp.path().join("private"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::copy(fixture("photos/obama.jpg"), outside.join("secret.jpg")).unwrap();
    std::fs::copy(fixture("photos/biden.jpg"), src.join("real.jpg")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.jpg"), src.join("link_out.jpg")).unwrap();
    std::os::unix::fs::symlink(src.join("real.jpg"), src.join("link_in.jpg")).unwrap();
    let out = tmp.path().join("out");
    let report = tmp.path().join("r.json");
    let o = blurgate(&["redact", s(&src), "--out", s(&out), "--report", s(&report), "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("link_out.jpg"), "the skipped link is named: {}", stderr(&o));
    let r = read_report(&report);
    let link = r.files.iter().find(|f| f.input.ends_with("link_out.jpg")).expect("the link is in the report");
    assert_eq!(link.status, FileStatus::Skipped);
    assert!(link.reason.as_deref().unwrap_or("").contains("symbolic link"), "{:?}", link.reason);
    assert!(out.join("real.jpg").exists() && out.join("link_in.jpg").exists());
    assert!(!out.join("link_out.jpg").exists());
    let out2 = tmp.path().join("out2");
    let o = blurgate(&["redact", s(&src), "--out", s(&out2), "--follow-symlinks", "-q"]);
    assert!(o.status.success());
    assert!(out2.join("link_out.jpg").exists());
}

#[test]
fn a_second_run_into_the_same_output_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("publish");
    std::fs::create_dir_all(&out).unwrap();
    let state = blurgate::jobs::state::state_dir(&out).unwrap();
    std::fs::create_dir_all(&state).unwrap();
    let lock = std::fs::File::create(state.join("lock")).unwrap();
    lock.lock().unwrap();
    let o = blurgate(&["redact", s(&fixture("photos/obama.jpg")), "--out", s(&out), "-q"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("another blurgate run"), "{}", stderr(&o));
    assert!(!out.join("obama.jpg").exists());
    drop(lock);
    let o = blurgate(&["redact", s(&fixture("photos/obama.jpg")), "--out", s(&out), "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
}
