//! Object storage against a real S3-compatible server on 127.0.0.1 (s3s-fs, see
//! common::s3): bucket → bucket redact, check's exit codes and findings, the result cache,
//! a late opt-out fixed with --replace-published, shards, and an upload cut off half-way.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use blurgate::report::{FileStatus, Report};

use crate::common::s3::{self, S3};
use crate::common::*;

const PHOTOS: [&str; 3] = ["obama.jpg", "biden.jpg", "t1.jpg"];

/// blurgate against the test server; its output and, when `report` is named, its report.
fn run(s3: &S3, args: &[&str], report: Option<&Path>) -> (Output, Option<Report>) {
    let mut command = s3.command();
    command.arg("-q").args(args);
    if let Some(r) = report {
        command.arg("--report").arg(r);
    }
    let o = command.output().expect("blurgate runs");
    (o, report.filter(|r| r.is_file()).map(read_report))
}

fn sha256(path: &Path) -> String {
    blurgate::digest::sha256_hex(&std::fs::read(path).unwrap())
}

fn upload_photos(s3: &S3, bucket: &str, prefix: &str, names: &[&str]) {
    for name in names {
        s3.put_file(bucket, &format!("{prefix}/{name}"), &fixture(&format!("photos/{name}")));
    }
}

fn status_of(r: &Report, name: &str) -> FileStatus {
    r.files.iter().find(|f| f.input.ends_with(name)).unwrap_or_else(|| panic!("{name} not listed")).status
}

#[test]
fn bucket_to_bucket_redact_check_and_a_second_run_that_skips_everything() {
    let Some(s3) = s3::server() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let b = s3.bucket("events");
    upload_photos(s3, &b, "2026/in", &PHOTOS);
    let (input, out) = ("s3://events/2026/in", "s3://events/2026/publish");
    let cache = tmp.path().join("cache");
    let cache_args = ["--cache", s(&cache)];

    // The originals: every face is a finding, exit 1.
    let (o, r) = run(s3, &[&["check", input][..], &cache_args].concat(), Some(&tmp.path().join("c1.json")));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let r = r.unwrap();
    assert_eq!(r.summary.violations, 3, "{:?}", r.summary);
    assert!(r.files.iter().all(|f| f.input.starts_with("s3://events/2026/in/") && !f.faces.is_empty()));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("s3://events/2026/in/obama.jpg"), "findings name the objects: {stdout}");

    // Checked again: the cache knows every object (by ETag and size), nothing is downloaded.
    let (o, r) = run(s3, &[&["check", input][..], &cache_args].concat(), Some(&tmp.path().join("c2.json")));
    assert_eq!(o.status.code(), Some(1));
    let r = r.unwrap();
    assert_eq!((r.summary.cached, r.summary.violations), (3, 3), "{:?}", r.summary);

    // Bucket to bucket: every output is an object, its faces changed, the rest kept.
    let (o, r) = run(s3, &["redact", input, "--out", out], Some(&tmp.path().join("r1.json")));
    assert!(o.status.success(), "{}", stderr(&o));
    let r = r.unwrap();
    assert_eq!(r.summary.redacted, 3, "{:?}", r.summary);
    for name in PHOTOS {
        let f = r.files.iter().find(|f| f.input.ends_with(name)).unwrap();
        assert_eq!(f.output.as_deref(), Some(format!("{out}/{name}").as_str()));
        let written = s3.object_path(&b, &format!("2026/publish/{name}"));
        assert_eq!(f.output_sha256.as_deref(), Some(sha256(&written).as_str()));
        let (before, after) = (rgb(&fixture(&format!("photos/{name}"))), rgb(&written));
        let face = face_box(f.faces[0].bbox);
        let (cx, cy) = (((face.x1 + face.x2) / 2.0) as u32, ((face.y1 + face.y2) / 2.0) as u32);
        let changed = (0..8).filter(|i| diff(&before, &after, cx + i * 3, cy) > 30).count();
        assert!(changed >= 4, "{name}: the face centre is not redacted");
        assert!(diff(&before, &after, 2, 2) < 40, "{name}: the corner changed");
    }
    assert!(s3.keys(&b, "2026/publish").iter().any(|k| k.ends_with(".blurgate-manifest.json")));

    // The published prefix passes the gate (vouched for by redact's manifest); JUnit parses.
    let junit = tmp.path().join("junit.xml");
    let (o, r) = run(s3, &["check", out, "--junit", s(&junit)], Some(&tmp.path().join("c3.json")));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(r.unwrap().summary.violations, 0);
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("JUnit parses");
    let cases: Vec<_> = doc.descendants().filter(|n| n.has_tag_name("testcase")).collect();
    let photos = cases.iter().filter(|c| !c.children().any(|n| n.has_tag_name("skipped"))).count();
    assert_eq!((cases.len(), photos), (4, 3), "one test case per file, the manifest skipped: {xml}");
    assert!(!doc.descendants().any(|n| n.has_tag_name("failure")), "{xml}");

    // The same redact again: every file resumed, nothing written again.
    let mtime = |name: &str| std::fs::metadata(s3.object_path(&b, &format!("2026/publish/{name}"))).unwrap().modified();
    let before: Vec<_> = PHOTOS.iter().map(|n| mtime(n).unwrap()).collect();
    let (o, r) = run(s3, &["redact", input, "--out", out], Some(&tmp.path().join("r2.json")));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(r.unwrap().summary.resumed, 3);
    assert_eq!(PHOTOS.iter().map(|n| mtime(n).unwrap()).collect::<Vec<_>>(), before);
}

