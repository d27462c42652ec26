//! The audit log: append-only JSON Lines, one event per line, hash-chained and keyed.
//!
//! Each line is `{"seq":N,"time":"…","prev":"<sha256 of the previous line's body>","event":{…},
//! "hash":"<sha256 of this line's body>","mac":"<HMAC-SHA-256>"}`, where a line's body is its
//! text up to `,"hash"` closed with `}`, and its MAC is keyed with the audit key over the
//! previous line's MAC (64 zeros for the first), a newline and the body. The hash chain finds a
//! changed, removed or reordered line; the MAC chain makes a rewrite from any line onwards, with
//! every hash recomputed, fail at that line, since it cannot be recomputed without the key.
//! The last MAC is the chain's head: kept elsewhere (a ticket, a commit), it also shows a tail
//! cut off. Lines written before logs were keyed have no `mac`; the first keyed line's MAC then
//! covers them through the hash chain. The log holds hashes, ids, thresholds and decisions:
//! never keys, embeddings, crops or labels.
//!
//! The audit key is kept like a register key: `--audit-key-file`, else `BLURGATE_AUDIT_KEY`,
//! else `audit.key` in the key store (created on first use), never in the log's folder.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::digest::{hex, sha256_hex};
use crate::error::{Error, Result};
use crate::matching::{Action, Decision, Policy, Thresholds};
use crate::register::keystore::{self, key_dir, refuse_in_folder_of};
use crate::report::FileStatus;

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
pub const AUDIT_KEY_ENV: &str = "BLURGATE_AUDIT_KEY";
/// The audit key's file name in the key store.
const STORE_NAME: &str = "audit.key";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Event {
    /// One file of a `redact` (or `check`) run.
    File {
        command: String,
        input: String,
        input_sha256: Option<String>,
        output: Option<String>,
        output_sha256: Option<String>,
        status: FileStatus,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// Model name → sha256 of the file used.
        models: BTreeMap<String, String>,
        detector_threshold: f32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        thresholds: Option<Thresholds>,
        policy: Policy,
        faces: Vec<AuditFace>,
    },
    Enrol {
        id: String,
        photos_sha256: Vec<String>,
        embeddings: usize,
        replaced: bool,
    },
    Forget {
        id: String,
        register_before: String,
        register_after: String,
    },
    PurgeExpired {
        ids: Vec<String>,
        register_before: String,
        register_after: String,
    },
    /// The register was encrypted under a new key (`register rekey`).
    Rekey {
        register_before: String,
        register_after: String,
    },
    /// The register's key was moved into the key store (`register move-key`).
    MoveKey {
        register_before: String,
        register_after: String,
    },
    /// A track of a live `stream` ended.
    StreamTrack {
        input: String,
        output: String,
        #[serde(flatten)]
        track: AuditTrack,
    },
    /// A live `stream` changed how it works: detection thinned out, frames blanked (failing
    /// closed), the input lost or regained, an error; `seconds` is the stream time.
    StreamNotice {
        input: String,
        output: String,
        seconds: f64,
        notice: String,
    },
    /// A live `stream` run ended: its models, policy and counts.
    Stream {
        input: String,
        output: String,
        models: BTreeMap<String, String>,
        detector_threshold: f32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        thresholds: Option<Thresholds>,
        policy: Policy,
        frames_in: u64,
        frames_out: u64,
        frames_blanked: u64,
        tracks: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A person decided one face in `blurgate review` and the output was rendered again; the
    /// record's `time` says when. The face is named by its box, never by a crop.
    Review {
        operator: String,
        input: String,
        input_sha256: Option<String>,
        output: Option<String>,
        output_sha256: Option<String>,
        #[serde(rename = "box")]
        face_box: [f32; 4],
        /// The run's action before the review; absent for a face the operator drew.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<Action>,
        action: Action,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        person: Option<String>,
    },
}

/// A face track of a `stream` run, recorded when its last frame has been written: its decision
/// and extent by time, never pixels or embeddings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditTrack {
    pub track: u32,
    /// Presentation times (seconds) of its first and last detection.
    pub first_seconds: f64,
    pub last_seconds: f64,
    pub detections: u64,
    pub frames_redacted: u64,
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditFace {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    pub action: Action,
}

#[derive(Serialize, Deserialize)]
struct Body<'a> {
    seq: u64,
    time: String,
    prev: String,
    #[serde(borrow)]
    event: &'a serde_json::value::RawValue,
}

