//! `blurgate report merge`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use blurgate::report::Report;

use super::exit::FILES_FAILED;

#[derive(Subcommand, Debug)]
pub enum ReportCommand {
    /// Merge the reports of a run's shards (--shard I/N) into one: every file once, the
    /// summary counted again. Refuses reports that share a file (overlapping shards) or were
    /// made with different settings. Exits 1 when the merged run has failed or held files or
    /// findings (as the run would have), 0 otherwise.
    ///
    /// Example: blurgate report merge shard-*.json --out report.json
    Merge(MergeArgs),
}

#[derive(clap::Args, Debug)]
pub struct MergeArgs {
    /// The shards' reports (--report of each).
    #[arg(required = true, value_name = "REPORT")]
    reports: Vec<PathBuf>,

    /// Where the merged report goes.
    #[arg(long, short, value_name = "FILE")]
    out: PathBuf,
}

pub fn run(cmd: ReportCommand, quiet: bool) -> anyhow::Result<ExitCode> {
    let ReportCommand::Merge(a) = cmd;
    let reports = a.reports.iter().map(|p| Report::read(p)).collect::<Result<Vec<_>, _>>()?;
    let merged = Report::merge(reports)?;
    merged.write(&a.out)?;
    if !quiet {
        eprintln!("{} report(s) merged: {}", a.reports.len(), merged.summary_line());
    }
    let s = &merged.summary;
    Ok(if s.failed > 0 || s.held > 0 || s.violations > 0 { ExitCode::from(FILES_FAILED) } else { ExitCode::SUCCESS })
}
