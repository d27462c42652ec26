//! Where media lives. A [`Location`] names a file or a folder, on the local disk or in an
//! object store (`s3://`, `gs://`, `az://`), and is what every job reads, lists, writes and
//! deletes through. Writes are atomic for a reader: the final name only ever holds a complete
//! file. Run state (journal, lock) is not media and stays on the local disk (see
//! `jobs::state`).

mod local;
mod object;

use std::fmt;
use std::path::{Component, Path, PathBuf};

pub use local::{is_stale_temporary, write_atomic, write_atomic_with};
pub use object::{ObjectLocation, StoreOptions, Version};

use crate::error::{Error, Result};

/// Run-state folders are named `.<output folder>.blurgate`; listings never enter them.
pub const STATE_SUFFIX: &str = ".blurgate";

/// A file or folder that media is read from or written to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Location {
    Local(PathBuf),
    Object(ObjectLocation),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::Object(o) => write!(f, "{o}"),
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
    /// An object's size and ETag from the listing (`None` on the local disk).
    pub version: Option<Version>,
}

/// What [`Location::list`] found.
#[derive(Debug, Default)]
pub struct Listing {
    pub files: Vec<Listed>,
    /// Symbolic links that lead outside the folder, left out (each logged as a warning).
    pub links_outside: Vec<Location>,
}

/// A local file holding a location's content, for readers that need a file name (FFmpeg):
/// the file itself, or a downloaded copy removed when this is dropped.
pub enum LocalCopy {
    Original(PathBuf),
    Downloaded(tempfile::TempPath),
}

impl LocalCopy {
    pub fn path(&self) -> &Path {
        match self {
            LocalCopy::Original(p) => p,
            LocalCopy::Downloaded(t) => t,
        }
    }
}

impl Location {
    /// A local path, or an object store URL (`s3://bucket/prefix`, `gs://…`, `az://…`).
    pub fn parse(text: &str, options: &StoreOptions) -> Result<Location> {
        Ok(match object::parse(text, options)? {
            Some(o) => Location::Object(o),
            None => Location::Local(PathBuf::from(text.strip_prefix("file://").unwrap_or(text))),
        })
    }

    /// The local path, for what only a local file system offers (run state, locks, keys);
    /// `None` for an object.
    pub fn local_path(&self) -> Option<&Path> {
        match self {
            Location::Local(p) => Some(p),
            Location::Object(_) => None,
        }
    }

    /// The error `err` met at this location.
    pub fn error(&self, err: std::io::Error) -> Error {
        Error::io(self.to_string(), err)
    }

    /// The location `rel` below this folder.
    pub fn join(&self, rel: &Path) -> Location {
        match self {
            Location::Local(p) => Location::Local(p.join(rel)),
            Location::Object(o) => Location::Object(o.join(rel)),
        }
    }

    /// The folder this file is in.
    pub fn parent(&self) -> Location {
        match self {
            Location::Local(p) => Location::Local(p.parent().unwrap_or(Path::new(".")).to_path_buf()),
            Location::Object(o) => Location::Object(o.parent()),
        }
    }

    /// The last component of the name.
    pub fn file_name(&self) -> Option<&std::ffi::OsStr> {
        match self {
            Location::Local(p) => p.file_name(),
            Location::Object(o) => o.file_name().map(std::ffi::OsStr::new),
        }
    }

    /// The path of `self` below `folder` (as given, without resolving links).
    pub fn rel_to(&self, folder: &Location) -> Option<PathBuf> {
        match (self, folder) {
            (Location::Local(p), Location::Local(f)) => p.strip_prefix(f).ok().map(Path::to_path_buf),
            (Location::Object(o), Location::Object(f)) => o.rel_to(f),
            _ => None,
        }
    }

    /// The path below this folder of the location written as `display` (a report's `output`).
    pub fn rel_of(&self, display: &str) -> Option<PathBuf> {
        match self {
            Location::Local(p) => Path::new(display).strip_prefix(p).ok().map(Path::to_path_buf),
            Location::Object(o) => display.strip_prefix(&format!("{o}/")).map(PathBuf::from),
        }
    }

    pub fn is_folder(&self) -> Result<bool> {
        match self {
            Location::Local(p) => Ok(std::fs::metadata(p).map_err(|e| Error::io(p, e))?.is_dir()),
            Location::Object(o) => o.is_folder().map_err(|e| self.error(e)),
        }
    }

    pub fn read(&self) -> std::io::Result<Vec<u8>> {
        match self {
            Location::Local(p) => std::fs::read(p),
            Location::Object(o) => o.read(),
        }
    }

    /// The first `n` bytes (fewer when the file is shorter): enough to tell a format.
    pub fn read_head(&self, n: usize) -> std::io::Result<Vec<u8>> {
        use std::io::Read;
        match self {
            Location::Local(p) => {
                let mut head = Vec::with_capacity(n);
                std::fs::File::open(p)?.take(n as u64).read_to_end(&mut head)?;
                Ok(head)
            }
            Location::Object(o) => o.read_head(n),
        }
    }