#[test]
fn a_late_opt_out_is_found_in_the_bucket_and_replace_published_fixes_exactly_those_files() {
    let Some(s3) = s3::server() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let b = s3.bucket("site");
    upload_photos(s3, &b, "in", &["obama.jpg", "biden.jpg"]);
    let register = tmp.path().join("optouts.reg");
    run_ok(&["enroll", "--register", s(&register), "--id", "P-1", s(&fixture("photos/obama2.jpg"))]);
    let reg = ["--register", s(&register)];

    // Published with the register of the day: passes.
    let (o, _) = run(s3, &[&["redact", "s3://site/in", "--out", "s3://site/www"][..], &reg].concat(), None);
    assert!(o.status.success(), "{}", stderr(&o));
    let (o, _) = run(s3, &[&["check", "s3://site/www"][..], &reg].concat(), None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // Someone withdraws consent after publication: check lists exactly the file showing them.
    run_ok(&["enroll", "--register", s(&register), "--id", "P-2", s(&fixture("photos/biden.jpg"))]);
    let (o, r) = run(s3, &[&["check", "s3://site/www"][..], &reg].concat(), Some(&tmp.path().join("late.json")));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let r = r.unwrap();
    assert_eq!(status_of(&r, "biden.jpg"), FileStatus::Violation);
    assert_eq!(status_of(&r, "obama.jpg"), FileStatus::Unchanged);
    let found: Vec<_> = r.files.iter().flat_map(|f| &f.faces).filter_map(|f| f.person.as_deref()).collect();
    assert_eq!(found, ["P-2"]);

    // Replace what shows them, keep the original elsewhere, audit it.
    let published = |name: &str| s3.object_path(&b, &format!("www/{name}"));
    let (biden_before, obama_before) =
        (std::fs::read(published("biden.jpg")).unwrap(), sha256(&published("obama.jpg")));
    let audit = tmp.path().join("audit.jsonl");
    let args = ["redact", "--replace-published", "s3://site/www", "--keep-originals", "s3://site/originals"];
    let (o, r) = run(s3, &[&args[..], &reg, &["--audit", s(&audit)]].concat(), Some(&tmp.path().join("replace.json")));
    assert!(o.status.success(), "{}", stderr(&o));
    let r = r.unwrap();
    assert_eq!(r.summary.replaced, 1, "{:?}", r.summary);
    let biden = r.files.iter().find(|f| f.input.ends_with("biden.jpg")).unwrap();
    assert!(biden.replaced && biden.status == FileStatus::Redacted);
    assert_eq!(sha256(&published("obama.jpg")), obama_before, "a file without the new opt-out is left byte for byte");
    assert_ne!(std::fs::read(published("biden.jpg")).unwrap(), biden_before);
    assert_eq!(std::fs::read(s3.object_path(&b, "originals/biden.jpg")).unwrap(), biden_before, "original kept");
    assert_eq!(s3.keys(&b, "originals"), ["originals/biden.jpg"]);
    let log = std::fs::read_to_string(&audit).unwrap();
    let replaced: Vec<_> =
        log.lines().filter(|l| l.contains("--replace-published") && l.contains("biden.jpg")).collect();
    assert_eq!(replaced.len(), 1, "{log}");

    // The gate passes again.
    let (o, r) = run(s3, &[&["check", "s3://site/www"][..], &reg].concat(), Some(&tmp.path().join("after.json")));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(r.unwrap().summary.violations, 0);
}

#[test]
fn three_shards_write_what_one_process_writes_each_file_once() {
    let Some(s3) = s3::server() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let b = s3.bucket("archive");
    let names = ["obama.jpg", "biden.jpg", "t1.jpg", "obama2.jpg", "obama3.jpg", "astronaut.png"];
    upload_photos(s3, &b, "in", &names);

    let (o, _) = run(s3, &["redact", "s3://archive/in", "--out", "s3://archive/one", "-j", "1"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    // Three processes at once, as an Indexed Job would run them.
    let shards: Vec<_> = (0..3)
        .map(|i| {
            let report = tmp.path().join(format!("shard-{i}.json"));
            let mut command = s3.command();
            let shard = format!("{i}/3");
            command.args(["-q", "redact", "s3://archive/in", "--out", "s3://archive/three", "-j", "1"]);
            command.args(["--shard", &shard, "--report", s(&report)]);
            (command.spawn().unwrap(), report)
        })
        .collect();
    let mut reports = Vec::new();
    for (mut child, report) in shards {
        assert!(child.wait().unwrap().success());
        reports.push(report);
    }
    let sizes: Vec<usize> = reports.iter().map(|r| read_report(r).files.len()).collect();
    assert_eq!(sizes.iter().sum::<usize>(), names.len(), "each file in exactly one shard: {sizes:?}");

    let strip = |keys: Vec<String>, prefix: &str| -> BTreeSet<String> {
        keys.into_iter().filter(|k| !k.contains(".blurgate-manifest")).map(|k| k[prefix.len()..].to_string()).collect()
    };
    let (one, three) = (strip(s3.keys(&b, "one"), "one/"), strip(s3.keys(&b, "three"), "three/"));
    assert_eq!(one.len(), names.len());
    assert_eq!(one, three, "the shards wrote the same set of outputs");
    for key in &one {
        let (a, c) = (s3.object_path(&b, &format!("one/{key}")), s3.object_path(&b, &format!("three/{key}")));
        assert_eq!(sha256(&a), sha256(&c), "{key}: same bytes");
    }

    // The shards' reports merge into one; a report given twice is refused.
    let merged = tmp.path().join("merged.json");
    let mut args = vec!["report", "merge", "--out", s(&merged)];
    args.extend(reports.iter().map(|r| s(r)));
    run_ok(&args);
    let m = read_report(&merged);
    assert_eq!(
        (m.summary.files, m.summary.redacted),
        (names.len(), m.files.iter().filter(|f| !f.faces.is_empty()).count())
    );
    let o = blurgate(&["report", "merge", "--out", s(&tmp.path().join("bad.json")), s(&reports[0]), s(&reports[0])]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("in two of the reports"), "{}", stderr(&o));

    // Each shard vouched for its own files in its own manifest: the gate passes on all of them.
    let (o, r) = run(s3, &["check", "s3://archive/three"], Some(&tmp.path().join("check.json")));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let vouched = r.unwrap().files.iter().filter(|f| f.vouched).count();
    assert_eq!(vouched, names.len());
}

/// A TCP proxy to the server that stalls every PUT after its first `cut` bytes and raises
/// `stalled`; everything else passes through.
fn stalling_proxy(upstream: String, cut: usize, stalled: Arc<AtomicBool>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let server = TcpStream::connect(upstream.trim_start_matches("http://")).unwrap();
            let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut s_read, mut c_write) = (server, client);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s_read, &mut c_write);
            });
            let stalled = stalled.clone();
            std::thread::spawn(move || {
                let (mut buf, mut put_bytes) = (vec![0; 4096], None::<usize>);
                loop {
                    let n = match c_read.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if put_bytes.is_none() && buf[..n].starts_with(b"PUT ") {
                        put_bytes = Some(0);
                    }
                    if let Some(sent) = put_bytes.as_mut() {
                        let take = n.min(cut.saturating_sub(*sent));
                        if s_write.write_all(&buf[..take]).is_err() {
                            return;
                        }
                        *sent += take;
                        if *sent >= cut {
                            // Hold the connection open, half sent, until the client dies.
                            stalled.store(true, Ordering::SeqCst);
                            let _ = std::io::copy(&mut c_read, &mut std::io::sink());
                            return;
                        }
                    } else if s_write.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    address
}

#[test]
fn an_upload_cut_off_half_way_leaves_no_object_under_its_key() {
    let Some(s3) = s3::server() else { return };
    let b = s3.bucket("cut");
    upload_photos(s3, &b, "in", &["biden.jpg"]);
    let stalled = Arc::new(AtomicBool::new(false));
    let proxy = stalling_proxy(s3.endpoint.clone(), 20_000, stalled.clone());
    let mut child = s3
        .command()
        .args(["-q", "redact", "s3://cut/in", "--out", "s3://cut/out", "--endpoint", &proxy])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !stalled.load(Ordering::SeqCst) {
        assert!(started.elapsed() < Duration::from_secs(120), "the upload never started");
        assert!(child.try_wait().unwrap().is_none(), "blurgate ended before its upload was cut");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Half the photo has reached the server: the process dies there.
    child.kill().unwrap();
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s3.keys(&b, "out"), Vec::<String>::new(), "nothing under the output prefix");

    // A run that is not cut off completes the output.
    let (o, _) = run(s3, &["redact", "s3://cut/in", "--out", "s3://cut/out"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(s3.keys(&b, "out").contains(&"out/biden.jpg".to_string()));
}

#[test]
fn the_server_script_prints_only_exports() {
    let Some(_) = s3::server() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let script = root().join("scripts/s3_server.sh");
    let with_env = |action: &str| {
        std::process::Command::new("bash")
            .arg(&script)
            .arg(action)
            .env("S3_ROOT", tmp.path())
            .env("S3_PORT", &port)
            .output()
            .unwrap()
    };
    let o = with_env("start");
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<_> = stdout.lines().collect();
    assert!(lines.iter().all(|l| l.starts_with("export ") && l.contains('=')), "{stdout}");
    for name in ["AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"] {
        assert!(lines.iter().any(|l| l.starts_with(&format!("export {name}="))), "{name} missing: {stdout}");
    }
    assert!(TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).is_ok());
    assert!(with_env("stop").status.success());
}

#[test]
fn a_video_goes_bucket_to_bucket_through_a_local_copy_and_a_whole_upload() {
    let Some(s3) = s3::server() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let b = s3.bucket("clips");
    s3.put_file(&b, "in/pan.mp4", &fixture("generated/videos/pan.mp4"));
    let args = ["redact", "s3://clips/in", "--out", "s3://clips/out", "--detect-every", "3"];
    let (o, r) = run(s3, &args, Some(&tmp.path().join("r.json")));
    assert!(o.status.success(), "{}", stderr(&o));
    let r = r.unwrap();
    let f = &r.files[0];
    assert_eq!(f.status, FileStatus::Redacted, "{f:?}");
    let written = s3.object_path(&b, "out/pan.mp4");
    assert_eq!(f.output_sha256.as_deref(), Some(sha256(&written).as_str()));
    let frames = |p: &Path| {
        let o = std::process::Command::new("ffprobe")
            .args(["-v", "error", "-count_frames", "-select_streams", "v", "-show_entries", "stream=nb_read_frames"])
            .args(["-of", "csv=p=0"])
            .arg(p)
            .output()
            .unwrap();
        String::from_utf8(o.stdout).unwrap().trim().to_string()
    };
    assert_eq!(frames(&written), frames(&fixture("generated/videos/pan.mp4")));
    // Nothing but the video and the manifest under the output prefix (no temporary left).
    let keys = s3.keys(&b, "out");
    assert_eq!(keys.len(), 2, "{keys:?}");
    let (o, _) = run(s3, &["check", "s3://clips/out"], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}
