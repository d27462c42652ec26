//! Where media lives. A [`Location`] names a file or a folder (a local path now; object stores
//! next) and is what every job reads, lists, writes and deletes through. Writes are atomic for
//! a reader: the final name only ever holds a complete file. Run state (journal, lock) is not
//! media and stays on the local disk (see `jobs::state`).

use std::fmt;
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use walkdir::WalkDir;

use crate::error::{Error, Result};

/// Run-state folders are named `.<output folder>.blurgate`; listings never enter them.
pub const STATE_SUFFIX: &str = ".blurgate";

/// A file or folder that media is read from or written to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Location {
    Local(PathBuf),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
        }
    }
}

impl From<PathBuf> for Location {
    fn from(p: PathBuf) -> Self {
        Location::Local(p)
    }
}

impl From<&Path> for Location {
    fn from(p: &Path) -> Self {
        Location::Local(p.to_path_buf())
    }
}

/// One file found by [`Location::list`].
#[derive(Debug)]
pub struct Listed {
    pub location: Location,
    /// Its path below the listed folder.
    pub rel: PathBuf,
    /// The entry could not be read (permissions, a broken link): listed so that it is
    /// reported, never dropped.
    pub unreadable: Option<std::io::Error>,
}

/// What [`Location::list`] found.
#[derive(Debug, Default)]
pub struct Listing {
    pub files: Vec<Listed>,
    /// Symbolic links that lead outside the folder, left out (each logged as a warning).
    pub links_outside: Vec<Location>,
}

impl Location {
    /// The local path, for what only a local file system offers (run state, locks).
    pub fn local_path(&self) -> &Path {
        match self {
            Location::Local(p) => p,
        }
    }

    /// The location `rel` below this folder.
    pub fn join(&self, rel: &Path) -> Location {
        match self {
            Location::Local(p) => Location::Local(p.join(rel)),
        }
    }

    /// The last component of the name.
    pub fn file_name(&self) -> Option<&std::ffi::OsStr> {
        self.local_path().file_name()
    }

    pub fn is_folder(&self) -> Result<bool> {
        let p = self.local_path();
        Ok(std::fs::metadata(p).map_err(|e| Error::io(p, e))?.is_dir())
    }

