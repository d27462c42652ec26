//! Keys and records an auditor can trust: register keys apart from the register, rotation,
//! a lost key, the keyed audit log, and no secret in anything a run writes.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::*;
use blurgate::audit::{AuditLog, AuditTarget, Event};
use blurgate::digest::sha256_hex;
use blurgate::register::RegisterFile;

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A scratch folder with the register's folder, a key store and a log folder apart.
struct Place {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    keys: PathBuf,
    register: PathBuf,
    audit: PathBuf,
}

impl Place {
    fn new() -> Place {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        for dir in ["reg", "logs"] {
            std::fs::create_dir(root.join(dir)).unwrap();
        }
        let (keys, register, audit) = (root.join("keys"), root.join("reg/optouts.reg"), root.join("logs/audit.jsonl"));
        Place { _tmp: tmp, root, keys, register, audit }
    }

    /// blurgate with this place's key store.
    fn run(&self, args: &[&str]) -> Output {
        command().env("BLURGATE_KEY_DIR", &self.keys).args(args).output().expect("blurgate runs")
    }

    fn enroll(&self, id: &str, photo: &str, extra: &[&str]) -> Output {
        let photo = fixture(photo);
        let mut args = vec!["enroll", "--register", s(&self.register), "--id", id];
        args.extend_from_slice(extra);
        args.push(s(&photo));
        self.run(&args)
    }

