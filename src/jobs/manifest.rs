//! What `redact` vouches for in the folder it publishes to: `.blurgate-manifest.json` lists each
//! output it wrote (its path below the folder and sha256) with the policy and the register it
//! was checked under, sealed with an HMAC-SHA-256 under the manifest key (kept like the audit
//! key: `--manifest-key-file`, `BLURGATE_MANIFEST_KEY`, or `manifest.key` in the key store).
//! `check` takes a file as redacted only when its bytes, the policy and the register match an
//! entry and the seal holds: a copy blurred by hand or by another tool, an output changed
//! afterwards, or a register that changed since (a new opt-out) is checked again in full. The
//! manifest names no person and holds no face data: it is published with the photos.

use std::collections::BTreeMap;
use std::path::Path;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::shard::Shard;
use crate::digest::hex;
use crate::error::{Error, Result};
use crate::matching::Policy;
use crate::register::keystore;
use crate::storage::Location;

/// The manifest of an unsharded run; shard I of N writes `.blurgate-manifest.shard-I-of-N.json`
/// (shards run at once, and each must not overwrite the others' entries).
pub const FILE_NAME: &str = ".blurgate-manifest.json";
pub const KEY_ENV: &str = "BLURGATE_MANIFEST_KEY";
const STORE_NAME: &str = "manifest.key";
const VERSION: u32 = 1;

/// The key that seals manifests. Kept out of logs.
pub struct ManifestKey([u8; 32]);

impl std::fmt::Debug for ManifestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ManifestKey(<hidden>)")
    }
}

impl ManifestKey {
    /// The key from `file`, `BLURGATE_MANIFEST_KEY` or the key store; with `create`, made in
    /// the store when it is not there yet (a first `redact`).
    pub fn load(file: Option<&Path>, create: bool) -> Result<ManifestKey> {
        keystore::resolve(file, KEY_ENV, STORE_NAME, create)?
            .map(ManifestKey)
            .map_err(|(from, problem)| Error::ManifestKey { from: from.to_string(), problem })
    }

    fn seal(&self, entries: &BTreeMap<String, Entry>) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(serde_json::to_string(entries).expect("entries serialise").as_bytes());
        hex(&mac.finalize().into_bytes())
    }
}

/// One published file as `redact` wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub sha256: String,
    pub policy: Policy,
    /// sha256 of the register it was matched against (none: every face redacted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub register: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Sealed {
    version: u32,
    files: BTreeMap<String, Entry>,
    mac: String,
}

/// The entries of a folder's manifest whose seal held.
#[derive(Debug, Default)]
pub struct Manifest {
    files: BTreeMap<String, Entry>,
}

/// The manifest file a run (or shard) writes.
pub fn file_name(shard: Option<Shard>) -> String {
    match shard {
        None => FILE_NAME.into(),
        Some(s) => format!(".blurgate-manifest.shard-{}-of-{}.json", s.index, s.count),
    }
}

/// Whether a file is one of blurgate's manifests.
pub fn is_manifest(name: &str) -> bool {
    name.starts_with(".blurgate-manifest") && name.ends_with(".json")
}

/// Every manifest of a folder (the shards' included) whose seal held.
#[derive(Debug, Default)]
pub struct Manifests(Vec<Manifest>);

impl Manifests {
    pub fn read(folder: &Location, key: &ManifestKey) -> Manifests {
        let names = folder.files_here().unwrap_or_default();
        let names = names.iter().filter_map(|f| f.file_name()?.to_str()).filter(|n| is_manifest(n));
        Manifests(names.map(|name| Manifest::read(folder, key, name)).collect())
    }

    /// Whether one of them vouches for the file (see [`Manifest::vouches`]).
    pub fn vouch(&self, rel: &Path, sha256: &str, policy: Policy, register: Option<&str>) -> bool {
        self.0.iter().any(|m| m.vouches(rel, sha256, policy, register))
    }
}

impl Manifest {
    /// The manifest `name` of `folder`; empty when there is none, or when its seal does not
    /// hold under `key` (then nothing in it is vouched for, and a warning says why).
    pub fn read(folder: &Location, key: &ManifestKey, name: &str) -> Manifest {
        let path = folder.join(Path::new(name));
        let Ok(text) = path.read_text() else { return Manifest::default() };
        match serde_json::from_str::<Sealed>(&text) {
            Ok(s) if s.version == VERSION && s.mac == key.seal(&s.files) => Manifest { files: s.files },
            _ => {
                tracing::warn!(
                    "{path}: not sealed with this manifest key (or damaged): nothing in it is taken as redacted"
                );
                Manifest::default()
            }
        }
    }

    /// Writes the manifest into `folder` as `name`, sealed (atomically).
    pub fn write(&self, folder: &Location, key: &ManifestKey, name: &str) -> Result<()> {
        let sealed = Sealed { version: VERSION, mac: key.seal(&self.files), files: self.files.clone() };
        let path = folder.join(Path::new(name));
        let json = serde_json::to_vec_pretty(&sealed).expect("manifest serialises");
        path.write_atomic(&json).map_err(|e| path.error(e))
    }

    pub fn set(&mut self, rel: &Path, entry: Entry) {
        self.files.insert(key_of(rel), entry);
    }

    pub fn remove(&mut self, rel: &Path) {
        self.files.remove(&key_of(rel));
    }

    /// Whether `redact` wrote exactly these bytes at `rel` under `policy` and `register`.
    pub fn vouches(&self, rel: &Path, sha256: &str, policy: Policy, register: Option<&str>) -> bool {
        self.files
            .get(&key_of(rel))
            .is_some_and(|e| e.sha256 == sha256 && e.policy == policy && e.register.as_deref() == register)
    }
}

/// Paths in the manifest use `/` whatever the system.
fn key_of(rel: &Path) -> String {
    rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_entry_or_key_breaks_the_seal() {
        let dir = tempfile::tempdir().unwrap();
        let folder = Location::from(dir.path());
        let (key, other) = (ManifestKey([7; 32]), ManifestKey([8; 32]));
        let mut m = Manifest::default();
        let entry = Entry { sha256: "ab".repeat(32), policy: Policy::All, register: None };
        m.set(Path::new("day1/a.jpg"), entry.clone());
        m.write(&folder, &key, FILE_NAME).unwrap();
        let read = Manifest::read(&folder, &key, FILE_NAME);
        assert!(read.vouches(Path::new("day1/a.jpg"), &entry.sha256, Policy::All, None));
        assert!(!read.vouches(Path::new("day1/a.jpg"), &entry.sha256, Policy::OptOuts, None), "another policy");
        assert!(!read.vouches(Path::new("day1/a.jpg"), &"cd".repeat(32), Policy::All, None), "other bytes");
        assert!(!Manifest::read(&folder, &other, FILE_NAME).vouches(
            Path::new("day1/a.jpg"),
            &entry.sha256,
            Policy::All,
            None
        ));
        let path = dir.path().join(FILE_NAME);
        let forged = std::fs::read_to_string(&path).unwrap().replace(&"ab".repeat(32), &"cd".repeat(32));
        std::fs::write(&path, forged).unwrap();
        assert!(!Manifest::read(&folder, &key, FILE_NAME).vouches(
            Path::new("day1/a.jpg"),
            &"cd".repeat(32),
            Policy::All,
            None
        ));
    }
}