/// A 256-bit audit key. Kept out of logs.
#[derive(Clone)]
pub struct AuditKey([u8; 32]);

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(<hidden>)")
    }
}

impl AuditKey {
    /// The MAC of a line with this `body`, after the line whose MAC was `prev_mac`.
    fn mac(&self, prev_mac: &str, body: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(prev_mac.as_bytes());
        mac.update(b"\n");
        mac.update(body.as_bytes());
        hex(&mac.finalize().into_bytes())
    }
}

/// An audit log and where its key comes from (`--audit-key-file`, if given).
#[derive(Debug, Clone)]
pub struct AuditTarget {
    pub path: PathBuf,
    pub key_file: Option<PathBuf>,
}

impl AuditTarget {
    pub fn new(path: &Path, key_file: Option<&Path>) -> Self {
        AuditTarget { path: path.to_path_buf(), key_file: key_file.map(Path::to_path_buf) }
    }

    /// The key's file (`None`: from `BLURGATE_AUDIT_KEY`); never inside the log's folder.
    pub fn key_path(&self) -> Result<Option<PathBuf>> {
        let path = match &self.key_file {
            Some(file) => file.clone(),
            None if std::env::var_os(AUDIT_KEY_ENV).is_some_and(|v| !v.is_empty()) => return Ok(None),
            None => key_dir()?.join(STORE_NAME),
        };
        refuse_in_folder_of(&path, &self.path, "the audit log's folder")?;
        Ok(Some(path))
    }

    /// The audit key; with `create`, a key file that is not there yet is made.
    fn key(&self, create: bool) -> Result<AuditKey> {
        let path = self.key_path()?;
        keystore::resolve(path.as_deref(), AUDIT_KEY_ENV, STORE_NAME, create)?
            .map(AuditKey)
            .map_err(|(from, problem)| Error::AuditKey { from: from.to_string(), problem })
    }
}

/// An audit log opened for appending; holds an exclusive lock on the file while open.
pub struct AuditLog {
    path: PathBuf,
    key: AuditKey,
    state: Mutex<Chain>,
}

/// Where the next line links to.
struct Chain {
    file: File,
    seq: u64,
    prev_hash: String,
    prev_mac: String,
}

impl AuditLog {
    /// Opens (or starts) the log. Its key is made on first use, for a new log (or one from
    /// before keyed logs) only: a keyed log needs the key it was written with. A last line that
    /// is damaged or was not written with this key is refused, so new records never extend a
    /// chain they cannot be verified with.
    pub fn open(target: &AuditTarget) -> Result<AuditLog> {
        let path = target.path.as_path();
        // A misplaced key is refused before anything is created.
        target.key_path()?;
        let io = |e| Error::io(path, e);
        let mut file = std::fs::OpenOptions::new().read(true).append(true).create(true).open(path).map_err(io)?;
        file.lock().map_err(io)?;
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(io)?;
        let damaged = |e: LineProblem| Error::AuditDamaged { path: path.to_path_buf(), reason: e.to_string() };
        let mut last_two = text.lines().rev().take(2).map(Record::parse);
        let last = last_two.next().transpose().map_err(damaged)?;
        let key = target.key(last.as_ref().is_none_or(|r| r.mac.is_none()))?;
        let mut chain = Chain { file, seq: 0, prev_hash: GENESIS.into(), prev_mac: GENESIS.into() };
        if let Some(last) = last {
            if let Some(mac) = &last.mac {
                let before = last_two.next().transpose().map_err(damaged)?;
                let prev_mac = before.and_then(|r| r.mac).unwrap_or_else(|| GENESIS.into());
                if key.mac(&prev_mac, &last.body) != *mac {
                    return Err(Error::AuditKeyMismatch { path: path.to_path_buf() });
                }
                chain.prev_mac = mac.clone();
            }
            chain.seq = last.seq + 1;
            chain.prev_hash = last.hash;
        }
        chain.file.seek(SeekFrom::End(0)).map_err(io)?;
        Ok(AuditLog { path: path.to_path_buf(), key, state: Mutex::new(chain) })
    }

