//! `blurgate find` (right of access).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::ArgMatches;

use blurgate::jobs::{run_find, FindJob};
use blurgate::matching::Decision;
use blurgate::register::Register;

use super::args::{refuse_keys_inside, DetectionArgs, MatchArgs, RegisterArgs, StoreArgs};
use super::config::take_opt;
use super::exit::FILES_FAILED;
use super::progress::Progress;
use super::{options, Context};

#[derive(clap::Args, Debug)]
pub struct FindArgs {
    #[command(flatten)]
    pub register: RegisterArgs,

    /// Register id of the person asking.
    #[arg(long)]
    pub id: String,

    #[command(flatten)]
    pub matching: MatchArgs,

    #[command(flatten)]
    pub detection: DetectionArgs,

    /// Write the findings as JSON (same format as redact's report).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// Photos processed at once (default: one per CPU core).
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,

    #[command(flatten)]
    pub store: StoreArgs,

    /// Photos and folders to search (local paths or s3://, gs://, az:// locations).
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<String>,
}

pub fn run(mut a: FindArgs, m: &ArgMatches, ctx: &Context) -> anyhow::Result<ExitCode> {
    a.detection.merge(m, &ctx.config.detection);
    a.matching.merge(m, &ctx.config.matching);
    take_opt(m, "jobs", &mut a.jobs, &ctx.config.run.jobs);
    let file = a.register.file();
    let (register, _) = file.load()?;
    let inputs = a.store.locations(&a.inputs)?;
    refuse_keys_inside(Some(&file), None, &inputs, None)?;
    let person = register.person(&a.id).cloned().ok_or_else(|| blurgate::Error::UnknownPerson { id: a.id.clone() })?;
    let job = FindJob {
        inputs,
        detection: options::detection(&a.detection, ctx.device)?,
        matching: options::matching(&a.matching, Register { people: vec![person], calibration: register.calibration })?,
        run: options::run(&a.detection, &a.store, a.jobs),
    };
    let report = run_find(&job, &ctx.models()?, &Progress::new(!ctx.quiet))?;
    for f in report.files.iter().filter(|f| !f.faces.is_empty()) {
        for face in &f.faces {
            let [x1, y1, x2, y2] = face.bbox;
            let band = face.decision.map_or("", |d| if d == Decision::Matched { "matched" } else { "uncertain" });
            println!("{}\t{band}\tsimilarity {:.3}\tbox {x1},{y1},{x2},{y2}", f.input, face.similarity.unwrap_or(0.0));
        }
    }
    if let Some(path) = &a.report {
        report.write(path)?;
    }
    let failed = report.summary.failed;
    let found = report.files.iter().filter(|f| !f.faces.is_empty()).count();
    if !ctx.quiet {
        eprintln!("{} appears in {found} of {} file(s); {failed} could not be checked", a.id, report.summary.files);
    }
    Ok(if failed > 0 { ExitCode::from(FILES_FAILED) } else { ExitCode::SUCCESS })
}