    fn list(&self, extra: &[&str]) -> Output {
        let mut args = vec!["register", "list", "--register", s(&self.register)];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// The key files in the key store (the audit key left out).
    fn register_keys(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(&self.keys) else { return Vec::new() };
        let mut keys: Vec<PathBuf> =
            entries.map(|e| e.unwrap().path()).filter(|p| p.file_name().unwrap() != "audit.key").collect();
        keys.sort();
        keys
    }
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_new_register_keeps_its_key_out_of_its_folder() {
    let p = Place::new();
    let o = p.enroll("P-1", "photos/obama.jpg", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(names_in(p.register.parent().unwrap()), vec!["optouts.reg"], "no key beside the register");
    let keys = p.register_keys();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let name = keys[0].file_name().unwrap().to_str().unwrap();
    assert!(name.len() == 36 && name.ends_with(".key"), "{name}: named by the key id");
    assert!(stderr(&o).contains(s(&keys[0])) && stderr(&o).contains("export-key"), "{}", stderr(&o));
    assert_eq!((mode(&keys[0]), mode(&p.keys), mode(&p.register)), (0o600, 0o700, 0o600));
    let o = p.list(&[]);
    assert!(o.status.success() && stdout(&o).contains("P-1"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("WARN"), "{}", stderr(&o));
}

#[test]
fn a_key_inside_the_register_folder_or_a_folder_the_run_uses_is_refused() {
    let p = Place::new();
    let folder = p.register.parent().unwrap();
    for key in [folder.join("optouts.key"), folder.join("keys/optouts.key")] {
        let o = p.enroll("P-1", "photos/obama.jpg", &["--key-file", s(&key)]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        let e = stderr(&o);
        assert!(e.contains("inside the register's folder") && e.contains("takes the key with it"), "{e}");
        assert!(e.contains("move-key") && e.contains("--key-file"), "says how to keep it apart: {e}");
        assert!(!key.exists() && !p.register.exists(), "nothing is created");
    }

    // A key of its own elsewhere is fine, but not inside a folder a run reads or writes.
    let key = p.root.join("elsewhere/optouts.key");
    let o = p.enroll("P-1", "photos/obama.jpg", &["--key-file", s(&key)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (photos, out) = (p.root.join("photos"), p.root.join("out"));
    for dir in [&photos, &out] {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::copy(fixture("photos/biden.jpg"), photos.join("biden.jpg")).unwrap();
    for inside in [photos.join("k.key"), out.join("k.key")] {
        std::fs::copy(&key, &inside).unwrap();
        let reg = ["--register", s(&p.register), "--key-file", s(&inside)];
        let mut runs = vec![p.run(&[&["redact", s(&photos), "--out", s(&out)], &reg[..]].concat())];
        if inside.starts_with(&photos) {
            runs.push(p.run(&[&["find", "--id", "P-1", s(&photos)], &reg[..]].concat()));
        }
        for o in runs {
            assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
            assert!(stderr(&o).contains("inside a folder this run reads or writes"), "{}", stderr(&o));
        }
        std::fs::remove_file(&inside).unwrap();
    }
    assert!(!out.join("biden.jpg").exists(), "nothing was redacted");
}

#[test]
fn a_key_beside_an_old_register_still_works_with_a_warning_until_move_key() {
    let p = Place::new();
    let elsewhere = p.root.join("k.key");
    let o = p.enroll("P-1", "photos/obama.jpg", &["--key-file", s(&elsewhere)]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The old default: REGISTER.key beside the register.
    let beside = p.register.with_file_name("optouts.reg.key");
    std::fs::rename(&elsewhere, &beside).unwrap();
    let o = p.list(&[]);
    assert!(o.status.success() && stdout(&o).contains("P-1"), "{}", stderr(&o));
    assert!(stderr(&o).contains("register move-key"), "a warning says how to fix it: {}", stderr(&o));
    // Given explicitly it is refused like any key inside the folder.
    assert_eq!(p.list(&["--key-file", s(&beside)]).status.code(), Some(2));

    let o = p.run(&["register", "move-key", "--register", s(&p.register), "--audit", s(&p.audit)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!beside.exists(), "the key beside the register is gone");
    assert_eq!(p.register_keys().len(), 1);
    let o = p.list(&[]);
    assert!(o.status.success() && stdout(&o).contains("P-1"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("move-key"), "no warning once moved: {}", stderr(&o));
    assert!(std::fs::read_to_string(&p.audit).unwrap().contains("\"move-key\""));
}

#[test]
fn rekey_keeps_every_person_and_the_old_key_no_longer_opens_it() {
    let p = Place::new();
    for (id, photo) in [("P-1", "photos/obama.jpg"), ("P-2", "photos/biden.jpg")] {
        let o = p.enroll(id, photo, &[]);
        assert!(o.status.success(), "{id}: {}", stderr(&o));
    }
    let old_in_store = p.register_keys().pop().unwrap();
    let old = p.root.join("old.key");
    std::fs::copy(&old_in_store, &old).unwrap();
    let before = std::fs::read(&p.register).unwrap();

    let o = p.run(&["register", "rekey", "--register", s(&p.register), "--audit", s(&p.audit)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_ne!(std::fs::read(&p.register).unwrap(), before);
    let keys = p.register_keys();
    assert!(keys.len() == 1 && keys[0] != old_in_store && !old_in_store.exists(), "old key retired: {keys:?}");
    let o = p.list(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("P-1") && stdout(&o).contains("P-2"), "{}", stdout(&o));
    let o = p.list(&["--key-file", s(&old)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("wrong key"), "{}", stderr(&o));

    // The exported key is the new one and opens the register from the environment.
    let o = p.run(&["register", "export-key", "--register", s(&p.register)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let exported = stdout(&o).trim().to_string();
    assert_eq!(exported, std::fs::read_to_string(&keys[0]).unwrap().trim());
    let o = command()
        .env("BLURGATE_KEY_DIR", p.root.join("empty-store"))
        .env("BLURGATE_REGISTER_KEY", &exported)
        .args(["register", "list", "--register", s(&p.register)])
        .output()
        .unwrap();
    assert!(o.status.success() && stdout(&o).contains("P-2"), "{}", stderr(&o));
    let log = std::fs::read_to_string(&p.audit).unwrap();
    assert!(log.contains("\"rekey\"") && !log.contains(&exported));
    assert!(p.run(&["audit", "verify", s(&p.audit)]).status.success());
}

#[test]
fn a_lost_key_is_a_clear_error_never_an_empty_register() {
    let p = Place::new();
    let o = p.enroll("P-1", "photos/obama.jpg", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::remove_file(p.register_keys().pop().unwrap()).unwrap();
    let before = std::fs::read(&p.register).unwrap();
    let o = p.list(&[]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("its key is not at") && e.contains("cannot be read without its key"), "{e}");
    assert!(e.contains("backup"), "says how to recover: {e}");
    let o = p.enroll("P-2", "photos/biden.jpg", &[]);
    assert_eq!(o.status.code(), Some(2), "enrolment must not start a new register over it: {}", stderr(&o));
    assert_eq!(std::fs::read(&p.register).unwrap(), before, "the register is untouched");
    assert!(p.register_keys().is_empty(), "no new key was made");
}

/// Rewrites the log from line `k` (1-based) on as a forger without the key would: the edit,
/// then every plain hash and link recomputed (each MAC left as it was).
fn forge_from(lines: &[String], k: usize, edit: impl Fn(&str) -> String) -> Vec<String> {
    let body_of = |line: &str| format!("{}}}", &line[..line.find(",\"hash\":\"").unwrap()]);
    let hash_of = |line: &str| line[line.find(",\"hash\":\"").unwrap() + 9..][..64].to_string();
    let mut out = lines[..k - 1].to_vec();
    let mut prev = hash_of(&out[k - 2]);
    for line in &lines[k - 1..] {
        let body = body_of(line);
        let link_at = body.find(",\"prev\":\"").unwrap() + 9;
        let body = edit(&format!("{}{}{}", &body[..link_at], prev, &body[link_at + 64..]));
        let hash = sha256_hex(body.as_bytes());
        let mac = &line[line.find(",\"mac\":").unwrap()..];
        out.push(format!("{},\"hash\":\"{hash}\"{mac}", &body[..body.len() - 1]));
        prev = hash;
    }
    out
}

#[test]
fn an_audit_log_rewritten_from_line_k_with_recomputed_hashes_fails_verify_at_line_k() {
    let p = Place::new();
    let key = p.root.join("audit-keys/audit.key");
    let target = AuditTarget::new(&p.audit, Some(&key));
    let log = AuditLog::open(&target).unwrap();
    for i in 1..=6 {
        let event = Event::Forget { id: format!("P-{i}"), register_before: "a".into(), register_after: "b".into() };
        log.append(&event).unwrap();
    }
    drop(log);
    let with_key = |cmd: &str| p.run(&["audit", cmd, s(&p.audit), "--audit-key-file", s(&key)]);
    let o = with_key("verify");
    assert!(o.status.success(), "{}", stdout(&o));
    let o = with_key("head");
    assert!(o.status.success());
    let head = stdout(&o).trim().to_string();
    assert!(head.len() == 64 && p.audit.exists());
    assert!(std::fs::read_to_string(&p.audit).unwrap().trim_end().ends_with(&format!("\"mac\":\"{head}\"}}")));

    let lines: Vec<String> = std::fs::read_to_string(&p.audit).unwrap().lines().map(String::from).collect();
    for k in [2, 4, 6] {
        let forged = forge_from(&lines, k, |b| b.replace(&format!("\"P-{k}\""), "\"P-X\""));
        std::fs::write(&p.audit, forged.join("\n") + "\n").unwrap();
        let o = with_key("verify");
        assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
        assert!(stdout(&o).contains(&format!("BROKEN at line {k}: its MAC does not match")), "k={k}: {}", stdout(&o));
        assert_eq!(with_key("head").status.code(), Some(1), "no head for a broken log");
    }
    // Without the key the log cannot be checked at all; with another key it fails at once.
    std::fs::write(&p.audit, lines.join("\n") + "\n").unwrap();
    let o = p.run(&["audit", "verify", s(&p.audit)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("audit key") && stderr(&o).contains("--audit-key-file"), "{}", stderr(&o));
    let other = p.root.join("audit-keys/other.key");
    std::fs::write(&other, "11".repeat(32)).unwrap();
    let o = p.run(&["audit", "verify", s(&p.audit), "--audit-key-file", s(&other)]);
    assert!(stdout(&o).contains("line 1"), "{}", stdout(&o));
}

/// Every file below `dir`.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect()
}

#[test]
fn a_full_run_writes_no_key_embedding_or_crop_anywhere() {
    let p = Place::new();
    let (photos, out, reports) = (p.root.join("photos"), p.root.join("out"), p.root.join("reports"));
    for dir in [&photos, &reports] {
        std::fs::create_dir(dir).unwrap();
    }
    for name in ["obama2.jpg", "biden.jpg", "t1.jpg"] {
        std::fs::copy(fixture(&format!("photos/{name}")), photos.join(name)).unwrap();
    }
    let label = "Quiet Person Label";
    let audit = ["--audit", s(&p.audit)];
    let reg = ["--register", s(&p.register)];
    let mut said = Vec::new();
    let mut step = |args: Vec<&str>| {
        let o = command()
            .env("BLURGATE_KEY_DIR", &p.keys)
            .env("BLURGATE_LOG", "debug")
            .env("RUST_BACKTRACE", "1")
            .args(&args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        said.extend_from_slice(&o.stdout);
        said.extend_from_slice(&o.stderr);
        o
    };
    let obama = fixture("photos/obama.jpg");
    step([&["enroll", "--id", "P-0042", "--label", label][..], &reg, &audit, &[s(&obama)]].concat());
    // What must never appear: both keys and the embeddings, read through the library.
    let register_key = p.register_keys().pop().unwrap();
    let first_key = std::fs::read_to_string(&register_key).unwrap();
    let (register, _) = RegisterFile::new(&p.register, Some(&register_key)).load().unwrap();
    let o = step(
        [&["redact", s(&photos), "--out", s(&out), "--report", s(&reports.join("redact.json"))][..], &reg, &audit]
            .concat(),
    );
    let head = stderr(&o).lines().find_map(|l| l.strip_prefix("audit chain head: ")).map(|l| l[..64].to_string());
    let o = step(vec!["audit", "head", s(&p.audit)]);
    assert_eq!(head.as_deref(), Some(stdout(&o).trim()), "the run prints the chain head");
    step([&["find", "--id", "P-0042", s(&photos), "--report", s(&reports.join("find.json"))][..], &reg].concat());
    step([&["register", "purge-expired"][..], &reg, &audit].concat());
    step([&["register", "rekey"][..], &reg, &audit].concat());
    let new_key = p.register_keys().pop().unwrap();
    step([&["forget", "--id", "P-0042"][..], &reg, &audit].concat());
    step(vec!["audit", "verify", s(&p.audit)]);

    let mut needles: Vec<(String, Vec<u8>)> = Vec::new();
    let keys = [first_key, std::fs::read_to_string(&new_key).unwrap()];
    for (what, key) in ["register key", "new register key", "audit key"]
        .into_iter()
        .zip(keys.into_iter().chain([std::fs::read_to_string(p.keys.join("audit.key")).unwrap()]))
    {
        needles.push((what.to_string(), key.trim().as_bytes().to_vec()));
        needles.push((format!("{what} (upper case)"), key.trim().to_uppercase().into_bytes()));
    }
    needles.push(("label".into(), label.as_bytes().to_vec()));
    let person = register.person("P-0042").unwrap();
    for e in &person.embeddings {
        for v in &e.values()[..16] {
            needles.push((format!("embedding value {v}"), format!("{v}").into_bytes()));
            needles.push((format!("embedding value {v} as f32"), v.to_le_bytes().to_vec()));
        }
    }
    let outputs: Vec<PathBuf> = ["obama2.jpg", "biden.jpg", "t1.jpg"].iter().map(|n| out.join(n)).collect();
    let mut checked = 0;
    let written: Vec<PathBuf> = files_below(&p.root).into_iter().filter(|f| !f.starts_with(&photos)).collect();
    for file in &written {
        let name = file.file_name().unwrap().to_string_lossy();
        assert!(!name.ends_with(".tmp"), "a temporary file was left: {}", file.display());
        if file.starts_with(&p.keys) {
            assert!(name.ends_with(".key") && mode(file) == 0o600, "{}", file.display());
            continue;
        }
        let bytes = std::fs::read(file).unwrap();
        let image = image::guess_format(&bytes).is_ok();
        assert!(!image || outputs.contains(file), "an image other than a redacted copy: {}", file.display());
        for (what, needle) in &needles {
            // Four raw bytes can occur by chance in compressed image data; text cannot.
            if image && what.ends_with("as f32") {
                continue;
            }
            let found = bytes.windows(needle.len()).any(|w| w == needle.as_slice());
            assert!(!found, "{what} found in {}", file.display());
        }
        checked += 1;
    }
    assert!(checked >= 7, "register, log, reports, outputs, run state: {written:?}");
    for (what, needle) in &needles {
        if !what.ends_with("as f32") {
            assert!(!said.windows(needle.len()).any(|w| w == needle.as_slice()), "{what} in a command's output");
        }
    }
}
