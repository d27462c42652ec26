//! `blurgate check`: the publication gate for CI.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgMatches, ValueEnum};

use blurgate::jobs::check::{run_check, CheckJob};
use blurgate::jobs::video::VideoSettings;
use blurgate::register::RegisterFile;
use blurgate::report::{FileReport, FileStatus, Report};
use blurgate::sheet::{self, SheetOptions};
use blurgate::storage::write_atomic;

use super::args::{DetectionArgs, MatchArgs, PolicyArg, StoreArgs};
use super::config::take_opt;
use super::exit::FILES_FAILED;
use super::progress::Progress;
use super::{options, Context};

const AFTER_HELP: &str = "\
A file passes when nothing in it violates the policy: all (default without a register): no
face at all is left unredacted; opt-outs (default with a register): no recognisable opted-out
person; consented-only: no face that is not a matched, consenting person. An uncertain match
counts as a finding.

Files that `blurgate redact` wrote pass without being searched again when the folder's
.blurgate-manifest.json vouches for them: same bytes, same policy, same register, sealed with
the manifest key (--manifest-key-file, $BLURGATE_MANIFEST_KEY, else manifest.key in the key
store; give CI the key redact used). Any other file is searched: a copy blurred by hand or by
another tool passes only if the detector finds no face in it, and a register that changed since
(a new opt-out) makes every file be searched again.

Exit codes: 0 nothing violates the policy, 1 a finding or a file that could not be checked,
2 usage or set-up error.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FindingsFormat {
    /// One line per finding, tab-separated.
    Text,
    /// GitHub Actions annotations (`::error file=…`).
    Github,
    /// A GitLab Code Quality report (JSON).
    Gitlab,
}

#[derive(clap::Args, Debug)]
#[command(after_long_help = AFTER_HELP)]
pub struct CheckArgs {
    /// Photos and folders as published: local paths, or s3://bucket/prefix, gs://bucket/prefix,
    /// az://container/prefix.
    #[arg(required = true, value_name = "LOCATION")]
    pub locations: Vec<String>,

    /// Register of enrolled people; with it the default policy is opt-outs.
    #[arg(long, value_name = "FILE")]
    pub register: Option<PathBuf>,

    /// File holding the register key (default: $BLURGATE_REGISTER_KEY, else the key store).
    #[arg(long, value_name = "KEYFILE", requires = "register")]
    pub key_file: Option<PathBuf>,

    /// What counts as a violation: all, opt-outs or consented-only (see below).
    #[arg(long, value_enum)]
    pub policy: Option<PolicyArg>,

    #[command(flatten)]
    pub matching: MatchArgs,

    #[command(flatten)]
    pub detection: DetectionArgs,

    /// The key that sealed the folders' manifests.
    #[arg(long, value_name = "KEYFILE")]
    pub manifest_key_file: Option<PathBuf>,

    /// Write every file's result and the findings as JSON (redact's report format; findings
    /// have status "violation").
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// Write a JUnit XML file: one test case per file.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,

    /// Write an HTML contact sheet of the findings.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// How findings are printed on stdout.
    #[arg(long, value_enum, default_value_t = FindingsFormat::Text)]
    pub format: FindingsFormat,

    /// Photos processed at once (default: one per CPU core).
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,

    #[command(flatten)]
    pub store: StoreArgs,
}

pub fn run(mut a: CheckArgs, m: &ArgMatches, ctx: &Context) -> anyhow::Result<ExitCode> {
    a.detection.merge(m, &ctx.config.detection);
    a.matching.merge(m, &ctx.config.matching);
    take_opt(m, "register", &mut a.register, &ctx.config.matching.register);
    take_opt(m, "key_file", &mut a.key_file, &ctx.config.matching.key_file);
    take_opt(m, "policy", &mut a.policy, &ctx.config.matching.policy);
    take_opt(m, "jobs", &mut a.jobs, &ctx.config.run.jobs);
    let register = a.register.as_deref().map(|r| RegisterFile::new(r, a.key_file.as_deref()));
    let decisions = options::decisions(register.as_ref(), &a.matching, a.policy)?;
    let job = CheckJob {
        locations: a.store.locations(&a.locations)?,
        detection: options::detection(&a.detection, ctx.device)?,
        decisions,
        run: options::run(&a.detection, &a.store, a.jobs).with_manifest_key_file(a.manifest_key_file.clone()),
        video: VideoSettings::default(),
    };
    let report = run_check(&job, &ctx.models()?, &Progress::new(!ctx.quiet))?;
    print!("{}", findings(&report, a.format));
    if let Some(path) = &a.report {
        report.write(path)?;
    }
    if let Some(path) = &a.junit {
        write_atomic(path, junit(&report).as_bytes())?;
    }
    if let Some(path) = &a.html {
        sheet::write(&report, path, &SheetOptions::default())?;
    }
    let s = &report.summary;
    if !ctx.quiet {
        let vouched = report.files.iter().filter(|f| f.vouched).count();
        eprintln!(
            "{} file(s): {} violate the policy, {} could not be checked, {} clean ({vouched} vouched for by redact), {} skipped",
            s.files, s.violations, s.failed, s.unchanged, s.skipped
        );
    }
    Ok(if s.violations > 0 || s.failed > 0 { ExitCode::from(FILES_FAILED) } else { ExitCode::SUCCESS })
}

