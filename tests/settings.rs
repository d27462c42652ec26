//! The command line's settings: `blurgate.toml` and its precedence under flags, `--dry-run`,
//! and the kind of each failure in the report.

use std::path::Path;
use std::process::Output;

use blurgate::detect::Speed;
use blurgate::report::FileStatus;

use crate::common::*;

/// blurgate run in `dir` (where a `blurgate.toml` is picked up).
fn blurgate_in(dir: &Path, args: &[&str]) -> Output {
    command().current_dir(dir).env_remove("BLURGATE_CONFIG").args(args).output().expect("blurgate runs")
}

/// Mean brightness of the report's first face box in the output.
fn face_brightness(report: &Path, output: &Path) -> f64 {
    let r = read_report(report);
    let b = face_box(r.files[0].faces[0].bbox);
    let img = rgb(output);
    let (x0, y0, x1, y1) = (b.x1 as u32 + 4, b.y1 as u32 + 4, b.x2 as u32 - 4, b.y2 as u32 - 4);
    let mut sum = 0.0;
    for y in y0..y1 {
        for x in x0..x1 {
            sum += img.get_pixel(x, y).0.iter().map(|&c| c as f64).sum::<f64>() / 3.0;
        }
    }
    sum / ((x1 - x0) * (y1 - y0)) as f64
}

#[test]
fn the_settings_file_sets_options_and_flags_override_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::copy(fixture("photos/obama.jpg"), dir.join("obama.jpg")).unwrap();
    std::fs::write(
        dir.join("blurgate.toml"),
        "[detection]\nspeed = \"fast\"\n\n[render]\nstyle = \"fill\"\nboxes = true\n",
    )
    .unwrap();

    let o = blurgate_in(dir, &["-q", "redact", "obama.jpg", "--out", "a", "--report", "a.json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let a = read_report(&dir.join("a.json"));
    assert_eq!(a.detection.as_ref().unwrap().speed, Speed::Fast, "speed from the file");
    assert!(face_brightness(&dir.join("a.json"), &dir.join("a/obama.jpg")) < 8.0, "fill from the file: a black face");

    let o = blurgate_in(dir, &["-q", "redact", "obama.jpg", "--out", "b", "--report", "b.json", "--style", "blur"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let b = read_report(&dir.join("b.json"));
    assert_eq!(
        b.detection.as_ref().unwrap().speed,
        Speed::Fast,
        "what the flags leave alone still comes from the file"
    );
    assert!(face_brightness(&dir.join("b.json"), &dir.join("b/obama.jpg")) > 40.0, "--style blur wins over the file");

    // --config names another file; the working folder's is then not read.
    std::fs::write(dir.join("other.toml"), "[detection]\nspeed = \"thorough\"\n").unwrap();
    let o =
        blurgate_in(dir, &["-q", "--config", "other.toml", "redact", "obama.jpg", "--out", "c", "--report", "c.json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read_report(&dir.join("c.json")).detection.unwrap().speed, Speed::Thorough);

    // A typo is an error, not a silent default.
    std::fs::write(dir.join("blurgate.toml"), "[render]\nstyel = \"fill\"\n").unwrap();
    let o = blurgate_in(dir, &["-q", "redact", "obama.jpg", "--out", "d"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("styel"), "{}", stderr(&o));
    assert!(!dir.join("d").exists());
}

#[test]
fn a_dry_run_decides_everything_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let inputs = tmp.path().join("in");
    std::fs::create_dir(&inputs).unwrap();
    std::fs::copy(fixture("photos/obama.jpg"), inputs.join("obama.jpg")).unwrap();
    let bytes = std::fs::read(fixture("photos/biden.jpg")).unwrap();
    std::fs::write(inputs.join("cut.jpg"), &bytes[..bytes.len() / 2]).unwrap();
    let out = tmp.path().join("out");
    let (report, audit) = (tmp.path().join("dry.json"), tmp.path().join("audit.jsonl"));
    let args = |extra: &[&str]| {
        let mut a = vec!["-q", "redact", inputs.to_str().unwrap(), "--out", out.to_str().unwrap()];
        a.extend_from_slice(extra);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let dry = args(&["--dry-run", "--report", report.to_str().unwrap(), "--audit", audit.to_str().unwrap()]);
    let o = blurgate(&dry.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(1), "the refused file still fails the run: {}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.lines().any(|l| l.starts_with("write\t") && l.contains("obama.jpg")), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("refuse\t") && l.contains("cut.jpg")), "{stdout}");
    assert!(!out.exists(), "no output folder");
    assert!(!audit.exists(), "no audit record");
    let state: Vec<_> =
        std::fs::read_dir(tmp.path()).unwrap().flatten().filter(|e| e.file_name() == ".out.blurgate").collect();
    assert!(state.is_empty(), "no run state");

    let r = read_report(&report);
    assert!(r.dry_run);
    let by_name = |n: &str| r.files.iter().find(|f| f.input.ends_with(n)).unwrap().clone();
    let (obama, cut) = (by_name("obama.jpg"), by_name("cut.jpg"));
    assert_eq!(obama.status, FileStatus::Redacted);
    assert_eq!((cut.status, cut.error_kind.as_deref()), (FileStatus::Failed, Some("decode")));

    // The real run writes exactly what the dry run said it would.
    let real = args(&["--report", report.to_str().unwrap()]);
    blurgate(&real.iter().map(String::as_str).collect::<Vec<_>>());
    let written = blurgate::digest::sha256_hex(&std::fs::read(out.join("obama.jpg")).unwrap());
    assert_eq!(Some(written), obama.output_sha256);
}

#[test]
fn failures_say_what_kind_they_are() {
    let tmp = tempfile::tempdir().unwrap();
    let inputs = tmp.path().join("in");
    std::fs::create_dir(&inputs).unwrap();
    std::fs::copy(fixture("photos/obama.jpg"), inputs.join("big.jpg")).unwrap();
    std::fs::write(inputs.join("phone.heic"), b"\0\0\0\x18ftypheic").unwrap();
    std::fs::write(inputs.join("scan.jxl"), b"\xff\x0a not decoded").unwrap();
    std::fs::write(inputs.join("text.png"), b"not a picture at all").unwrap();
    let report = tmp.path().join("r.json");
    let o = blurgate(&[
        "-q",
        "redact",
        inputs.to_str().unwrap(),
        "--out",
        tmp.path().join("out").to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--max-dimension",
        "100",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--max-dimension raises the size limit"), "the CLI names the flag: {}", stderr(&o));
    let r = read_report(&report);
    let kind = |n: &str| r.files.iter().find(|f| f.input.ends_with(n)).unwrap().error_kind.clone();
    assert_eq!(kind("big.jpg").as_deref(), Some("limit"));
    assert_eq!(kind("phone.heic").as_deref(), Some("decode"), "a HEIC with no image in it");
    assert_eq!(kind("scan.jxl").as_deref(), Some("unsupported"));
    assert_eq!(kind("text.png").as_deref(), Some("decode"));
    assert!(!r.files.iter().any(|f| f.error.as_deref().unwrap_or("").contains("--")), "library messages name no flags");
}
