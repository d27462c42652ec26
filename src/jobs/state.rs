//! Run state kept beside the output folder, in `.<out>.blurgate/` (not inside it: the output
//! folder is what gets published, and the journal names files and register ids): a lock so two
//! runs never write one output folder at once, and a journal of finished files so an
//! interrupted run resumes where it stopped.
//!
//! A journal line says: this input (by sha256), checked with these settings (by hash),
//! produced this output (by sha256), with this report entry. A file is skipped only when all
//! three still hold, so a changed photo, register, model or option is always checked again.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::digest::sha256_hex;
use crate::error::{Error, Result};
use crate::report::FileReport;
use crate::storage::{self, Location, STATE_SUFFIX};

const JOURNAL: &str = "journal.jsonl";
const LOCK: &str = "lock";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finished {
    /// The output location as the report writes it.
    pub output: String,
    pub input_sha256: String,
    pub settings: String,
    pub output_sha256: String,
    pub report: FileReport,
}

pub struct RunState {
    _lock: File,
    journal: Mutex<File>,
    done: HashMap<String, Finished>,
}

impl RunState {
    /// Locks `out` for this run, removes temporary files an interrupted run left behind, and
    /// reads the journal (unless `fresh`, which starts it anew). The state of an object-store
    /// output is kept on this machine, under `cache` (else the temporary folder), named by
    /// the output's URL and `name` (the shard): the lock then guards against runs on this
    /// machine only.
    pub fn open(out: &Location, fresh: bool, cache: Option<&Path>, name: &str) -> Result<RunState> {
        let dir = match out.local_path() {
            Some(out) => state_dir(out)?,
            None => {
                let base = cache.map_or_else(|| std::env::temp_dir().join("blurgate"), Path::to_path_buf);
                base.join("runs").join(&sha256_hex(format!("{out}|{name}").as_bytes())[..24])
            }
        };
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let lock_path = dir.join(LOCK);
        let lock = File::create(&lock_path).map_err(|e| Error::io(&lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(Error::Busy { out: out.to_string().into() }),
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&lock_path, e)),
        }
        if let Some(out) = out.local_path() {
            remove_stale_temporaries(out);
        }
        let journal_path = dir.join(JOURNAL);
        let mut done = HashMap::new();
        if !fresh {
            if let Ok(text) = std::fs::read_to_string(&journal_path) {
                // A line cut short by a kill is simply not a finished file.
                for f in text.lines().filter_map(|l| serde_json::from_str::<Finished>(l).ok()) {
                    done.insert(f.output.clone(), f);
                }
            }
        }
        let journal = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .truncate(false)
            .open(&journal_path)
            .map_err(|e| Error::io(&journal_path, e))?;
        if fresh {
            journal.set_len(0).map_err(|e| Error::io(&journal_path, e))?;
        }
        Ok(RunState { _lock: lock, journal: Mutex::new(journal), done })
    }

    /// The earlier result for `output`, if the same input was checked with the same settings
    /// and the output on disk is still the one written then.
    pub fn finished(&self, output: &Location, input_sha256: &str, settings: &str) -> Option<&Finished> {
        let f = self.done.get(&output.to_string())?;
        if f.input_sha256 != input_sha256 || f.settings != settings {
            return None;
        }
        let on_disk = output.sha256().ok()?;
        (on_disk == f.output_sha256).then_some(f)
    }

    pub fn record(&self, finished: &Finished) -> Result<()> {
        let mut line = serde_json::to_string(finished).expect("journal entry serialises");
        line.push('\n');
        let mut journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        journal.write_all(line.as_bytes()).map_err(|e| Error::io(JOURNAL, e))
    }
}

/// `.<name>.blurgate` in the output folder's parent.
pub fn state_dir(out: &Path) -> Result<PathBuf> {
    let abs = out.canonicalize().map_err(|e| Error::io(out, e))?;
    let (Some(parent), Some(name)) = (abs.parent(), abs.file_name()) else {
        return Err(Error::OutputAtRoot { out: out.to_path_buf() });
    };
    Ok(parent.join(format!(".{}{STATE_SUFFIX}", name.to_string_lossy())))
}

/// Temporary files an interrupted [`storage::write_atomic`] left.
fn remove_stale_temporaries(out: &Path) {
    let stale = walkdir::WalkDir::new(out)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file() && storage::is_stale_temporary(&e.file_name().to_string_lossy()));
    for entry in stale {
        let _ = std::fs::remove_file(entry.path());
    }
}
