//! `blurgate check`, the publication gate: redact's own outputs pass (vouched for by the
//! sealed manifest), a weakly blurred or altered copy is searched and its faces reported, and a
//! new opt-out makes the next check find exactly the files that show that person.

use std::path::Path;
use std::process::Output;

use blurgate::report::{FileStatus, Report};
use image::{imageops, GenericImageView};

use crate::common::*;

/// `blurgate check ARGS... --report DIR/NAME.json`: its output and report.
fn check(dir: &Path, name: &str, args: &[&str]) -> (Output, Report) {
    let report = dir.join(format!("{name}.json"));
    let mut all = vec!["-q", "check"];
    all.extend_from_slice(args);
    all.extend(["--report", s(&report)]);
    let o = blurgate(&all);
    assert!(report.is_file(), "{name}: no report: {}", stderr(&o));
    (o, read_report(&report))
}

fn status_of(r: &Report, name: &str) -> FileStatus {
    r.files.iter().find(|f| f.input.ends_with(name)).unwrap_or_else(|| panic!("{name} not listed")).status
}

/// The photo with every face box blurred by a Gaussian of σ = 1/40 of the face's height: a
/// redaction too weak to hide anyone.
fn weakly_blurred(photo: &Path, faces: &[[f32; 4]], out: &Path) {
    let mut img = image::open(photo).unwrap();
    for b in faces {
        let (x, y) = (b[0].max(0.0) as u32, b[1].max(0.0) as u32);
        let (w, h) = ((b[2] - b[0]) as u32, (b[3] - b[1]) as u32);
        let region = img.view(x, y, w.min(img.width() - x), h.min(img.height() - y)).to_image();
        let blurred = imageops::blur(&region, (b[3] - b[1]) / 40.0);
        imageops::replace(&mut img, &blurred, x as i64, y as i64);
    }
    img.save(out).unwrap();
}

#[test]
fn redacted_outputs_pass_and_weak_or_altered_copies_are_found() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, out, weak) = (tmp.path().join("in"), tmp.path().join("publish"), tmp.path().join("weak"));
    std::fs::create_dir_all(&input).unwrap();
    std::fs::create_dir_all(&weak).unwrap();
    for name in ["obama.jpg", "biden.jpg", "t1.jpg"] {
        std::fs::copy(fixture(&format!("photos/{name}")), input.join(name)).unwrap();
    }
    let redacted = redact_ok(&input, &out, &tmp.path().join("redact.json"), &[]);

    // redact's own output: every file vouched for, exit 0.
    let junit = tmp.path().join("junit.xml");
    let (o, r) = check(tmp.path(), "clean", &[s(&out), "--junit", s(&junit)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let photos: Vec<_> = r.files.iter().filter(|f| f.status != FileStatus::Skipped).collect();
    assert_eq!(photos.len(), 3);
    assert!(photos.iter().all(|f| f.vouched && f.status == FileStatus::Unchanged), "{photos:?}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("the JUnit file parses");
    assert_eq!(doc.root_element().attribute("failures"), Some("0"));
    assert_eq!(doc.descendants().filter(|n| n.has_tag_name("testcase")).count(), r.files.len());

    // A weak blur (σ = 1/40 of the face) of the same photo: searched, its face reported.
    let obama = redacted.files.iter().find(|f| f.input.ends_with("obama.jpg")).unwrap();
    let boxes: Vec<[f32; 4]> = obama.faces.iter().map(|f| f.bbox).collect();
    weakly_blurred(&input.join("obama.jpg"), &boxes, &weak.join("obama.jpg"));
    let (o, r) = check(tmp.path(), "weak", &[s(&weak), "--format", "github", "--junit", s(&junit)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(status_of(&r, "obama.jpg"), FileStatus::Violation);
    assert!(!r.files[0].faces.is_empty() && !r.files[0].vouched);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.starts_with("::error file=") && stdout.contains("obama.jpg"), "{stdout}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("the JUnit file parses");
    assert_eq!(doc.root_element().attribute("failures"), Some("1"));

    // A published file replaced after redact (here by its original): not vouched, found.
    std::fs::copy(input.join("biden.jpg"), out.join("biden.jpg")).unwrap();
    let (o, r) = check(tmp.path(), "altered", &[s(&out)]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(status_of(&r, "biden.jpg"), FileStatus::Violation);
    assert_eq!(status_of(&r, "obama.jpg"), FileStatus::Unchanged);
}

#[test]
fn a_new_opt_out_makes_check_find_exactly_the_files_that_show_them() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, out) = (tmp.path().join("in"), tmp.path().join("publish"));
    std::fs::create_dir_all(&input).unwrap();
    for name in ["obama.jpg", "biden.jpg"] {
        std::fs::copy(fixture(&format!("photos/{name}")), input.join(name)).unwrap();
    }
    let register = tmp.path().join("optouts.reg");
    run_ok(&["enroll", "--register", s(&register), "--id", "P-1", s(&fixture("photos/obama2.jpg"))]);

    // Unredacted photos: only the opted-out person is a finding.
    let (o, r) = check(tmp.path(), "originals", &[s(&input), "--register", s(&register)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(status_of(&r, "obama.jpg"), FileStatus::Violation);
    assert_eq!(status_of(&r, "biden.jpg"), FileStatus::Unchanged);
    let finding = &r.files.iter().find(|f| f.input.ends_with("obama.jpg")).unwrap().faces[0];
    assert_eq!(finding.person.as_deref(), Some("P-1"));

    // Published with that register: passes.
    redact_ok(&input, &out, &tmp.path().join("redact.json"), &["--register", s(&register)]);
    let (o, _) = check(tmp.path(), "published", &[s(&out), "--register", s(&register)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // Someone else withdraws consent: the register changed, so everything is searched again,
    // and only the file that shows the new person is a finding.
    run_ok(&["enroll", "--register", s(&register), "--id", "P-2", s(&fixture("photos/biden.jpg"))]);
    let (o, r) = check(tmp.path(), "withdrawn", &[s(&out), "--register", s(&register)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(status_of(&r, "biden.jpg"), FileStatus::Violation);
    assert_eq!(status_of(&r, "obama.jpg"), FileStatus::Unchanged, "obama's face was redacted when published");
    let found: Vec<_> = r.files.iter().flat_map(|f| &f.faces).filter_map(|f| f.person.as_deref()).collect();
    assert_eq!(found, ["P-2"]);
}

#[test]
fn a_video_is_checked_track_by_track_and_redacts_own_output_passes() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, out) = (tmp.path().join("in"), tmp.path().join("publish"));
    std::fs::create_dir_all(&input).unwrap();
    std::fs::copy(fixture("generated/videos/pan.mp4"), input.join("pan.mp4")).unwrap();

    let (o, r) = check(tmp.path(), "video", &[s(&input)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let f = &r.files[0];
    assert_eq!(f.status, FileStatus::Violation);
    assert!(!f.faces.is_empty());
    for face in &f.faces {
        let (frame, time) = (face.frame.expect("a video finding names its frame"), face.time.expect("and its time"));
        assert!((time - frame as f64 / 25.0).abs() < 0.05, "frame {frame} at {time} s in a 25 fps clip");
    }
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("pan.mp4") && stdout.contains(" s) at "), "{stdout}");

    redact_ok(&input, &out, &tmp.path().join("redact.json"), &[]);
    let (o, r) = check(tmp.path(), "published", &[s(&out)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(r.files.iter().any(|f| f.input.ends_with("pan.mp4") && f.vouched));
}
