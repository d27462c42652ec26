//! `blurgate register list|show|purge-expired`.

use std::process::ExitCode;

use clap::Subcommand;

use blurgate::audit::{AuditLog, Event};
use blurgate::register::{today, Person, RegisterFile};

use super::args::{AuditArg, RegisterArgs};

#[derive(Subcommand, Debug)]
pub enum RegisterCommand {
    /// One line per person: id, refused purposes, enrolment and expiry, number of embeddings.
    List(RegisterArgs),
    /// One person's record (without embeddings).
    Show {
        #[command(flatten)]
        register: RegisterArgs,
        /// Register id.
        id: String,
    },
    /// Remove every entry whose expiry date has passed.
    PurgeExpired {
        #[command(flatten)]
        register: RegisterArgs,
        #[command(flatten)]
        audit: AuditArg,
    },
}

pub fn run(cmd: RegisterCommand) -> anyhow::Result<ExitCode> {
    let describe = |p: &Person| {
        format!(
            "{}\trefuses: {}\tenrolled {}\texpires {}\t{} embedding(s)",
            p.id,
            if p.refuses.is_empty() { "nothing (consented)".to_string() } else { p.refuses.join(",") },
            p.enrolled_at.date(),
            p.expires_at.map_or("never".to_string(), |d| d.to_string()),
            p.embeddings.len()
        )
    };
    match cmd {
        RegisterCommand::List(r) => {
            let (register, _) = RegisterFile::new(&r.register, r.key_file.as_deref()).load()?;
            for p in &register.people {
                println!("{}", describe(p));
            }
            eprintln!("{} person(s)", register.people.len());
        }
        RegisterCommand::Show { register: r, id } => {
            let (register, _) = RegisterFile::new(&r.register, r.key_file.as_deref()).load()?;
            let p = register.person(&id).ok_or_else(|| blurgate::Error::UnknownPerson { id: id.clone() })?;
            println!("{}", describe(p));
            if let Some(label) = &p.label {
                println!("label: {label}");
            }
        }
        RegisterCommand::PurgeExpired { register: r, audit } => {
            let file = RegisterFile::new(&r.register, r.key_file.as_deref());
            let (mut register, key) = file.load()?;
            let before = file.digest()?;
            let ids = register.purge_expired(today());
            register.save(&file.path, &key)?;
            let after = file.digest()?;
            if let Some(log) = &audit.audit {
                AuditLog::open(log)?.append(&Event::PurgeExpired {
                    ids: ids.clone(),
                    register_before: before,
                    register_after: after,
                })?;
            }
            println!(
                "removed {} expired entr{}{}",
                ids.len(),
                if ids.len() == 1 { "y" } else { "ies" },
                if ids.is_empty() { String::new() } else { format!(": {}", ids.join(", ")) }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
