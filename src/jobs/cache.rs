//! The result cache on the local disk (`--cache DIR`, default `~/.cache/blurgate`): what an
//! earlier `check` found in a file, so that a re-run over unchanged files skips them, and the
//! content digest of object versions (bucket, key, ETag, size), so that an unchanged object
//! is not even downloaded again.
//!
//! A result is keyed by the file's content (sha256), blurgate's version, the model digests, the
//! detection settings, the decode limits and the policy; it records the register it was
//! matched against and how many faces the detector found. It is used again only under the
//! same register, or when the detector found no face at all (a new opt-out cannot be in a
//! photo without faces): a register change re-checks exactly the files it could affect. The
//! cache holds no face data: boxes, decisions and register ids only, as the report does.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::sha256_hex;
use crate::report::FileReport;
use crate::storage::{self, Location, Version};

const LAYOUT: &str = "v1";

/// What `check` found in one file's content.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckResult {
    /// sha256 of the register the faces were matched against.
    pub register: Option<String>,
    /// Faces the detector found, whatever the policy made of them.
    pub faces_found: usize,
    /// The file's report (its `input` is replaced by the location it is found at next).
    pub report: FileReport,
}

impl CheckResult {
    /// Whether this result holds under `register`.
    pub fn holds_for(&self, register: Option<&str>) -> bool {
        self.faces_found == 0 || self.register.as_deref() == register
    }
}

/// A cache folder. Failing to read or write it never fails a run: the file is then checked.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    pub fn new(dir: &Path) -> Cache {
        Cache { dir: dir.join(LAYOUT) }
    }

    fn entry(&self, kind: &str, key: &str) -> PathBuf {
        self.dir.join(kind).join(&key[..2]).join(key)
    }

    fn put(&self, kind: &str, key: &str, bytes: &[u8]) {
        if let Err(e) = storage::write_atomic(&self.entry(kind, key), bytes) {
            tracing::warn!("cache {}: {e}", self.dir.display());
        }
    }

    /// The content digest of this version of an object, if an earlier run read it.
    pub fn content_of(&self, location: &Location, version: Option<&Version>) -> Option<String> {
        let key = object_key(location, version?)?;
        let text = std::fs::read_to_string(self.entry("objects", &key)).ok()?;
        (text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())).then_some(text)
    }

    pub fn remember_content(&self, location: &Location, version: Option<&Version>, sha256: &str) {
        if let Some(key) = version.and_then(|v| object_key(location, v)) {
            self.put("objects", &key, sha256.as_bytes());
        }
    }

    pub fn check_result(&self, key: &str) -> Option<CheckResult> {
        serde_json::from_slice(&std::fs::read(self.entry("check", key)).ok()?).ok()
    }

    pub fn store_check_result(&self, key: &str, result: &CheckResult) {
        self.put("check", key, &serde_json::to_vec(result).expect("cache entry serialises"));
    }
}

/// Names an object version; `None` without an ETag (the store gives no version to trust).
fn object_key(location: &Location, version: &Version) -> Option<String> {
    let e_tag = version.e_tag.as_deref()?;
    Some(sha256_hex(format!("{location}|{e_tag}|{}", version.size).as_bytes()))
}

/// The key of a check result: the content with everything else that decides the result.
pub fn check_key(content_sha256: &str, settings: &str) -> String {
    sha256_hex(format!("{content_sha256}|{settings}").as_bytes())
}
