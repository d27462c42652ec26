//! Which files a job covers and where each one's output goes. Every file under the inputs is
//! accounted for: checked, failed before reading (unreadable, unsupported) or skipped with a
//! reason (not media, a link out of its folder); none is dropped silently.

use std::collections::HashMap;
use std::path::PathBuf;

use super::outcome::FileError;
pub use super::shard::Shard;
use crate::error::{Error, Result};
use crate::media::{Classified, MediaKind};
use crate::report::{FileReport, FileStatus};
use crate::storage::{Location, Version};

/// Why a file is left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Skip {
    #[error("not a media file")]
    NotMedia,
    #[error("a symbolic link that leads outside its input folder")]
    LinkOutside,
    #[error("blurgate's manifest of this folder")]
    Manifest,
}

/// What a job does with a file it found.
#[derive(Debug)]
pub enum Verdict {
    Check,
    /// Known before reading it that it cannot be checked.
    Fail(FileError),
    Skip(Skip),
}

impl Verdict {
    /// Whether the file is to be checked: a skipped file is marked so in `report` (false), a
    /// failure known in advance is returned.
    pub fn admit(self, report: &mut FileReport) -> Result<bool, FileError> {
        match self {
            Verdict::Check => Ok(true),
            Verdict::Fail(e) => Err(e),
            Verdict::Skip(why) => {
                report.status = FileStatus::Skipped;
                report.reason = Some(why.to_string());
                Ok(false)
            }
        }
    }
}

/// A file found in the inputs.
#[derive(Debug)]
pub struct Found {
    pub input: Location,
    /// Path relative to the folder it was found in (its name for a file given directly).
    pub rel: PathBuf,
    pub verdict: Verdict,
    /// An object's size and ETag, from the listing.
    pub version: Option<Version>,
}

#[derive(Debug, Default)]
pub struct Walk {
    pub files: Vec<Found>,
    /// The input folders.
    pub folders: Vec<Location>,
}

/// Bytes read from a file whose name says nothing, to tell media by content.
const SNIFF_BYTES: usize = 64;

/// Every file under the inputs: folders recursively, files as given whatever their name.
/// Symlinks are followed only while they stay inside their input folder, unless
/// `follow_symlinks`. A file whose name is not a media type's is checked when its first bytes
/// are a format blurgate reads.
pub fn walk(inputs: &[Location], follow_symlinks: bool, shard: Option<Shard>) -> Result<Walk> {
    let mut walk = Walk::default();
    for input in inputs {
        if !input.is_folder()? {
            let name = input.file_name().ok_or_else(|| Error::NotAFile { input: input.to_string() })?;
            let (rel, version) = (PathBuf::from(name), None);
            walk.files.push(Found { input: input.clone(), rel, verdict: Verdict::Check, version });
            continue;
        }
        walk.folders.push(input.clone());
        let listing = input.list(follow_symlinks)?;
        for listed in listing.files {
            let manifest = listed.rel.file_name().and_then(|n| n.to_str()).is_some_and(super::manifest::is_manifest);
            let verdict = match (listed.unreadable, MediaKind::classify(&listed.rel)) {
                _ if manifest => Verdict::Skip(Skip::Manifest),
                (Some(e), _) => Verdict::Fail(FileError::Read(e)),
                (None, Classified::Media(_)) => Verdict::Check,
                (None, Classified::Unsupported(ext)) => Verdict::Fail(FileError::Unsupported(ext)),
                (None, Classified::Other) => match listed.location.read_head(SNIFF_BYTES) {
                    Ok(head) if MediaKind::sniff(&head).is_some() => Verdict::Check,
                    Ok(_) => Verdict::Skip(Skip::NotMedia),
                    Err(e) => Verdict::Fail(FileError::Read(e)),
                },
            };
            walk.files.push(Found { input: listed.location, rel: listed.rel, verdict, version: listed.version });
        }
        for link in listing.links_outside {
            let rel = link.rel_to(input).unwrap_or_else(|| PathBuf::from(link.to_string()));
            walk.files.push(Found { input: link, rel, verdict: Verdict::Skip(Skip::LinkOutside), version: None });
        }
    }
    if let Some(shard) = shard {
        walk.files.retain(|f| shard.covers(&f.rel));
    }
    Ok(walk)
}

/// One file of a run and where its redacted copy goes.
#[derive(Debug)]
pub struct Planned {
    pub input: Location,
    pub output: Location,
    pub verdict: Verdict,
    /// The input object's size and ETag, from the listing.
    pub version: Option<Version>,
}

/// Maps every input to its place under `out`: a folder's files keep their path relative to
/// the folder, a file named on the command line lands at the top. Refuses an output folder
/// inside an input folder (or the reverse) and two inputs that would share an output path.
/// With `extension`, outputs get it in place of their own (the run writes another format).
pub fn plan(
    inputs: &[Location],
    out: &Location,
    follow_symlinks: bool,
    shard: Option<Shard>,
    extension: Option<&str>,
) -> Result<Vec<Planned>> {
    let walk = walk(inputs, follow_symlinks, shard)?;
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
        // A run that writes photos in another format leaves videos in their own.
        let output = match extension {
            Some(ext) if !crate::media::video::has_video_extension(&f.rel) => out.join(&f.rel.with_extension(ext)),
            _ => out.join(&f.rel),
        };
        if !matches!(f.verdict, Verdict::Skip(_)) {
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
        }
        files.push(Planned { input: f.input, output, verdict: f.verdict, version: f.version });
    }
    Ok(files)
}

/// The files of published locations, each its own output (`redact --replace-published`).
pub fn in_place(locations: &[Location], follow_symlinks: bool, shard: Option<Shard>) -> Result<Vec<Planned>> {
    let walk = walk(locations, follow_symlinks, shard)?;
    Ok(walk
        .files
        .into_iter()
        .map(|f| Planned { output: f.input.clone(), input: f.input, verdict: f.verdict, version: f.version })
        .collect())
}
