//! The opt-out register end to end: enrol, selective redaction, participants' rights, audit.

use std::path::{Path, PathBuf};

use crate::common::*;
use blurgate::matching::{Decision, ThresholdSource, DEFAULT_TARGET_FAR};
use blurgate::report::{Action, FileStatus};
use image::{imageops, RgbImage};

/// obama2 and biden side by side, lossless: the person to enrol and somebody else.
fn two_people(dir: &Path) -> PathBuf {
    let a = rgb(&fixture("photos/obama2.jpg"));
    let b = rgb(&fixture("photos/biden.jpg"));
    let h = 600;
    let a = imageops::resize(&a, a.width() * h / a.height(), h, imageops::FilterType::Triangle);
    let b = imageops::resize(&b, b.width() * h / b.height(), h, imageops::FilterType::Triangle);
    let mut both = RgbImage::new(a.width() + b.width(), h);
    imageops::replace(&mut both, &a, 0, 0);
    imageops::replace(&mut both, &b, a.width() as i64, 0);
    let path = dir.join("two_people.png");
    both.save(&path).unwrap();
    path
}

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    register: PathBuf,
    photo: PathBuf,
}

fn enrolled(extra: &[&str]) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let register = dir.join("optouts.reg");
    let photo = two_people(&dir);
    let mut args = vec!["enroll", "--register", s(&register), "--id", "P-0042", "--label", "Quiet Person Label"];
    args.extend_from_slice(extra);
    let obama = fixture("photos/obama.jpg");
    args.push(s(&obama));
    let o = blurgate(&args);
    assert!(o.status.success(), "enroll failed: {}", stderr(&o));
    assert!(stderr(&o).contains("blurgate-keys"), "a new register says where its key went: {}", stderr(&o));
    Fixture { _tmp: tmp, dir, register, photo }
}

fn redact(f: &Fixture, name: &str, extra: &[&str]) -> (std::process::Output, blurgate::report::Report, PathBuf) {
    let out = f.dir.join(name);
    let report = f.dir.join(format!("{name}.json"));
    let mut args =
        vec!["redact", s(&f.photo), "--out", s(&out), "--report", s(&report), "--register", s(&f.register), "-q"];
    args.extend_from_slice(extra);
    let o = blurgate(&args);
    (o, read_report(&report), out.join("two_people.png"))
}

/// Faces ordered left to right: obama2 first, biden second.
fn faces_left_to_right(r: &blurgate::report::Report) -> Vec<blurgate::report::FaceReport> {
    let mut faces = r.files[0].faces.clone();
    faces.sort_by(|a, b| a.bbox[0].total_cmp(&b.bbox[0]));
    assert_eq!(faces.len(), 2, "two faces: {:?}", faces.iter().map(|f| f.bbox).collect::<Vec<_>>());
    faces
}

/// Is every pixel of the face's box identical in the two images?
fn identical_in(a: &RgbImage, b: &RgbImage, bbox: [f32; 4]) -> bool {
    let [x1, y1, x2, y2] = bbox.map(|v| v as u32);
    (y1..y2.min(a.height())).all(|y| (x1..x2.min(a.width())).all(|x| a.get_pixel(x, y) == b.get_pixel(x, y)))
}

