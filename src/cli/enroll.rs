//! `blurgate enroll`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::ValueEnum;

use blurgate::audit::Event;
use blurgate::detect::DetectorOptions;
use blurgate::digest::sha256_reader;
use blurgate::embed::QualityGate;
use blurgate::jobs::enrol::{embed_reference_photos, EnrolOptions};
use blurgate::jobs::{Engine, Recognition};
use blurgate::register::{parse_date, Person, DEFAULT_PURPOSE};

use super::args::{AuditArg, RegisterArgs};
use super::exit::usage;
use super::Context;

#[derive(clap::Args, Debug)]
pub struct EnrollArgs {
    #[command(flatten)]
    pub register: RegisterArgs,

    /// The person's id in the register (a reference, not a name: e.g. a participant number).
    #[arg(long)]
    pub id: String,

    /// A short note for staff (stored encrypted; never written to reports or logs).
    #[arg(long)]
    pub label: Option<String>,

    /// Last day the entry applies (YYYY-MM-DD); afterwards it no longer matches.
    #[arg(long, value_name = "DATE")]
    pub expires: Option<String>,

    /// Purposes the person refused (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_PURPOSE, value_name = "PURPOSES")]
    pub refuses: Vec<String>,

    /// The person consented to every purpose (for registers used with --policy consented-only).
    #[arg(long, conflicts_with = "refuses")]
    pub consents: bool,

    /// Replace the person's existing embeddings instead of adding to them.
    #[arg(long)]
    pub replace: bool,

    /// With several faces in a photo, use the largest instead of refusing the photo.
    #[arg(long, value_enum, value_name = "WHICH")]
    pub pick: Option<PickArg>,

    /// Refuse faces smaller than this (pixels, shorter side of the box).
    #[arg(long, default_value_t = QualityGate::ENROL.min_size, value_name = "PIXELS")]
    pub min_face: f32,

    /// Refuse faces the detector is less sure of.
    #[arg(long, default_value_t = QualityGate::ENROL.min_score, value_name = "SCORE")]
    pub min_score: f32,

    /// Enrol photos that look like different people (similarity under 0.3) anyway.
    #[arg(long)]
    pub force: bool,

    #[command(flatten)]
    pub audit: AuditArg,

    /// Reference photos of the person.
    #[arg(required = true, value_name = "PHOTO")]
    pub photos: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PickArg {
    Largest,
}

pub fn run(a: EnrollArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let expires_at = a
        .expires
        .as_deref()
        .map(|d| parse_date(d).map_err(|e| usage(format!("`{d}` is not a date like 2027-06-30: {e}"))))
        .transpose()?;
    if a.id.trim().is_empty() {
        return Err(usage("--id must not be empty"));
    }
    let log = a.audit.open()?;
    let file = a.register.file();
    // An existing register is opened first (a wrong key fails fast); a new one gets its key
    // only once the photos are accepted, so a refused enrolment leaves no key behind.
    let existing = file.path.exists().then(|| file.load()).transpose()?;
    let detector = DetectorOptions { device: ctx.device, ..DetectorOptions::default() };
    let engine = Engine::new(&ctx.models()?, detector, Recognition::On, 1)?;
    let options = EnrolOptions {
        pick_largest: a.pick.is_some(),
        gate: QualityGate { min_size: a.min_face, min_score: a.min_score, ..QualityGate::ENROL },
        force: a.force,
        ..EnrolOptions::default()
    };
    let enrolment = embed_reference_photos(&engine, &a.photos, &options)?;
    for w in &enrolment.warnings {
        eprintln!("warning: {w}");
    }
    let count = enrolment.embeddings.len();
    let (mut register, key, new_key) = match existing {
        Some((register, key)) => (register, key, None),
        None => file.load_or_create()?,
    };
    register.enrol(
        Person {
            id: a.id.clone(),
            label: a.label,
            refuses: if a.consents { Vec::new() } else { a.refuses },
            enrolled_at: time::OffsetDateTime::now_utc(),
            expires_at,
            embeddings: enrolment.embeddings,
        },
        a.replace,
    );
    register.save(&file.path, &key)?;
    if let Some(log) = &log {
        let photos_sha256 = a
            .photos
            .iter()
            .map(|p| std::fs::File::open(p).and_then(sha256_reader).with_context(|| p.display().to_string()))
            .collect::<anyhow::Result<_>>()?;
        log.append(&Event::Enrol { id: a.id.clone(), photos_sha256, embeddings: count, replaced: a.replace })?;
    }
    if let Some(at) = new_key {
        eprintln!(
            "new register: its key was written to {} (owner-only, apart from the register). Back it up \
             (`blurgate register export-key`) somewhere other than the register's backups: without it the \
             register cannot be read",
            at.display()
        );
    }
    let total = register.person(&a.id).map_or(0, |p| p.embeddings.len());
    println!("enrolled {}: {count} photo(s) added, {total} embedding(s) held, register {}", a.id, file.path.display());
    Ok(ExitCode::SUCCESS)
}
