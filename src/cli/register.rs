//! `blurgate register list|show|purge-expired|rekey|move-key|export-key`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use blurgate::audit::Event;
use blurgate::register::{today, Person};

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
    /// Encrypt the register under a new key and retire the old one.
    ///
    /// The new key is written first (to --new-key-file, else the key store), then the register
    /// is replaced in one step, so one stored key opens it at every moment. An old key in the
    /// key store or beside the register is deleted; one from --key-file or
    /// $BLURGATE_REGISTER_KEY no longer opens the register and is yours to destroy. Back up the
    /// new key (export-key) and destroy backups of the old one.
    Rekey {
        #[command(flatten)]
        register: RegisterArgs,
        /// Write the new key to this file (must not exist; outside the register's folder)
        /// instead of the key store.
        #[arg(long, value_name = "KEYFILE")]
        new_key_file: Option<PathBuf>,
        #[command(flatten)]
        audit: AuditArg,
    },
    /// Move a key kept beside the register (REGISTER.key, the old default), or the one at
    /// --key-file, into the key store, and delete the old file.
    MoveKey {
        #[command(flatten)]
        register: RegisterArgs,
        #[command(flatten)]
        audit: AuditArg,
    },
    /// Print the register's key (64 hex digits) on stdout, for a backup.
    ///
    /// Keep the backup offline or in a password manager, never with the register or its
    /// backups: whoever holds both can read every embedding. Without the key the register cannot
    /// be read, and blurgate cannot recover it.
    ExportKey(RegisterArgs),
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
            let (register, _) = r.file().load()?;
            for p in &register.people {
                println!("{}", describe(p));
            }
            eprintln!("{} person(s)", register.people.len());
        }
        RegisterCommand::Show { register: r, id } => {
            let (register, _) = r.file().load()?;
            let p = register.person(&id).ok_or_else(|| blurgate::Error::UnknownPerson { id: id.clone() })?;
            println!("{}", describe(p));
            if let Some(label) = &p.label {
                println!("label: {label}");
            }
        }
        RegisterCommand::PurgeExpired { register: r, audit } => {
            let log = audit.open()?;
            let file = r.file();
            let (mut register, key) = file.load()?;
            let before = file.digest()?;
            let ids = register.purge_expired(today());
            register.save(&file.path, &key)?;
            let after = file.digest()?;
            if let Some(log) = &log {
                log.append(&Event::PurgeExpired { ids: ids.clone(), register_before: before, register_after: after })?;
            }
            println!(
                "removed {} expired entr{}{}",
                ids.len(),
                if ids.len() == 1 { "y" } else { "ies" },
                if ids.is_empty() { String::new() } else { format!(": {}", ids.join(", ")) }
            );
        }
        RegisterCommand::Rekey { register: r, new_key_file, audit } => {
            let log = audit.open()?;
            let file = r.file();
            let done = file.rekey(new_key_file.as_deref())?;
            if let Some(log) = &log {
                log.append(&Event::Rekey { register_before: done.before.clone(), register_after: done.after.clone() })?;
            }
            println!("{}: encrypted under a new key, kept at {}", file.path.display(), done.new_key.display());
            match &done.deleted {
                Some(old) => println!("the old key is retired: {} deleted", old.display()),
                None => println!("the old key no longer opens the register: destroy it and its backups"),
            }
            if new_key_file.is_none() && r.key_file.is_some() {
                println!("leave out --key-file from now on: the new key is in the key store");
            }
            eprintln!("back up the new key (`blurgate register export-key`), apart from the register's backups");
        }
        RegisterCommand::MoveKey { register: r, audit } => {
            let log = audit.open()?;
            let file = r.file();
            match file.move_key()? {
                Some(moved) => {
                    if let Some(log) = &log {
                        log.append(&Event::MoveKey { register_before: moved.before, register_after: moved.after })?;
                    }
                    println!(
                        "moved the key of {} from {} to {}",
                        file.path.display(),
                        moved.from.display(),
                        moved.to.display()
                    );
                }
                None => println!("{}: no key beside it or outside the key store; nothing moved", file.path.display()),
            }
        }
        RegisterCommand::ExportKey(r) => {
            let (_, key) = r.file().load()?;
            println!("{}", key.to_hex());
            eprintln!("keep this key offline or in a password manager, never with the register or its backups");
        }
    }
    Ok(ExitCode::SUCCESS)
}