    pub fn append(&self, event: &Event) -> Result<()> {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let chain = &mut *guard;
        let event_json = serde_json::to_string(event).expect("audit event serialises");
        let raw = serde_json::value::RawValue::from_string(event_json).expect("valid JSON");
        let time =
            time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).expect("formats");
        let body = serde_json::to_string(&Body { seq: chain.seq, time, prev: chain.prev_hash.clone(), event: &raw })
            .expect("serialises");
        let hash = sha256_hex(body.as_bytes());
        let mac = self.key.mac(&chain.prev_mac, &body);
        let line = format!("{},\"hash\":\"{hash}\",\"mac\":\"{mac}\"}}\n", &body[..body.len() - 1]);
        chain
            .file
            .write_all(line.as_bytes())
            .and_then(|()| chain.file.sync_data())
            .map_err(|e| Error::io(&self.path, e))?;
        chain.seq += 1;
        chain.prev_hash = hash;
        chain.prev_mac = mac;
        Ok(())
    }
}

/// What is wrong with a line of the log.
#[derive(Debug, thiserror::Error)]
pub enum LineProblem {
    #[error("not an audit record")]
    NotARecord,
    #[error("no hash at the end of the line")]
    NoHash,
    #[error("the line was changed after it was written (its hash does not match)")]
    Changed,
    #[error("unreadable record: {0}")]
    Unreadable(serde_json::Error),
    #[error("the chain is broken before this line (a line was removed, inserted or changed)")]
    ChainBroken,
    #[error("sequence number {found}, expected {expected}")]
    Sequence { found: u64, expected: u64 },
    #[error("no MAC, after keyed lines: the line was added or rewritten without the audit key")]
    Unkeyed,
    #[error("its MAC does not match: the log was rewritten from this line on, or this is not the audit key it was written with")]
    BadMac,
}

/// The first bad line `audit verify` found (1-based).
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct Broken {
    pub line: usize,
    pub problem: LineProblem,
}

/// One line, its own hash checked.
struct Record {
    seq: u64,
    prev: String,
    body: String,
    hash: String,
    mac: Option<String>,
}

impl Record {
    fn parse(line: &str) -> std::result::Result<Record, LineProblem> {
        if !line.ends_with("\"}") {
            return Err(LineProblem::NotARecord);
        }
        let (rest, mac) = match split_field(line, "mac") {
            Some((rest, mac)) => (rest, Some(mac.to_string())),
            None => (line.to_string(), None),
        };
        let (body, hash) = split_field(&rest, "hash").ok_or(LineProblem::NoHash)?;
        if sha256_hex(body.as_bytes()) != hash {
            return Err(LineProblem::Changed);
        }
        let parsed: Body = serde_json::from_str(&body).map_err(LineProblem::Unreadable)?;
        Ok(Record { seq: parsed.seq, prev: parsed.prev, hash: hash.to_string(), mac, body })
    }
}

/// `…,"name":"<64 hex digits>"}` split into `…}` and the digits.
fn split_field<'a>(line: &'a str, name: &str) -> Option<(String, &'a str)> {
    let suffix_len = name.len() + r#","":""}"#.len() + 64;
    let cut = line.len().checked_sub(suffix_len).filter(|&c| line.is_char_boundary(c))?;
    let (head, suffix) = line.split_at(cut);
    let value = suffix.strip_prefix(&format!(",\"{name}\":\""))?.strip_suffix("\"}")?;
    value.bytes().all(|b| b.is_ascii_hexdigit()).then(|| (format!("{head}}}"), value))
}

/// What `audit verify` found.
#[derive(Debug)]
pub struct Verified {
    pub records: u64,
    /// The last MAC (the last hash when no line is keyed): keep it elsewhere to detect a
    /// rewritten log or a cut-off tail later.
    pub head: String,
    /// Lines from before logs were keyed, at the start; with no keyed line after them nothing
    /// but the plain hash chain vouches for them.
    pub unkeyed: u64,
}

