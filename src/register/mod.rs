//! The opt-out register: the people who refused (or, for `consented-only`, gave) consent,
//! each as face embeddings, never photos. Stored encrypted ([`store`]); records hold only the
//! id, an optional label, the refused purposes, enrolment and expiry dates and embeddings.

pub mod keystore;
pub mod store;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use crate::embed::Embedding;
use crate::error::{Error, RegisterProblem, Result};
use crate::matching::{ImpostorTail, Match, ThresholdSource, Thresholds};
use keystore::{key_dir, refuse_in_folder_of};

/// How the messages name the folder a register lies in.
const REGISTER_FOLDER: &str = "the register's folder";
pub use store::{KeySource, RegisterKey};

/// The purpose refused when enrolment names none.
pub const DEFAULT_PURPOSE: &str = "promotion";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Register {
    pub people: Vec<Person>,
    /// The impostor tail `blurgate calibrate --register` fitted on the organisation's photos
    /// (three numbers, no face data); without it the shipped one is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<ImpostorTail>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Person {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Purposes this person refused, e.g. `promotion`. Empty: consented to everything.
    pub refuses: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub enrolled_at: OffsetDateTime,
    /// After this day the entry no longer matches and `register purge-expired` removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Date>,
    pub embeddings: Vec<Embedding>,
}

impl Person {
    pub fn is_expired(&self, today: Date) -> bool {
        self.expires_at.is_some_and(|d| d < today)
    }

    pub fn refuses(&self, purpose: &str) -> bool {
        self.refuses.iter().any(|p| p == purpose)
    }
}

impl Register {
    /// Reads and decrypts the register at `path`.
    pub fn load(path: &Path, key: &RegisterKey) -> Result<Register> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        store::open(&bytes, key).map_err(|problem| Error::Register { path: path.to_path_buf(), problem })
    }

    /// Encrypts and writes atomically (an owner-only temporary file renamed over the old one).
    pub fn save(&self, path: &Path, key: &RegisterKey) -> Result<()> {
        keystore::write_private_atomic(path, &store::seal(self, key)).map_err(|e| Error::io(path, e))
    }

    pub fn person(&self, id: &str) -> Option<&Person> {
        self.people.iter().find(|p| p.id == id)
    }

    /// Adds `person`; an existing id gains the new embeddings, or is replaced with `replace`.
    pub fn enrol(&mut self, person: Person, replace: bool) {
        match self.people.iter_mut().find(|p| p.id == person.id) {
            Some(existing) if !replace => {
                existing.embeddings.extend(person.embeddings);
                existing.label = person.label.or(existing.label.take());
                existing.refuses = person.refuses;
                existing.expires_at = person.expires_at;
            }
            Some(existing) => *existing = person,
            None => self.people.push(person),
        }
    }

    /// Removes the person; false if the id was not there.
    pub fn forget(&mut self, id: &str) -> bool {
        let before = self.people.len();
        self.people.retain(|p| p.id != id);
        self.people.len() != before
    }

    /// Removes every entry whose expiry day has passed; returns their ids.
    pub fn purge_expired(&mut self, today: Date) -> Vec<String> {
        let (gone, kept): (Vec<Person>, Vec<Person>) = self.people.drain(..).partition(|p| p.is_expired(today));
        self.people = kept;
        gone.into_iter().map(|p| p.id).collect()
    }

    /// The most similar unexpired person, each compared through the mean of their embeddings
    /// (one template per person: the mean of three photos separated the hard genuine pairs
    /// better than the best of them, and one comparison per person keeps
    /// [`Register::thresholds`] exact), and whether they refused `purpose`.
    pub fn best_match(&self, face: &Embedding, today: Date, purpose: &str) -> Option<Match<'_>> {
        self.people
            .iter()
            .filter(|p| !p.is_expired(today))
            .filter_map(|p| {
                let similarity = Embedding::mean(&p.embeddings)?.similarity(face);
                Some(Match { id: &p.id, similarity, refuses: p.refuses(purpose) })
            })
            .max_by(|a, b| a.similarity.total_cmp(&b.similarity))
    }

    /// The band edges for this register on `today`: for its unexpired people, from its own
    /// calibration or the shipped tail, at per-face false-redaction rate `target`.
    pub fn thresholds(&self, today: Date, target: f64) -> Thresholds {
        let people = self.people.iter().filter(|p| !p.is_expired(today)).count();
        match &self.calibration {
            Some(tail) => Thresholds::for_people(tail, people, target, ThresholdSource::Calibration),
            None => Thresholds::for_people(&ImpostorTail::SHIPPED, people, target, ThresholdSource::Model),
        }
    }
}

/// A register on disk, with the `--key-file` given for it, if any.
#[derive(Debug, Clone)]
pub struct RegisterFile {
    pub path: PathBuf,
    pub key_file: Option<PathBuf>,
}

