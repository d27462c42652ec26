//! `blurgate review`.

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use blurgate::jobs::{Review, ReviewError, ReviewServer};

use clap::ArgMatches;

use super::args::AuditArg;
use super::config::take_opt;
use super::exit::usage;
use super::Context;

pub const AFTER_HELP: &str = "\
The page lists every face of the report, uncertain matches first, with the original beside the
published copy. Keys: R redact, K keep, J or → next, H or ← previous, N next undecided, D draw
a missed face's box on the original (it is redacted), Esc stop drawing.

Each decision renders that file's output again from its input, with the report's style and
settings, and replaces it atomically; an input whose sha256 differs from the report's is
refused. A file held back (--hold-uncertain) is written once none of its uncertain faces is
undecided. The decision (operator, file, face box, before and after) is appended to the audit log
(--audit), and the report is rewritten with the face's `reviewed` field. Paths in the report
are read as written, so run review from the folder redact ran in. A later redact run into the
same output folder decides the reviewed files again (their copies are not the ones it wrote):
review after the last run.

The server listens on 127.0.0.1 with a random token in the URL it prints; requests without the
token are refused. Stop it with Ctrl-C.";

#[derive(clap::Args, Debug)]
pub struct ReviewArgs {
    /// The report of the redact run to review (`redact --report FILE`); it is updated in place.
    #[arg(long, value_name = "FILE")]
    pub report: PathBuf,

    /// Who decides, as recorded in the audit log and the report. Default: $USER.
    #[arg(long, value_name = "NAME", env = "BLURGATE_OPERATOR")]
    pub operator: Option<String>,

    #[command(flatten)]
    pub audit: AuditArg,

    /// Address to listen on. Anything but a loopback address lets others on the network reach
    /// the page (with the token).
    #[arg(long, value_name = "IP", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub bind: IpAddr,

    /// Port to listen on (0: any free port).
    #[arg(long, value_name = "PORT", default_value_t = 0)]
    pub port: u16,
}

pub fn run(mut a: ReviewArgs, m: &ArgMatches, ctx: &Context) -> anyhow::Result<ExitCode> {
    // The settings file's audit log, as redact uses it: decisions belong in the same log.
    take_opt(m, "audit", &mut a.audit.audit, &ctx.config.run.audit);
    let operator = match a.operator.clone().or_else(|| std::env::var("USER").ok()).filter(|o| !o.trim().is_empty()) {
        Some(o) => o,
        None => return Err(usage("say who reviews with --operator NAME")),
    };
    let lib = |e: ReviewError| match e {
        ReviewError::Blurgate(e) => anyhow::Error::from(e),
        e => anyhow::Error::from(e),
    };
    let review = Review::open(&a.report, a.audit.target(), &operator).map_err(lib)?;
    let server = ReviewServer::bind(review, SocketAddr::new(a.bind, a.port)).map_err(lib)?;
    println!("{}", server.url());
    std::io::stdout().flush()?;
    eprintln!("review page for {} at the address above (Ctrl-C to stop)", a.report.display());
    server.serve().map_err(lib)?;
    Ok(ExitCode::SUCCESS)
}
