//! `blurgate audit verify|head`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use blurgate::audit::{self, AuditTarget, Verified};

use super::exit::FILES_FAILED;

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Verify every line's hash and MAC and the chain between lines; exit 1 at the first bad
    /// line, or when no line is keyed (a log from before keyed logs).
    ///
    /// Needs the audit key the log was written with. Compare the head it prints with one
    /// anchored earlier (`audit head`) to see that nothing was cut off the end.
    Verify(AuditFileArgs),
    /// Verify the log, then print its chain head (the last MAC) alone, to anchor it elsewhere:
    /// a ticket, a commit, an email to the data protection officer.
    Head(AuditFileArgs),
}

#[derive(clap::Args, Debug)]
pub struct AuditFileArgs {
    /// Audit log (JSON Lines) written with --audit.
    file: PathBuf,

    /// File holding the audit key. Default: $BLURGATE_AUDIT_KEY, else audit.key in the key
    /// store.
    #[arg(long, value_name = "KEYFILE")]
    audit_key_file: Option<PathBuf>,
}

pub fn run(cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    let (AuditCommand::Verify(a) | AuditCommand::Head(a)) = &cmd;
    let shown = a.file.display();
    let v = match audit::verify(&AuditTarget::new(&a.file, a.audit_key_file.as_deref()))? {
        Ok(v) => v,
        Err(e) => {
            println!("{shown}: BROKEN at {e}");
            return Ok(ExitCode::from(FILES_FAILED));
        }
    };
    let Verified { records, head, unkeyed } = v;
    if unkeyed == records && records > 0 {
        println!(
            "{shown}: {records} record(s), hash chain intact but NOT KEYED (written before keyed logs): \
             whoever could write the file could have rewritten it; last hash {head}"
        );
        return Ok(ExitCode::from(FILES_FAILED));
    }
    match cmd {
        AuditCommand::Head(_) => println!("{head}"),
        AuditCommand::Verify(_) => {
            println!("{shown}: {records} record(s), chain and MACs intact; head {head}");
            if unkeyed > 0 {
                println!("the first {unkeyed} line(s) predate keyed logs: the MAC of the next one vouches for them");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
