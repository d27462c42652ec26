//! Which files a job covers and where each one's output goes.

use std::collections::HashMap;
use std::path::PathBuf;

use super::outcome::FileError;
use crate::error::{Error, Result};
use crate::media::{Classified, MediaKind};
use crate::storage::Location;

/// A file found in the inputs.
#[derive(Debug)]
pub struct Found {
    pub input: Location,
    /// Path relative to the folder it was found in (its name for a file given directly).
    pub rel: PathBuf,
    /// Known before reading it that it cannot be checked (unreadable entry, unsupported
    /// media type).
    pub problem: Option<FileError>,
}

#[derive(Debug, Default)]
pub struct Walk {
    pub files: Vec<Found>,
    /// Files in the input folders that are not media (text, sidecars) and links leading out.
    pub ignored: usize,
    /// The input folders.
    pub folders: Vec<Location>,
}

/// Every photo under the inputs: folders recursively, files as given whatever their
/// extension. Symlinks are followed only while they stay inside their input folder, unless
/// `follow_symlinks`. Entries that cannot be read are listed with their problem, not dropped.
pub fn walk(inputs: &[Location], follow_symlinks: bool) -> Result<Walk> {
    let mut walk = Walk::default();
    for input in inputs {
        if !input.is_folder()? {
            let name = input.file_name().ok_or_else(|| Error::NotAFile { input: input.to_string() })?;
            walk.files.push(Found { input: input.clone(), rel: PathBuf::from(name), problem: None });
            continue;
        }
        walk.folders.push(input.clone());
        let listing = input.list(follow_symlinks)?;
        walk.ignored += listing.links_skipped;
        for listed in listing.files {
            let problem = match (listed.unreadable, MediaKind::classify(&listed.rel)) {
                (Some(e), _) => Some(FileError::Read(e)),
                (None, Classified::Media(_)) => None,
                (None, Classified::Unsupported(ext)) => Some(FileError::Unsupported(ext)),
                (None, Classified::Other) => {
                    walk.ignored += 1;
                    continue;
                }
            };
            walk.files.push(Found { input: listed.location, rel: listed.rel, problem });
        }
    }
    Ok(walk)
}

/// One file of a run and where its redacted copy goes.
#[derive(Debug)]
pub struct Planned {
    pub input: Location,
    pub output: Location,
    pub problem: Option<FileError>,
}

#[derive(Debug, Default)]
pub struct Plan {
    pub files: Vec<Planned>,
    /// Files in the input folders that are not media and links leading out.
    pub ignored: usize,
}

/// Maps every input to its place under `out`: a folder's files keep their path relative to
/// the folder, a file named on the command line lands at the top. Refuses an output folder
/// inside an input folder (or the reverse) and two inputs that would share an output path.
pub fn plan(inputs: &[Location], out: &Location, follow_symlinks: bool) -> Result<Plan> {
    let walk = walk(inputs, follow_symlinks)?;
    for folder in &walk.folders {
        if out.is_within(folder)? {
            return Err(Error::OutputInsideInput { out: out.to_string().into(), input: folder.to_string().into() });
        }
        if folder.is_within(out)? {
            return Err(Error::InputInsideOutput { input: folder.to_string().into(), out: out.to_string().into() });
        }
    }
    let mut seen: HashMap<Location, Location> = HashMap::new();
    let mut files = Vec::with_capacity(walk.files.len());
    for f in walk.files {
        // Relative paths come from walking real folders, but check anyway: nothing may be
        // written outside `out`.
        if !Location::stays_below(&f.rel) {
            return Err(Error::OutputEscapes { input: f.input.to_string().into(), out: out.to_string().into() });
        }
        let output = out.join(&f.rel);
        if let Some(other) = seen.insert(output.clone(), f.input.clone()) {
            return Err(Error::SameOutput {
                first: other.to_string().into(),
                second: f.input.to_string().into(),
                output: output.to_string().into(),
            });
        }
        if output.same_place(&f.input)? {
            return Err(Error::WouldOverwrite { input: f.input.to_string().into() });
        }
        files.push(Planned { input: f.input, output, problem: f.problem });
    }
    Ok(Plan { files, ignored: walk.ignored })
}
