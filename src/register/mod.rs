//! The opt-out register: the people who refused (or, for `consented-only`, gave) consent,
//! each as face embeddings, never photos. Stored encrypted ([`store`]); records hold only the
//! id, an optional label, the refused purposes, enrolment and expiry dates and embeddings.

pub mod store;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use crate::embed::Embedding;
use crate::error::{Error, RegisterProblem, Result};
use crate::matching::{ImpostorTail, Match, ThresholdSource, Thresholds};
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

    /// Encrypts and writes atomically (a temporary file renamed over the old one).
    pub fn save(&self, path: &Path, key: &RegisterKey) -> Result<()> {
        crate::storage::write_atomic(path, &store::seal(self, key)).map_err(|e| Error::io(path, e))
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

/// A register on disk with the source of its key.
#[derive(Debug, Clone)]
pub struct RegisterFile {
    pub path: PathBuf,
    pub key: KeySource,
}

/// What `forget` did, with the file's sha256 before and after.
#[derive(Debug, Clone)]
pub struct Forgotten {
    pub before: String,
    pub after: String,
}

impl RegisterFile {
    pub fn new(path: &Path, key_file: Option<&Path>) -> Self {
        RegisterFile { path: path.to_path_buf(), key: KeySource::resolve(key_file, path) }
    }

    pub fn load(&self) -> Result<(Register, RegisterKey)> {
        if !self.path.is_file() {
            return Err(Error::Register { path: self.path.clone(), problem: RegisterProblem::Missing });
        }
        let key = self.key.load()?;
        Ok((Register::load(&self.path, &key)?, key))
    }

    /// Loads the register, or starts an empty one with a new key; the second value says where
    /// a new key was stored.
    pub fn load_or_create(&self) -> Result<(Register, RegisterKey, Option<String>)> {
        if self.path.exists() {
            let (r, k) = self.load()?;
            return Ok((r, k, None));
        }
        match self.key.load() {
            Ok(key) => Ok((Register::default(), key, None)),
            Err(_) if matches!(&self.key, KeySource::File(p) if !p.exists()) => {
                let key = RegisterKey::generate();
                let stored = self.key.store_new(&key)?.map(|p| p.display().to_string());
                Ok((Register::default(), key, stored))
            }
            Err(e) => Err(e),
        }
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
