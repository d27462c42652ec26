//! From a library error to what the user reads and the exit code: the library says what is
//! wrong; this adds which flag or set-up step fixes it.

use blurgate::error::{KeyProblem, Refusal, RegisterProblem};
use blurgate::Error;

/// Exit codes, as `--help` documents them.
pub const FILES_FAILED: u8 = 1;
pub const USAGE_OR_SETUP: u8 = 2;

/// A request the command line itself refuses (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    Usage(msg.into()).into()
}

/// The message for `e` with what to do about it, and the exit code.
pub fn explain(e: &anyhow::Error) -> (String, u8) {
    let Some(lib) = e.downcast_ref::<Error>() else {
        return (format!("{e:#}"), USAGE_OR_SETUP);
    };
    let hint = match lib {
        Error::ModelMissing { .. } | Error::Manifest { .. } => {
            "; run scripts/setup.sh, or point --models / BLURGATE_MODELS at a folder that has it".to_string()
        }
        Error::ModelChecksum { .. } => "; run scripts/setup.sh again".into(),
        Error::Runtime { .. } => "; run scripts/setup.sh or set ORT_DYLIB_PATH".into(),
        Error::PolicyNeedsRegister { .. } => ": give --register FILE, or --policy all".into(),
        Error::OutputInsideInput { .. } => ": choose an --out outside it".into(),
        Error::InputInsideOutput { .. } => ": choose an --out elsewhere".into(),
        Error::SameOutput { .. } => ": redact them in separate runs or into separate folders".into(),
        Error::Busy { .. } => ": wait for it to finish or choose another --out".into(),
        Error::AuditDamaged { .. } => "; run `blurgate audit verify` on it".into(),
        Error::Register { path, problem: RegisterProblem::Missing } => {
            format!("; create one with `blurgate enroll --register {}`", path.display())
        }
        Error::RegisterKey { problem: KeyProblem::Unreadable(_), .. } => {
            "; give --key-file FILE or set BLURGATE_REGISTER_KEY".into()
        }
        Error::KeyInside { .. } => "; keep keys apart: leave out --key-file / --audit-key-file to use the per-user \
            key store (BLURGATE_KEY_DIR chooses it), give a key file outside that folder, or set \
            BLURGATE_REGISTER_KEY / BLURGATE_AUDIT_KEY; `blurgate register move-key --register R --key-file K` \
            moves a register's key into the store"
            .into(),
        Error::KeyLost { .. } => "; restore the key from your backup (see `blurgate register export-key`) to one \
            of those places, or give --key-file FILE or BLURGATE_REGISTER_KEY; blurgate cannot recover it"
            .into(),
        Error::NoKeyStore => "; set BLURGATE_KEY_DIR, or give the key with --key-file / --audit-key-file".into(),
        Error::AuditKey { problem: KeyProblem::Unreadable(_), .. } => {
            "; give the key the log was written with: --audit-key-file FILE or BLURGATE_AUDIT_KEY".into()
        }
        Error::AuditKeyMismatch { .. } => "; give the audit key it was written with (--audit-key-file or \
            BLURGATE_AUDIT_KEY), run `blurgate audit verify` on it, or start a new log"
            .into(),
        Error::ReferencePhoto { refusal: Refusal::SeveralFaces(_), .. } => ", or pass --pick largest".into(),
        Error::PhotosDisagree(_) => {
            ": check that every photo shows the same person, or pass --force to enrol them anyway".into()
        }
        _ => String::new(),
    };
    (format!("{e:#}{hint}"), USAGE_OR_SETUP)
}
