//! Files and folders on the local disk.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use walkdir::WalkDir;

use super::{Listed, Listing, Location, STATE_SUFFIX};
use crate::error::{Error, Result};

/// Every file below this folder, sorted by name, run-state folders left out. Symbolic links
/// are followed only while they stay inside the folder, unless `follow_symlinks`.
pub fn list(dir: &Path, follow_symlinks: bool) -> Result<Listing> {
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
                listing.files.push(Listed { location: Location::Local(path), rel, unreadable, version: None });
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
            listing.files.push(Listed {
                location: Location::Local(entry.into_path()),
                rel,
                unreadable: None,
                version: None,
            });
        }
    }
    Ok(listing)
}

/// The folders directly below this one, sorted by name.
pub fn subfolders(dir: &Path) -> Result<Vec<Location>> {
    entries(dir, Path::is_dir)
}

/// The files directly in this folder, sorted by name.
pub fn files_here(dir: &Path) -> Result<Vec<Location>> {
    entries(dir, Path::is_file)
}

fn entries(dir: &Path, keep: fn(&Path) -> bool) -> Result<Vec<Location>> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| keep(p))
        .collect();
    found.sort();
    Ok(found.into_iter().map(Location::Local).collect())
}

fn is_state_dir(e: &walkdir::DirEntry) -> bool {
    let name = e.file_name().to_string_lossy();
    e.file_type().is_dir() && e.depth() > 0 && name.starts_with('.') && name.ends_with(STATE_SUFFIX)
}

/// Absolute, lexically normalised path (the output folder may not exist yet).
pub(super) fn absolute(path: &Path) -> Result<PathBuf> {
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
/// so the final name only ever holds a complete file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with(path, |tmp| std::fs::File::create(tmp)?.write_all(bytes))
}

/// Lets `write` fill a temporary file in the same folder as `path` (for writers that want a
/// file name, such as FFmpeg's), then syncs it and renames it to `path`. Temporary files are
/// named `.NAME.blurgate-PID-N.tmp`; a run removes those an interrupted one left.
pub fn write_atomic_with<E: From<std::io::Error>>(
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