/// Checks every line's hash, the hash chain, the sequence and, with the audit key, every MAC;
/// the outer error is one that stops the check itself (an unreadable file or key).
pub fn verify(target: &AuditTarget) -> Result<std::result::Result<Verified, Broken>> {
    let path = &target.path;
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    // The key is needed only once a keyed line is met, so an old log is checked without one.
    let mut key = None;
    let (mut prev_hash, mut prev_mac) = (GENESIS.to_string(), GENESIS.to_string());
    let (mut records, mut unkeyed) = (0u64, 0u64);
    for (i, line) in text.lines().enumerate() {
        let broken = |problem| Ok(Err(Broken { line: i + 1, problem }));
        let record = match Record::parse(line) {
            Ok(r) => r,
            Err(problem) => return broken(problem),
        };
        if record.prev != prev_hash {
            return broken(LineProblem::ChainBroken);
        }
        if record.seq != i as u64 {
            return broken(LineProblem::Sequence { found: record.seq, expected: i as u64 });
        }
        match &record.mac {
            None if unkeyed == records => unkeyed += 1,
            None => return broken(LineProblem::Unkeyed),
            Some(mac) => {
                if key.is_none() {
                    key = Some(target.key(false)?);
                }
                if key.as_ref().expect("loaded").mac(&prev_mac, &record.body) != *mac {
                    return broken(LineProblem::BadMac);
                }
                prev_mac = mac.clone();
            }
        }
        records += 1;
        prev_hash = record.hash;
    }
    let head = if unkeyed == records { prev_hash } else { prev_mac };
    Ok(Ok(Verified { records, head, unkeyed }))
}

