//! What a redact run may do to the files already under its outputs: an output folder of its
//! own, where a failed or held file's older copy is withdrawn, or published files replaced in
//! place (`--replace-published`), which are never removed and only replaced when there is
//! something to hide.

use super::outcome::FileError;
use super::plan::Planned;
use crate::report::{FileReport, FileStatus};
use crate::storage::Location;

/// `redact --replace-published`: the input is a published location (after a late opt-out);
/// each file that shows a face the policy hides is replaced in place by its redacted copy
/// (one atomic write), the others are left untouched, and the location's manifest vouches for
/// all that were checked.
#[derive(Debug, Clone, Default)]
pub struct Replace {
    /// Where the replaced originals are kept, at their paths below the location; `None`: they
    /// are not kept.
    pub keep_originals: Option<Location>,
}

/// The output side of a run, as each file's work sees it.
#[derive(Debug, Clone, Copy)]
pub struct Outputs<'a> {
    /// The output folder (the published location when replacing).
    pub out: &'a Location,
    pub dry_run: bool,
    pub replace: Option<&'a Replace>,
}

impl Outputs<'_> {
    /// Removes an older copy under `output` that must not outlive a failure or a hold; a dry
    /// run removes nothing, and replacing never removes a published file.
    pub fn withdraw(&self, output: &Location) {
        if !self.dry_run && self.replace.is_none() {
            let _ = output.delete();
        }
    }

    /// When replacing with `--keep-originals`: `write` puts the original at its path below
    /// that folder, before it is replaced.
    pub fn keep_original(
        &self,
        p: &Planned,
        write: impl FnOnce(&Location) -> std::io::Result<()>,
    ) -> Result<(), FileError> {
        let Some(keep) = self.replace.and_then(|r| r.keep_originals.as_ref()) else { return Ok(()) };
        let kept = keep.join(&p.input.rel_to(self.out).unwrap_or_default());
        write(&kept).map_err(|err| FileError::Write { path: kept.to_string().into(), err })
    }

    /// When replacing, a file with nothing to hide stays published as it is: true, with the
    /// report saying so.
    pub fn leave_published(&self, p: &Planned, report: &mut FileReport) -> bool {
        if self.replace.is_none() || report.status != FileStatus::Unchanged {
            return false;
        }
        (report.output, report.output_sha256) = (Some(p.output.to_string()), report.input_sha256.clone());
        true
    }
}