/// What `forget` did, with the file's sha256 before and after.
#[derive(Debug, Clone)]
pub struct Forgotten {
    pub before: String,
    pub after: String,
}

/// What `rekey` did: where the new key went and what became of the old one.
#[derive(Debug, Clone)]
pub struct Rekeyed {
    pub new_key: PathBuf,
    /// The old key's file, deleted; `None` when it came from `--key-file` or the environment,
    /// which blurgate leaves for the user to destroy.
    pub deleted: Option<PathBuf>,
    pub before: String,
    pub after: String,
}

/// What `move_key` did.
#[derive(Debug, Clone)]
pub struct MovedKey {
    pub from: PathBuf,
    pub to: PathBuf,
    pub before: String,
    pub after: String,
}

impl RegisterFile {
    pub fn new(path: &Path, key_file: Option<&Path>) -> Self {
        RegisterFile { path: path.to_path_buf(), key_file: key_file.map(Path::to_path_buf) }
    }

    /// Where this register's key comes from: `--key-file`, else `BLURGATE_REGISTER_KEY`, else
    /// the key store's file for the key id in its header, else (a register made before keys
    /// were kept apart) `<register>.key` beside it. A key file inside the register's folder is
    /// refused, except that old one; a key that is nowhere is [`Error::KeyLost`].
    pub fn key_source(&self) -> Result<KeySource> {
        if let Some(file) = &self.key_file {
            refuse_in_folder_of(file, &self.path, REGISTER_FOLDER)?;
            if !file.exists() && self.path.exists() {
                return Err(Error::KeyLost { register: self.path.clone(), looked: vec![file.clone()] });
            }
            return Ok(KeySource::File(file.clone()));
        }
        if std::env::var_os(store::KEY_ENV).is_some_and(|v| !v.is_empty()) {
            return Ok(KeySource::Env);
        }
        let beside = store::beside_key_path(&self.path);
        let mut looked = Vec::new();
        if let Some(id) = std::fs::read(&self.path).ok().as_deref().and_then(store::key_id) {
            let stored = key_dir()?.join(id.file_name());
            if stored.exists() {
                refuse_in_folder_of(&stored, &self.path, REGISTER_FOLDER)?;
                return Ok(KeySource::Store(stored));
            }
            looked.push(stored);
        }
        if beside.exists() {
            return Ok(KeySource::Beside(beside));
        }
        looked.push(beside);
        Err(Error::KeyLost { register: self.path.clone(), looked })
    }

    pub fn load(&self) -> Result<(Register, RegisterKey)> {
        if !self.path.is_file() {
            return Err(Error::Register { path: self.path.clone(), problem: RegisterProblem::Missing });
        }
        let source = self.key_source()?;
        if let KeySource::Beside(key) = &source {
            tracing::warn!(
                "{}: its key lies beside it in {}: whoever copies the folder gets both; run `blurgate register move-key --register {}` to move it to the key store",
                self.path.display(),
                key.display(),
                self.path.display()
            );
        }
        let key = source.load()?;
        Ok((Register::load(&self.path, &key)?, key))
    }

    /// Loads the register, or starts an empty one with a new key (kept at `--key-file`, else in
    /// the key store; from `BLURGATE_REGISTER_KEY` when that is set); the second value says
    /// where a new key was stored.
    pub fn load_or_create(&self) -> Result<(Register, RegisterKey, Option<PathBuf>)> {
        if self.path.exists() {
            let (r, k) = self.load()?;
            return Ok((r, k, None));
        }
        let key = RegisterKey::generate();
        let at = match self.key_source() {
            Ok(KeySource::File(file)) if !file.exists() => file,
            // A key left beside a deleted register is not reused: the new one goes to the store.
            Ok(KeySource::Beside(_)) | Err(Error::KeyLost { .. }) => key_dir()?.join(key.id().file_name()),
            Ok(source) => return Ok((Register::default(), source.load()?, None)),
            Err(e) => return Err(e),
        };
        refuse_in_folder_of(&at, &self.path, REGISTER_FOLDER)?;
        keystore::write_new_key(&at, key.bytes())?;
        Ok((Register::default(), key, Some(at)))
    }

    pub fn digest(&self) -> Result<String> {
        let file = std::fs::File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        crate::digest::sha256_reader(file).map_err(|e| Error::io(&self.path, e))
    }

    /// Deletes `id`, writes the register, then re-reads it from disk to prove the entry is gone.
    pub fn forget(&self, id: &str) -> Result<Forgotten> {
        let (mut register, key) = self.load()?;
        let before = self.digest()?;
        if !register.forget(id) {
            let problem = RegisterProblem::UnknownPerson(id.to_string());
            return Err(Error::Register { path: self.path.clone(), problem });
        }
        register.save(&self.path, &key)?;
        if Register::load(&self.path, &key)?.person(id).is_some() {
            let problem = RegisterProblem::StillPresent(id.to_string());
            return Err(Error::Register { path: self.path.clone(), problem });
        }
        Ok(Forgotten { before, after: self.digest()? })
    }

