//! `blurgate audit verify`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use blurgate::audit;

use super::exit::FILES_FAILED;

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Verify every line's hash and the chain between lines; exit 1 at the first break.
    Verify {
        /// Audit log (JSON Lines) written with --audit.
        file: PathBuf,
    },
}

pub fn run(cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    let AuditCommand::Verify { file } = cmd;
    match audit::verify(&file)? {
        Ok(v) => {
            println!("{}: {} record(s), chain intact; last hash {}", file.display(), v.records, v.head);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("{}: BROKEN at {e}", file.display());
            Ok(ExitCode::from(FILES_FAILED))
        }
    }
}