    /// The sha256 of the content, read in pieces.
    pub fn sha256(&self) -> std::io::Result<String> {
        match self {
            Location::Local(p) => crate::digest::sha256_reader(std::fs::File::open(p)?),
            Location::Object(o) => o.sha256(),
        }
    }

    /// The content as a local file (downloaded piece by piece for an object).
    pub fn local_copy(&self) -> std::io::Result<LocalCopy> {
        match self {
            Location::Local(p) => Ok(LocalCopy::Original(p.clone())),
            Location::Object(o) => {
                let mut file = tempfile::NamedTempFile::new()?;
                o.download(file.as_file_mut())?;
                Ok(LocalCopy::Downloaded(file.into_temp_path()))
            }
        }
    }

    /// Removes the file; one that is already gone is not an error.
    pub fn delete(&self) -> std::io::Result<()> {
        match self {
            Location::Local(p) => match std::fs::remove_file(p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
            Location::Object(o) => o.delete(),
        }
    }

    /// Makes sure the folder exists (an object store has no folders to make).
    pub fn create_folder(&self) -> Result<()> {
        match self {
            Location::Local(p) => std::fs::create_dir_all(p).map_err(|e| Error::io(p, e)),
            Location::Object(_) => Ok(()),
        }
    }

    /// Writes `bytes` under this name: through a temporary file in the same folder, synced
    /// and renamed, or as one object upload.
    pub fn write_atomic(&self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Location::Local(p) => write_atomic(p, bytes),
            Location::Object(o) => o.write(bytes),
        }
    }

    /// Replaces the file with `bytes` as [`Location::write_atomic`] does; an object only if it
    /// is still the version `expected` (where the store can make a PUT conditional).
    pub fn replace_atomic(&self, bytes: &[u8], expected: Option<&Version>) -> std::io::Result<()> {
        match (self, expected) {
            (Location::Object(o), Some(v)) => o.replace(bytes, v),
            _ => self.write_atomic(bytes),
        }
    }

    /// For a writer that needs a file name (a video muxer): `write` fills a local temporary
    /// file, which is then put under this name whole (synced and renamed, or uploaded in parts
    /// that become the object only when all arrived); on any error the final name is left as
    /// it was.
    pub fn write_atomic_with<E: From<std::io::Error>>(
        &self,
        write: impl FnOnce(&Path) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        match self {
            Location::Local(p) => write_atomic_with(p, write),
            Location::Object(o) => {
                let tmp = tempfile::NamedTempFile::new()?.into_temp_path();
                write(&tmp)?;
                Ok(o.upload_file(&tmp)?)
            }
        }
    }

    /// Every file below this folder, sorted by name, run-state folders left out. Symbolic links
    /// are followed only while they stay inside the folder, unless `follow_symlinks`. An
    /// object store's listing is paged by the store and carries each object's version.
    pub fn list(&self, follow_symlinks: bool) -> Result<Listing> {
        match self {
            Location::Local(p) => local::list(p, follow_symlinks),
            Location::Object(o) => {
                let files = o
                    .list()
                    .map_err(|e| self.error(e))?
                    .into_iter()
                    .map(|(o, rel, v)| Listed {
                        location: Location::Object(o),
                        rel,
                        unreadable: None,
                        version: Some(v),
                    })
                    .collect();
                Ok(Listing { files, links_outside: Vec::new() })
            }
        }
    }

    /// The files directly in this folder (not below), sorted by name.
    pub fn files_here(&self) -> Result<Vec<Location>> {
        match self {
            Location::Local(p) => local::files_here(p),
            Location::Object(o) => {
                Ok(o.files_here().map_err(|e| self.error(e))?.into_iter().map(Location::Object).collect())
            }
        }
    }

    /// The folders directly below this one, sorted by name.
    pub fn subfolders(&self) -> Result<Vec<Location>> {
        match self {
            Location::Local(p) => local::subfolders(p),
            Location::Object(o) => {
                Ok(o.subfolders().map_err(|e| self.error(e))?.into_iter().map(Location::Object).collect())
            }
        }
    }

    /// The content as text.
    pub fn read_text(&self) -> Result<String> {
        let bytes = self.read().map_err(|e| self.error(e))?;
        String::from_utf8(bytes)
            .map_err(|e| self.error(std::io::Error::new(std::io::ErrorKind::InvalidData, e.utf8_error())))
    }

    /// Whether `self` lies inside `other` (or is it), after resolving what exists of both.
    pub fn is_within(&self, other: &Location) -> Result<bool> {
        Ok(match (self, other) {
            (Location::Local(a), Location::Local(b)) => local::absolute(a)?.starts_with(local::absolute(b)?),
            (Location::Object(a), Location::Object(b)) => a.is_within(b),
            _ => false,
        })
    }

    /// Whether both name the same file, after resolving what exists of them.
    pub fn same_place(&self, other: &Location) -> Result<bool> {
        Ok(match (self, other) {
            (Location::Local(a), Location::Local(b)) => local::absolute(a)? == local::absolute(b)?,
            _ => self == other,
        })
    }

    /// Whether `rel` stays below a folder when joined to it.
    pub fn stays_below(rel: &Path) -> bool {
        rel.components().all(|c| matches!(c, Component::Normal(_)))
    }
}