    /// Re-encrypts the register under a new key, kept at `new_key_file` or else in the key store,
    /// and retires the old one. The new key is on disk before the register is replaced (one
    /// rename), so at every moment one stored key opens the file; a key file in the key store or
    /// beside the register is then deleted.
    pub fn rekey(&self, new_key_file: Option<&Path>) -> Result<Rekeyed> {
        let source = self.key_source()?;
        let (register, old) = self.load()?;
        let before = self.digest()?;
        let new = RegisterKey::generate();
        let at = match new_key_file {
            Some(file) => file.to_path_buf(),
            None => key_dir()?.join(new.id().file_name()),
        };
        refuse_in_folder_of(&at, &self.path, REGISTER_FOLDER)?;
        keystore::write_new_key(&at, new.bytes())?;
        if let Err(e) = register.save(&self.path, &new).and_then(|()| Register::load(&self.path, &new).map(drop)) {
            // The new key stays unless the old one still opens the file.
            if Register::load(&self.path, &old).is_ok() {
                let _ = std::fs::remove_file(&at);
            }
            return Err(e);
        }
        let deleted = match source {
            KeySource::Store(p) | KeySource::Beside(p) => {
                std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
                Some(p)
            }
            KeySource::File(_) | KeySource::Env => None,
        };
        Ok(Rekeyed { new_key: at, deleted, before, after: self.digest()? })
    }

    /// Moves the key at `--key-file`, or else beside the register, into the key store and
    /// deletes the old file; `None` when there is no key beside the register, or the one given
    /// is already the key store's file. The register
    /// is written again (same key), so one made before key ids names its key in its header.
    pub fn move_key(&self) -> Result<Option<MovedKey>> {
        let from = match &self.key_file {
            Some(file) => file.clone(),
            None => store::beside_key_path(&self.path),
        };
        if self.key_file.is_none() && !from.exists() {
            return Ok(None);
        }
        let key = KeySource::File(from.clone()).load()?;
        let register = Register::load(&self.path, &key)?;
        let to = key_dir()?.join(key.id().file_name());
        if to.exists() && to.canonicalize().ok() == from.canonicalize().ok() {
            return Ok(None);
        }
        refuse_in_folder_of(&to, &self.path, REGISTER_FOLDER)?;
        match keystore::write_new_key(&to, key.bytes()) {
            // An earlier move stopped before deleting the old file.
            Err(Error::KeyExists { .. }) if KeySource::Store(to.clone()).load()?.id() == key.id() => {}
            other => other?,
        }
        let before = self.digest()?;
        register.save(&self.path, &key)?;
        let after = self.digest()?;
        std::fs::remove_file(&from).map_err(|e| Error::io(&from, e))?;
        Ok(Some(MovedKey { from, to, before, after }))
    }
}

pub fn today() -> Date {
    OffsetDateTime::now_utc().date()
}

/// `YYYY-MM-DD`.
pub fn parse_date(text: &str) -> std::result::Result<Date, time::error::Parse> {
    Date::parse(text, time::macros::format_description!("[year]-[month]-[day]"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(id: &str, v: Vec<f32>, expires: Option<Date>) -> Person {
        Person {
            id: id.into(),
            label: None,
            refuses: vec![DEFAULT_PURPOSE.into()],
            enrolled_at: OffsetDateTime::UNIX_EPOCH,
            expires_at: expires,
            embeddings: vec![Embedding::from_raw(v).unwrap()],
        }
    }

    #[test]
    fn matching_skips_expired_people_and_purge_removes_them() {
        let today = parse_date("2026-11-23").unwrap();
        let mut reg = Register::default();
        reg.enrol(person("a", vec![1.0, 0.0], Some(parse_date("2026-11-22").unwrap())), false);
        reg.enrol(person("b", vec![0.6, 0.8], None), false);
        let face = Embedding::from_raw(vec![1.0, 0.0]).unwrap();
        let m = reg.best_match(&face, today, DEFAULT_PURPOSE).unwrap();
        assert_eq!((m.id, m.refuses), ("b", true));
        assert!((m.similarity - 0.6).abs() < 1e-6);
        assert_eq!(reg.purge_expired(today), vec!["a".to_string()]);
        assert!(reg.person("a").is_none());
    }

    #[test]
    fn re_enrolling_adds_or_replaces() {
        let mut reg = Register::default();
        reg.enrol(person("a", vec![1.0, 0.0], None), false);
        reg.enrol(person("a", vec![0.0, 1.0], None), false);
        assert_eq!(reg.person("a").unwrap().embeddings.len(), 2);
        reg.enrol(person("a", vec![0.0, 1.0], None), true);
        assert_eq!(reg.person("a").unwrap().embeddings.len(), 1);
        assert!(reg.forget("a") && !reg.forget("a"));
    }
}