    pub fn read(&self) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.local_path())
    }

    /// The first `n` bytes (fewer when the file is shorter): enough to tell a format.
    pub fn read_head(&self, n: usize) -> std::io::Result<Vec<u8>> {
        use std::io::Read;
        let mut head = Vec::with_capacity(n);
        std::fs::File::open(self.local_path())?.take(n as u64).read_to_end(&mut head)?;
        Ok(head)
    }

    /// The sha256 of the content, read in pieces.
    pub fn sha256(&self) -> std::io::Result<String> {
        crate::digest::sha256_reader(std::fs::File::open(self.local_path())?)
    }

    /// Removes the file; one that is already gone is not an error.
    pub fn delete(&self) -> std::io::Result<()> {
        match std::fs::remove_file(self.local_path()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Makes sure the folder exists.
    pub fn create_folder(&self) -> Result<()> {
        let p = self.local_path();
        std::fs::create_dir_all(p).map_err(|e| Error::io(p, e))
    }

    /// Writes `bytes` under this name through a temporary file in the same folder, synced and
    /// renamed.
    pub fn write_atomic(&self, bytes: &[u8]) -> std::io::Result<()> {
        write_atomic(self.local_path(), bytes)
    }

    /// Like [`Location::write_atomic`] for a writer that needs a file name (a video muxer):
    /// `write` fills the temporary file, which is then synced and renamed; on any error it is
    /// removed and the final name is left as it was.
    pub fn write_atomic_with<E: From<std::io::Error>>(
        &self,
        write: impl FnOnce(&Path) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        atomically(self.local_path(), write)
    }

    /// Every file below this folder, sorted by name, run-state folders left out. Symbolic links
    /// are followed only while they stay inside the folder, unless `follow_symlinks`.
    pub fn list(&self, follow_symlinks: bool) -> Result<Listing> {
        let dir = self.local_path();
        let root = dir.canonicalize().map_err(|e| Error::io(dir, e))?;
        let mut listing = Listing::default();
        let entries =
            WalkDir::new(dir).follow_links(true).sort_by_file_name().into_iter().filter_entry(|e| !is_state_dir(e));
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    let path = e.path().unwrap_or(dir).to_path_buf();
                    let rel = path.strip_prefix(dir).unwrap_or(&path).to_path_buf();
                    let unreadable = Some(std::io::Error::other(e));
                    listing.files.push(Listed { location: Location::Local(path), rel, unreadable });
                    continue;
                }
            };
            if entry.path_is_symlink() && !follow_symlinks {
                let inside = entry.path().canonicalize().is_ok_and(|target| target.starts_with(&root));
                if !inside {
                    tracing::warn!(
                        "skipped {}: a symbolic link to outside {} (links out of an input folder are followed only when asked)",
                        entry.path().display(),
                        dir.display()
                    );
                    listing.links_outside.push(Location::Local(entry.into_path()));
                    continue;
                }
            }
            if entry.file_type().is_file() {
                let rel = entry.path().strip_prefix(dir).expect("walkdir yields paths under its root").to_path_buf();
                listing.files.push(Listed { location: Location::Local(entry.into_path()), rel, unreadable: None });
            }
        }
        Ok(listing)
    }

    /// The folders directly below this one, sorted by name.
    pub fn subfolders(&self) -> Result<Vec<Location>> {
        let dir = self.local_path();
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        found.sort();
        Ok(found.into_iter().map(Location::Local).collect())
    }

    /// The content as text.
    pub fn read_text(&self) -> Result<String> {
        let p = self.local_path();
        std::fs::read_to_string(p).map_err(|e| Error::io(p, e))
    }

    /// Whether `self` lies inside `other` (or is it), after resolving what exists of both.
    pub fn is_within(&self, other: &Location) -> Result<bool> {
        Ok(absolute(self.local_path())?.starts_with(absolute(other.local_path())?))
    }

    /// Whether both name the same file, after resolving what exists of them.
    pub fn same_place(&self, other: &Location) -> Result<bool> {
        Ok(absolute(self.local_path())? == absolute(other.local_path())?)
    }

    /// Whether `rel` stays below a folder when joined to it.
    pub fn stays_below(rel: &Path) -> bool {
        rel.components().all(|c| matches!(c, Component::Normal(_)))
    }
}

fn is_state_dir(e: &walkdir::DirEntry) -> bool {
    let name = e.file_name().to_string_lossy();
    e.file_type().is_dir() && e.depth() > 0 && name.starts_with('.') && name.ends_with(STATE_SUFFIX)
}

/// Absolute, lexically normalised path (the output folder may not exist yet).
fn absolute(path: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(path).map_err(|e| Error::io(path, e))?;
    // Resolve symlinks of the part that exists so `out` inside `in` is caught through links.
    let mut existing = abs.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.parent(), existing.file_name()) {
            (Some(p), Some(n)) => {
                rest.push(n.to_owned());
                existing = p;
            }
            _ => break,
        }
    }
    let mut resolved = existing.canonicalize().unwrap_or_else(|_| existing.to_path_buf());
    resolved.extend(rest.iter().rev());
    Ok(resolved)
}

/// Writes `bytes` to `path` through a temporary file in the same folder, synced and renamed,
/// so the final name only ever holds a complete file. Temporary files are named
/// `.NAME.blurgate-PID-N.tmp`; a run removes those an interrupted one left.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    atomically(path, |tmp| std::fs::File::create(tmp)?.write_all(bytes))
}

/// Runs `write` on a fresh temporary name beside `path` (`.NAME.blurgate-PID-N.tmp`), syncs
/// what it wrote and renames it to `path`; removes it on any error.
fn atomically<E: From<std::io::Error>>(
    path: &Path,
    write: impl FnOnce(&Path) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp: PathBuf =
        dir.join(format!(".{name}.blurgate-{}-{}.tmp", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
    let result = write(&tmp).and_then(|()| {
        std::fs::OpenOptions::new().write(true).open(&tmp)?.sync_all()?;
        Ok(std::fs::rename(&tmp, path)?)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Whether `name` is a temporary file [`write_atomic`] leaves when interrupted.
pub fn is_stale_temporary(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp") && name.contains(".blurgate-")
}