/// The last line's MAC, unchecked: the head a run that just wrote the log prints.
pub fn head(path: &Path) -> Result<Option<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    Ok(text.lines().last().and_then(|l| split_field(l, "mac")).map(|(_, mac)| mac.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str) -> Event {
        Event::Forget { id: id.into(), register_before: "a".into(), register_after: "b".into() }
    }

    /// A log in its own folder, with its key in another.
    fn target(dir: &Path) -> AuditTarget {
        std::fs::create_dir_all(dir.join("log")).unwrap();
        AuditTarget::new(&dir.join("log/audit.jsonl"), Some(&dir.join("keys/audit.key")))
    }

    fn broken_at(t: &AuditTarget) -> usize {
        verify(t).unwrap().unwrap_err().line
    }

    #[test]
    fn chain_verifies_and_detects_edits_removals_and_reordering() {
        let dir = tempfile::tempdir().unwrap();
        let t = target(dir.path());
        let path = &t.path;
        {
            let log = AuditLog::open(&t).unwrap();
            log.append(&event("p1")).unwrap();
            log.append(&event("p2")).unwrap();
        }
        // Reopening continues the chain.
        AuditLog::open(&t).unwrap().append(&event("p3")).unwrap();
        let ok = verify(&t).unwrap().unwrap();
        assert_eq!((ok.records, ok.unkeyed), (3, 0));
        assert_eq!(head(path).unwrap().as_deref(), Some(ok.head.as_str()));

        let text = std::fs::read_to_string(path).unwrap();
        let own: Vec<String> = text.lines().map(|s| s.to_string()).collect();
        let write = |ls: &[String]| std::fs::write(path, ls.join("\n") + "\n").unwrap();

        let mut edited = own.clone();
        edited[1] = edited[1].replace("p2", "px");
        write(&edited);
        assert_eq!(broken_at(&t), 2);

        let mut last_edited = own.clone();
        last_edited[2] = last_edited[2].replace("p3", "py");
        write(&last_edited);
        assert_eq!(broken_at(&t), 3);

        write(&[own[0].clone(), own[2].clone()]);
        assert_eq!(broken_at(&t), 2);

        write(&[own[1].clone(), own[0].clone(), own[2].clone()]);
        assert!(verify(&t).unwrap().is_err());
    }

    /// Lines `from..` rewritten with `edit`, every hash and link recomputed; MACs dropped or kept.
    fn rewrite(lines: &[String], from: usize, edit: impl Fn(&str) -> String, keep_macs: bool) -> Vec<String> {
        let mut out: Vec<String> = lines[..from].to_vec();
        let mut prev = out.last().map(|l| Record::parse(l).unwrap().hash).unwrap_or_else(|| GENESIS.into());
        for line in &lines[from..] {
            let record = Record::parse(line).unwrap();
            let body = edit(&record.body.replace(&record.prev, &prev));
            let hash = sha256_hex(body.as_bytes());
            let mac = record.mac.filter(|_| keep_macs).map(|m| format!(",\"mac\":\"{m}\"")).unwrap_or_default();
            out.push(format!("{},\"hash\":\"{hash}\"{mac}}}", &body[..body.len() - 1]));
            prev = hash;
        }
        out
    }

    #[test]
    fn a_rewrite_with_recomputed_hashes_fails_at_its_first_line_and_a_wrong_key_at_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let t = target(dir.path());
        let log = AuditLog::open(&t).unwrap();
        for i in 0..5 {
            log.append(&event(&format!("p{i}"))).unwrap();
        }
        drop(log);
        let lines: Vec<String> = std::fs::read_to_string(&t.path).unwrap().lines().map(String::from).collect();
        for keep_macs in [true, false] {
            let forged = rewrite(&lines, 2, |b| b.replace("p2", "pX"), keep_macs);
            std::fs::write(&t.path, forged.join("\n") + "\n").unwrap();
            let e = verify(&t).unwrap().unwrap_err();
            assert_eq!(e.line, 3, "{e}");
            let expected =
                matches!((keep_macs, &e.problem), (true, LineProblem::BadMac) | (false, LineProblem::Unkeyed));
            assert!(expected, "{e}");
        }
        std::fs::write(&t.path, lines.join("\n") + "\n").unwrap();
        let other = AuditTarget::new(&t.path, Some(&dir.path().join("keys/other.key")));
        keystore::write_new_key(other.key_file.as_ref().unwrap(), &keystore::random_key()).unwrap();
        assert_eq!(broken_at(&other), 1);
        assert!(matches!(AuditLog::open(&other), Err(Error::AuditKeyMismatch { .. })));
    }

    #[test]
    fn an_unkeyed_old_log_verifies_as_unkeyed_and_keyed_lines_after_it_cover_it() {
        let dir = tempfile::tempdir().unwrap();
        let t = target(dir.path());
        let log = AuditLog::open(&t).unwrap();
        log.append(&event("p1")).unwrap();
        log.append(&event("p2")).unwrap();
        drop(log);
        let lines: Vec<String> = std::fs::read_to_string(&t.path).unwrap().lines().map(String::from).collect();
        let old = rewrite(&lines, 0, |b| b.to_string(), false);
        std::fs::write(&t.path, old.join("\n") + "\n").unwrap();
        let v = verify(&t).unwrap().unwrap();
        assert_eq!((v.records, v.unkeyed), (2, 2));
        AuditLog::open(&t).unwrap().append(&event("p3")).unwrap();
        let v = verify(&t).unwrap().unwrap();
        assert_eq!((v.records, v.unkeyed), (3, 2));
        // The keyed line pins the old ones: rewriting one of them breaks the chain there.
        let mut all: Vec<String> = std::fs::read_to_string(&t.path).unwrap().lines().map(String::from).collect();
        all = [rewrite(&all[..2], 0, |b| b.replace("p1", "pX"), false), all[2..].to_vec()].concat();
        std::fs::write(&t.path, all.join("\n") + "\n").unwrap();
        assert_eq!(broken_at(&t), 3);
    }

    #[test]
    fn a_keyed_log_whose_key_is_gone_gets_no_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let t = target(dir.path());
        AuditLog::open(&t).unwrap().append(&event("p1")).unwrap();
        std::fs::remove_file(t.key_file.as_ref().unwrap()).unwrap();
        assert!(matches!(AuditLog::open(&t), Err(Error::AuditKey { .. })));
        assert!(!t.key_file.as_ref().unwrap().exists());
    }

    #[test]
    fn the_audit_key_is_refused_in_the_logs_folder() {
        let dir = tempfile::tempdir().unwrap();
        let t = AuditTarget::new(&dir.path().join("audit.jsonl"), Some(&dir.path().join("audit.key")));
        assert!(matches!(AuditLog::open(&t), Err(Error::KeyInside { .. })));
        assert!(!dir.path().join("audit.key").exists() && !t.path.exists());
    }
}