/// What one finding says, for people.
fn describe(f: &FileReport) -> Vec<String> {
    if f.status == FileStatus::Failed {
        return vec![format!("could not be checked: {}", f.error.as_deref().unwrap_or(""))];
    }
    f.faces
        .iter()
        .map(|face| {
            let [x1, y1, x2, y2] = face.bbox.map(|v| v.round() as i64);
            let who = match (&face.person, face.similarity) {
                (Some(p), Some(s)) => format!(" of {p} (similarity {s:.3})"),
                _ => String::new(),
            };
            let frame = match (face.frame, face.time) {
                (Some(i), Some(t)) => format!(" in frame {i} ({t:.2} s)"),
                (Some(i), None) => format!(" in frame {i}"),
                _ => String::new(),
            };
            format!("face{who}{frame} at {x1},{y1}-{x2},{y2} must not be shown")
        })
        .collect()
}

fn findings(report: &Report, format: FindingsFormat) -> String {
    let bad = report.files.iter().filter(|f| matches!(f.status, FileStatus::Violation | FileStatus::Failed));
    let mut out = String::new();
    match format {
        FindingsFormat::Text => {
            for f in bad {
                for d in describe(f) {
                    let _ = writeln!(out, "{}\t{}\t{d}", f.status_name(), f.input);
                }
            }
        }
        FindingsFormat::Github => {
            for f in bad {
                for d in describe(f) {
                    // Annotation values escape %, CR and LF; properties also , and :.
                    let esc = |s: &str, prop: bool| {
                        let s = s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A");
                        if prop {
                            s.replace(':', "%3A").replace(',', "%2C")
                        } else {
                            s
                        }
                    };
                    let _ =
                        writeln!(out, "::error file={},title=blurgate check::{}", esc(&f.input, true), esc(&d, false));
                }
            }
        }
        FindingsFormat::Gitlab => {
            let issues: Vec<serde_json::Value> = bad
                .flat_map(|f| {
                    describe(f).into_iter().map(move |d| {
                        serde_json::json!({
                            "description": d,
                            "check_name": "blurgate",
                            "fingerprint": blurgate::digest::sha256_hex(format!("{}|{d}", f.input).as_bytes()),
                            "severity": "blocker",
                            "location": {"path": f.input, "lines": {"begin": 1}},
                        })
                    })
                })
                .collect();
            out = serde_json::to_string_pretty(&issues).expect("serialises") + "\n";
        }
    }
    out
}

/// JUnit XML: a test suite with one case per file; a violation is a failure, a file that
/// could not be checked an error.
fn junit(report: &Report) -> String {
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let s = &report.summary;
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuite name=\"blurgate check\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{}\">",
        s.files, s.violations, s.failed, s.skipped, s.seconds
    );
    for f in &report.files {
        let _ =
            write!(xml, "  <testcase classname=\"blurgate.check\" name=\"{}\" time=\"{}\"", esc(&f.input), f.seconds);
        let body = describe(f).join("\n");
        match f.status {
            FileStatus::Violation => {
                let _ = writeln!(
                    xml,
                    "><failure message=\"{} finding(s)\">{}</failure></testcase>",
                    f.faces.len(),
                    esc(&body)
                );
            }
            FileStatus::Failed => {
                let _ = writeln!(xml, "><error message=\"could not be checked\">{}</error></testcase>", esc(&body));
            }
            FileStatus::Skipped => {
                let _ = writeln!(xml, "><skipped message=\"{}\"/></testcase>", esc(f.reason.as_deref().unwrap_or("")));
            }
            _ => xml.push_str("/>\n"),
        }
    }
    xml.push_str("</testsuite>\n");
    xml
}
