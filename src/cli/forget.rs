//! `blurgate forget` (right to erasure).

use std::process::ExitCode;

use blurgate::audit::Event;

use super::args::{AuditArg, RegisterArgs};

#[derive(clap::Args, Debug)]
pub struct ForgetArgs {
    #[command(flatten)]
    pub register: RegisterArgs,

    /// Register id to delete.
    #[arg(long)]
    pub id: String,

    #[command(flatten)]
    pub audit: AuditArg,
}

pub fn run(a: ForgetArgs) -> anyhow::Result<ExitCode> {
    let log = a.audit.open()?;
    let file = a.register.file();
    let done = file.forget(&a.id)?;
    if let Some(log) = &log {
        log.append(&Event::Forget {
            id: a.id.clone(),
            register_before: done.before.clone(),
            register_after: done.after.clone(),
        })?;
    }
    println!("forgot {}: verified absent after re-reading {}", a.id, file.path.display());
    println!("register sha256 before: {}", done.before);
    println!("register sha256 after:  {}", done.after);
    Ok(ExitCode::SUCCESS)
}