#[test]
fn opt_out_is_redacted_and_the_other_face_is_untouched() {
    let f = enrolled(&[]);
    let (o, report, out) = redact(&f, "out", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let faces = faces_left_to_right(&report);
    assert_eq!((faces[0].decision, faces[0].action), (Some(Decision::Matched), Action::Redacted));
    assert_eq!(faces[0].person.as_deref(), Some("P-0042"));
    assert!(faces[0].similarity.unwrap() >= report.thresholds.unwrap().matched);
    assert_eq!((faces[1].decision, faces[1].action), (Some(Decision::Unknown), Action::Kept));
    assert!(faces[1].person.is_none());
    let (before, after) = (rgb(&f.photo), rgb(&out));
    assert!(!identical_in(&before, &after, faces[0].bbox), "the enrolled face must change");
    assert!(identical_in(&before, &after, faces[1].bbox), "the other face must be byte-identical");
    // Reports never carry embeddings or labels.
    let text = std::fs::read_to_string(f.dir.join("out.json")).unwrap();
    assert!(!text.contains("Quiet Person Label") && !text.contains("embedding"));
}

#[test]
fn opt_out_in_a_jpeg_leaves_the_other_face_exactly_as_it_was() {
    // Recognition decodes a JPEG in full, but the output is still rewritten block by block.
    let f = enrolled(&[]);
    let photo = f.dir.join("two_people.jpg");
    rgb(&f.photo).save(&photo).unwrap();
    let (out, report_path) = (f.dir.join("jpeg-out"), f.dir.join("jpeg.json"));
    let o = blurgate(&[
        "redact",
        s(&photo),
        "--out",
        s(&out),
        "--report",
        s(&report_path),
        "--register",
        s(&f.register),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let faces = faces_left_to_right(&read_report(&report_path));
    assert_eq!((faces[0].decision, faces[0].action), (Some(Decision::Matched), Action::Redacted));
    assert_eq!(faces[1].action, Action::Kept);
    let (before, after) = (rgb(&photo), rgb(&out.join("two_people.jpg")));
    assert!(!identical_in(&before, &after, faces[0].bbox), "the enrolled face must change");
    assert!(identical_in(&before, &after, faces[1].bbox), "the other face must decode exactly as before");
}

#[test]
fn consented_only_redacts_everyone_else() {
    let f = enrolled(&["--consents"]);
    let (o, report, out) = redact(&f, "out", &["--policy", "consented-only"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let faces = faces_left_to_right(&report);
    assert_eq!((faces[0].decision, faces[0].action), (Some(Decision::Matched), Action::Kept));
    assert_eq!(faces[1].action, Action::Redacted);
    let (before, after) = (rgb(&f.photo), rgb(&out));
    assert!(identical_in(&before, &after, faces[0].bbox), "the consenting person stays as they were");
    assert!(!identical_in(&before, &after, faces[1].bbox));
}

#[test]
fn after_forget_nobody_is_redacted() {
    let f = enrolled(&[]);
    let o = blurgate(&["forget", "--register", s(&f.register), "--id", "P-0042"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let digests: Vec<&str> =
        text.lines().filter(|l| l.contains("sha256")).map(|l| l.rsplit(' ').next().unwrap()).collect();
    assert_eq!(digests.len(), 2, "{text}");
    assert_ne!(digests[0], digests[1]);
    assert_eq!(digests[1].len(), 64);
    let (o, report, _) = redact(&f, "after", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(report.files[0].status, FileStatus::Unchanged);
    assert!(report.files[0].faces.iter().all(|x| x.action == Action::Kept && x.person.is_none()));
    // Forgetting an unknown id changes nothing and says so.
    let again = blurgate(&["forget", "--register", s(&f.register), "--id", "P-0042"]);
    assert_eq!(again.status.code(), Some(2));
}

#[test]
fn register_file_holds_no_plaintext_and_refuses_tampering() {
    let f = enrolled(&[]);
    let bytes = std::fs::read(&f.register).unwrap();
    let m = models();
    let obama = rgb(&fixture("photos/obama.jpg"));
    let face = m.detector.detect(&obama).unwrap()[0];
    let e = m.embedder.embed(&obama, &[face.landmarks]).unwrap().pop().unwrap();
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    for needle in ["Quiet Person Label", "P-0042", "embeddings", "promotion"] {
        assert!(!contains(needle.as_bytes()), "register holds `{needle}` in plain text");
    }
    for v in &e.values()[..8] {
        assert!(!contains(&v.to_le_bytes()) && !contains(format!("{v}").as_bytes()), "embedding value in plain text");
    }
    let o = blurgate(&["register", "list", "--register", s(&f.register)]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("P-0042"));

    let mut tampered = bytes.clone();
    let mid = tampered.len() / 2;
    tampered[mid] ^= 0x01;
    std::fs::write(&f.register, &tampered).unwrap();
    let o = blurgate(&["register", "list", "--register", s(&f.register)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("altered"), "{}", stderr(&o));
    std::fs::write(&f.register, &bytes).unwrap();
    let elsewhere = tempfile::tempdir().unwrap(); // a key inside the register's folder is refused
    let wrong = elsewhere.path().join("wrong.key");
    std::fs::write(&wrong, "00".repeat(32)).unwrap();
    let o = blurgate(&["register", "list", "--register", s(&f.register), "--key-file", s(&wrong)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("wrong key"), "{}", stderr(&o));
}

#[test]
fn expired_entries_do_not_match_and_are_purged() {
    let f = enrolled(&["--expires", "2020-01-31"]);
    let (o, report, _) = redact(&f, "out", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(report.files[0].faces.iter().all(|x| x.action == Action::Kept), "an expired entry must not match");
    let o = blurgate(&["register", "purge-expired", "--register", s(&f.register)]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("P-0042"), "{}", stderr(&o));
    let o = blurgate(&["register", "list", "--register", s(&f.register)]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("P-0042"));
}

#[test]
fn uncertain_matches_can_be_held_back() {
    let f = enrolled(&[]);
    // Thresholds that make the true match merely uncertain.
    let (o, report, out) =
        redact(&f, "held", &["--match-threshold", "0.99", "--uncertain-threshold", "0.3", "--hold-uncertain"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("held for review"));
    assert_eq!(report.files[0].status, FileStatus::Held);
    assert!(report.files[0].review);
    assert!(!out.exists(), "a held file is not written");
    let (o, report, out) = redact(&f, "flagged", &["--match-threshold", "0.99", "--uncertain-threshold", "0.3"]);
    assert!(o.status.success());
    let faces = faces_left_to_right(&report);
    assert_eq!((faces[0].decision, faces[0].action), (Some(Decision::Uncertain), Action::Redacted));
    assert!(report.files[0].review && out.exists());
}

#[test]
fn find_lists_the_files_that_show_the_person() {
    let f = enrolled(&[]);
    let search = f.dir.join("archive");
    std::fs::create_dir(&search).unwrap();
    std::fs::copy(&f.photo, search.join("two_people.png")).unwrap();
    std::fs::copy(fixture("photos/obama3.jpg"), search.join("obama3.jpg")).unwrap();
    std::fs::copy(fixture("photos/biden.jpg"), search.join("biden.jpg")).unwrap();
    let report_path = f.dir.join("access.json");
    let o = blurgate(&[
        "find",
        "--register",
        s(&f.register),
        "--id",
        "P-0042",
        s(&search),
        "--report",
        s(&report_path),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        stdout.contains("two_people.png") && stdout.contains("obama3.jpg") && !stdout.contains("biden.jpg"),
        "{stdout}"
    );
    let report = read_report(&report_path);
    let hits: Vec<_> = report.files.iter().filter(|x| !x.faces.is_empty()).map(|x| x.input.clone()).collect();
    assert_eq!(hits.len(), 2, "{hits:?}");
}

#[test]
fn audit_log_is_chained_and_an_edit_is_caught() {
    let f = enrolled(&[]);
    let audit = f.dir.join("audit.jsonl");
    let (o, _, _) = redact(&f, "out", &["--audit", s(&audit)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = blurgate(&["forget", "--register", s(&f.register), "--id", "P-0042", "--audit", s(&audit)]);
    assert!(o.status.success());
    let text = std::fs::read_to_string(&audit).unwrap();
    assert_eq!(text.lines().count(), 2);
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let event = &first["event"];
    assert_eq!(event["input_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(event["output_sha256"].as_str().unwrap().len(), 64);
    // The detector the default preset runs (int8 CenterFace).
    assert_eq!(event["models"]["centerface_int8"].as_str().unwrap().len(), 64);
    assert_eq!(event["models"]["sface"].as_str().unwrap().len(), 64);
    assert_eq!(event["policy"], "opt-outs");
    assert!(event["thresholds"]["matched"].as_f64().is_some());
    assert_eq!(
        (&event["thresholds"]["source"], &event["thresholds"]["people"]),
        (&serde_json::json!("model"), &serde_json::json!(1))
    );
    assert!(event["faces"].as_array().unwrap().iter().any(|x| x["person"] == "P-0042" && x["decision"] == "matched"));
    assert!(!text.contains("Quiet Person Label") && !text.contains("embedding"));

    let ok = blurgate(&["audit", "verify", s(&audit)]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stdout));
    std::fs::write(&audit, text.replacen("\"matched\"", "\"unknown\"", 1)).unwrap();
    let broken = blurgate(&["audit", "verify", s(&audit)]);
    assert_eq!(broken.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&broken.stdout).contains("line 1"), "{}", String::from_utf8_lossy(&broken.stdout));
}

#[test]
fn enrolment_refuses_a_group_photo_without_pick() {
    let tmp = tempfile::tempdir().unwrap();
    let register = tmp.path().join("r.reg");
    let group = fixture("photos/t1.jpg");
    let o = blurgate(&["enroll", "--register", s(&register), "--id", "x", s(&group)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--pick largest"), "{}", stderr(&o));
    assert!(!register.exists(), "nothing is written when enrolment is refused");
    let o = blurgate(&["enroll", "--register", s(&register), "--id", "x", "--pick", "largest", s(&group)]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Photos of two different people are refused, unless forced (then with a warning).
    let (obama, biden) = (fixture("photos/obama.jpg"), fixture("photos/biden.jpg"));
    let o = blurgate(&["enroll", "--register", s(&register), "--id", "y", s(&obama), s(&biden)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("different people") && stderr(&o).contains("--force"), "{}", stderr(&o));
    let o = blurgate(&["enroll", "--register", s(&register), "--id", "y", "--force", s(&obama), s(&biden)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("different people"), "{}", stderr(&o));
}

#[test]
fn enrolment_refuses_a_small_or_blurred_face_with_its_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let register = tmp.path().join("r.reg");
    let obama = rgb(&fixture("photos/obama.jpg"));
    let small = tmp.path().join("small.png");
    imageops::resize(&obama, obama.width() / 8, obama.height() / 8, imageops::FilterType::Triangle)
        .save(&small)
        .unwrap();
    let blurred = tmp.path().join("blurred.png");
    imageops::blur(&obama, 6.0).save(&blurred).unwrap();
    for (photo, reason) in [(&small, "too small"), (&blurred, "blurred")] {
        let o = blurgate(&["enroll", "--register", s(&register), "--id", "x", s(photo)]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains(reason), "{reason}: {}", stderr(&o));
        assert!(!register.exists(), "nothing is written when enrolment is refused");
    }
}

/// A register of three people (obama, the astronaut, the largest face of t1).
fn register_of_three(dir: &Path) -> PathBuf {
    let register = dir.join("three.reg");
    for (id, photo, extra) in [
        ("P-1", "photos/obama.jpg", None),
        ("P-2", "photos/astronaut.png", None),
        ("P-3", "photos/t1.jpg", Some("--pick")),
    ] {
        let photo = fixture(photo);
        let mut args = vec!["enroll", "--register", s(&register), "--id", id];
        if let Some(flag) = extra {
            args.extend([flag, "largest"]);
        }
        args.push(s(&photo));
        let o = blurgate(&args);
        assert!(o.status.success(), "{id}: {}", stderr(&o));
    }
    register
}

#[test]
fn with_several_people_registered_a_stranger_is_unknown_and_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let register = register_of_three(tmp.path());
    let photo = two_people(tmp.path());
    let (out, report_path) = (tmp.path().join("out"), tmp.path().join("r.json"));
    let o = blurgate(&["redact", s(&photo), "--out", s(&out), "--report", s(&report_path), "--register", s(&register)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("0 faces uncertain"), "the summary counts uncertain faces: {}", stderr(&o));
    let report = read_report(&report_path);
    let t = report.thresholds.expect("thresholds recorded");
    assert_eq!((t.source, t.people, t.target_far), (ThresholdSource::Model, 3, Some(DEFAULT_TARGET_FAR)));
    let faces = faces_left_to_right(&report);
    assert_eq!((faces[0].decision, faces[0].person.as_deref()), (Some(Decision::Matched), Some("P-1")));
    assert_eq!(
        (faces[1].decision, faces[1].action),
        (Some(Decision::Unknown), Action::Kept),
        "biden is nobody in the register"
    );
    assert!(faces[1].similarity.unwrap() < t.uncertain);
    let (before, after) = (rgb(&photo), rgb(&out.join("two_people.png")));
    assert!(identical_in(&before, &after, faces[1].bbox), "the stranger's face is unchanged");
    assert!(!identical_in(&before, &after, faces[0].bbox));
}

#[test]
fn an_enrolled_person_in_a_group_photo_is_redacted_and_the_group_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let register = tmp.path().join("r.reg");
    let o = blurgate(&["enroll", "--register", s(&register), "--id", "P-7", s(&fixture("photos/obama.jpg"))]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The t1 group with obama3 standing beside it, as a JPEG.
    let group = rgb(&fixture("photos/t1.jpg"));
    let obama = rgb(&fixture("photos/obama3.jpg"));
    let obama = imageops::resize(
        &obama,
        obama.width() * group.height() / obama.height(),
        group.height(),
        imageops::FilterType::Triangle,
    );
    let mut both = RgbImage::new(group.width() + obama.width(), group.height());
    imageops::replace(&mut both, &group, 0, 0);
    imageops::replace(&mut both, &obama, group.width() as i64, 0);
    let photo = tmp.path().join("group.jpg");
    both.save(&photo).unwrap();
    let (out, report_path) = (tmp.path().join("out"), tmp.path().join("r.json"));
    let o = blurgate(&[
        "redact",
        s(&photo),
        "--out",
        s(&out),
        "--report",
        s(&report_path),
        "--register",
        s(&register),
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report = read_report(&report_path);
    let faces = &report.files[0].faces;
    assert!(faces.len() >= 5, "{faces:?}");
    let (enrolled, others): (Vec<_>, Vec<_>) = faces.iter().partition(|f| f.bbox[0] >= group.width() as f32);
    assert_eq!(enrolled.len(), 1);
    assert_eq!((enrolled[0].decision, enrolled[0].action), (Some(Decision::Matched), Action::Redacted));
    let (before, after) = (rgb(&photo), rgb(&out.join("group.jpg")));
    assert!(!identical_in(&before, &after, enrolled[0].bbox));
    for f in others {
        assert_eq!((f.decision, f.action), (Some(Decision::Unknown), Action::Kept), "{f:?}");
        assert!(identical_in(&before, &after, f.bbox), "a group member's face is rewritten exactly as it was");
    }
}
