//! The audit log: append-only JSON Lines, one event per line, hash-chained.
//!
//! Each line is `{"seq":N,"time":"…","prev":"<sha256 of the previous line's body>","event":{…},
//! "hash":"<sha256 of this line's body>"}`, where a line's body is its text with the trailing
//! `,"hash":"…"` removed. Editing, inserting or removing a line breaks the chain;
//! `blurgate audit verify` finds where. The log holds hashes, ids, thresholds and decisions:
//! never embeddings, crops or labels.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::digest::sha256_hex;
use crate::error::{Error, Result};
use crate::matching::{Action, Decision, Policy, Thresholds};
use crate::report::FileStatus;
use serde::{Deserialize, Serialize};

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const HASH_SUFFIX_LEN: usize = r#","hash":""#.len() + 64 + r#""}"#.len();

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

/// An audit log opened for appending; holds an exclusive lock on the file while open.
pub struct AuditLog {
    path: PathBuf,
    state: Mutex<(File, u64, String)>,
}

impl AuditLog {
    pub fn open(path: &Path) -> Result<AuditLog> {
        let io = |e| Error::io(path, e);
        let mut file = std::fs::OpenOptions::new().read(true).append(true).create(true).open(path).map_err(io)?;
        file.lock().map_err(io)?;
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(io)?;
        let (seq, prev) = match text.lines().last() {
            None => (0, GENESIS.to_string()),
            Some(last) => {
                let (seq, hash) = check_line(last, None)
                    .map_err(|e| Error::AuditDamaged { path: path.to_path_buf(), reason: e.to_string() })?;
                (seq + 1, hash)
            }
        };
        file.seek(SeekFrom::End(0)).map_err(io)?;
        Ok(AuditLog { path: path.to_path_buf(), state: Mutex::new((file, seq, prev)) })
    }

    pub fn append(&self, event: &Event) -> Result<()> {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (file, seq, prev) = &mut *guard;
        let event_json = serde_json::to_string(event).expect("audit event serialises");
        let raw = serde_json::value::RawValue::from_string(event_json).expect("valid JSON");
        let time =
            time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).expect("formats");
        let body =
            serde_json::to_string(&Body { seq: *seq, time, prev: prev.clone(), event: &raw }).expect("serialises");
        let hash = sha256_hex(body.as_bytes());
        let line = format!("{},\"hash\":\"{hash}\"}}\n", &body[..body.len() - 1]);
        file.write_all(line.as_bytes()).and_then(|()| file.sync_data()).map_err(|e| Error::io(&self.path, e))?;
        *seq += 1;
        *prev = hash;
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
}

/// The first bad line `audit verify` found (1-based).
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct Broken {
    pub line: usize,
    pub problem: LineProblem,
}

/// Checks one line's own hash (and its link to `prev` when given); returns its seq and hash.
fn check_line(line: &str, prev: Option<&str>) -> std::result::Result<(u64, String), LineProblem> {
    if line.len() < HASH_SUFFIX_LEN + 2 || !line.ends_with("\"}") {
        return Err(LineProblem::NotARecord);
    }
    let (body_head, suffix) = line.split_at(line.len() - HASH_SUFFIX_LEN);
    let hash = suffix
        .strip_prefix(",\"hash\":\"")
        .and_then(|h| h.strip_suffix("\"}"))
        .filter(|h| h.len() == 64)
        .ok_or(LineProblem::NoHash)?;
    let body = format!("{body_head}}}");
    if sha256_hex(body.as_bytes()) != hash {
        return Err(LineProblem::Changed);
    }
    let parsed: Body = serde_json::from_str(&body).map_err(LineProblem::Unreadable)?;
    if let Some(prev) = prev {
        if parsed.prev != prev {
            return Err(LineProblem::ChainBroken);
        }
    }
    Ok((parsed.seq, hash.to_string()))
}

/// What `audit verify` found.
#[derive(Debug)]
pub struct Verified {
    pub records: u64,
    /// Hash of the last record: keep it elsewhere to detect a cut-off tail later.
    pub head: String,
}

pub fn verify(path: &Path) -> Result<std::result::Result<Verified, Broken>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut prev = GENESIS.to_string();
    let mut count = 0u64;
    for (i, line) in text.lines().enumerate() {
        match check_line(line, Some(&prev)) {
            Ok((seq, hash)) if seq == i as u64 => {
                prev = hash;
                count += 1;
            }
            Ok((found, _)) => {
                return Ok(Err(Broken { line: i + 1, problem: LineProblem::Sequence { found, expected: i as u64 } }))
            }
            Err(problem) => return Ok(Err(Broken { line: i + 1, problem })),
        }
    }
    Ok(Ok(Verified { records: count, head: prev }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str) -> Event {
        Event::Forget { id: id.into(), register_before: "a".into(), register_after: "b".into() }
    }

    #[test]
    fn chain_verifies_and_detects_edits_removals_and_reordering() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        {
            let log = AuditLog::open(&path).unwrap();
            log.append(&event("p1")).unwrap();
            log.append(&event("p2")).unwrap();
        }
        // Reopening continues the chain.
        AuditLog::open(&path).unwrap().append(&event("p3")).unwrap();
        let ok = verify(&path).unwrap().unwrap();
        assert_eq!(ok.records, 3);

        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let write = |ls: &[String]| std::fs::write(&path, ls.join("\n") + "\n").unwrap();
        let own: Vec<String> = lines.iter().map(|s| s.to_string()).collect();

        let mut edited = own.clone();
        edited[1] = edited[1].replace("p2", "px");
        write(&edited);
        assert_eq!(verify(&path).unwrap().unwrap_err().line, 2);

        let mut last_edited = own.clone();
        last_edited[2] = last_edited[2].replace("p3", "py");
        write(&last_edited);
        assert_eq!(verify(&path).unwrap().unwrap_err().line, 3);

        write(&[own[0].clone(), own[2].clone()]);
        assert_eq!(verify(&path).unwrap().unwrap_err().line, 2);

        write(&[own[1].clone(), own[0].clone(), own[2].clone()]);
        assert!(verify(&path).unwrap().is_err());
    }
}
