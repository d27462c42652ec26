//! The command line: parses arguments (one file per command, shared argument types in
//! [`args`]), merges the settings file ([`config`]), turns both into the library's options
//! ([`options`]) and maps outcomes to messages and exit codes ([`exit`]).

mod args;
mod audit;
mod calibrate;
mod check;
mod config;
mod enroll;
mod exit;
mod find;
mod forget;
mod options;
mod progress;
mod redact;
mod register;
mod report;
mod review;
#[cfg(feature = "video")]
mod stream;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

use args::DeviceArg;
use blurgate::models::ModelDir;
use config::{take, take_opt, Config};

/// Finds every face in event photos and redacts them before publication.
///
/// Originals are never modified: redacted copies go to a separate folder. A file that cannot
/// be read, checked or written is reported and left out of the output, and the run exits 1.
#[derive(Parser)]
#[command(name = "blurgate", version, propagate_version = true, max_term_width = 100)]
#[command(
    after_help = "Exit codes: 0 all files done, 1 some files failed (see the report), 2 usage or set-up error.\n\
Models: --models DIR, else $BLURGATE_MODELS, else the models/ folder that scripts/setup.sh fills.\n\
Settings: --config FILE, else ./blurgate.toml when present, fixes options once (sections [detection],\n\
[render], [matching], [run], keys named like the flags with _ for -); flags override it."
)]
pub struct Cli {
    /// Settings file (TOML) for detection, rendering, matching and run options; flags given on
    /// the command line override it. Default: blurgate.toml in the working folder, if any.
    #[arg(long, global = true, value_name = "FILE", env = "BLURGATE_CONFIG")]
    config: Option<PathBuf>,

    /// Folder with manifest.json, the ONNX models and the ONNX Runtime library.
    #[arg(long, global = true, value_name = "DIR", env = "BLURGATE_MODELS")]
    models: Option<PathBuf>,

    /// Where the models run: cpu, or cuda (needs a build with the `cuda` feature and a CUDA
    /// ONNX Runtime; falls back to the CPU with a warning).
    #[arg(long, global = true, value_enum, default_value_t = DeviceArg::Cpu, env = "BLURGATE_DEVICE")]
    device: DeviceArg,

    /// No progress bar and no summary line.
    #[arg(short, long, global = true)]
    quiet: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write redacted copies of photos: every face is blurred (or pixelated or filled).
    ///
    /// Folders are searched recursively; the output folder mirrors their layout, with the same
    /// file names and formats. EXIF orientation is applied, so outputs are upright.
    ///
    /// Example: blurgate redact event-2026/ --out publish/ --report report.json
    #[command(after_long_help = redact::AFTER_HELP)]
    Redact(redact::RedactArgs),

    /// The publication gate: does anything published show a face the policy forbids?
    ///
    /// Exits 0 when nothing does, 1 when something does (findings on stdout, --report,
    /// --junit), 2 on usage or set-up errors.
    ///
    /// Example: blurgate check publish/ --register optouts.reg --format github --junit check.xml
    Check(check::CheckArgs),

    /// Add a person to the opt-out register from one or more reference photos.
    ///
    /// Each photo must show exactly one usable face (or pass --pick largest). Only face
    /// embeddings are stored, encrypted; never the photos.
    ///
    /// Example: blurgate enroll --register optouts.reg --id P-0042 --expires 2027-12-31 ref1.jpg ref2.jpg
    Enroll(enroll::EnrollArgs),

    /// Right of access: list the files in which a registered person appears.
    ///
    /// Example: blurgate find --register optouts.reg --id P-0042 archive/ --report access.json
    Find(find::FindArgs),

    /// Right to erasure: delete a person from the register (and verify it).
    ///
    /// Prints the register's sha256 before and after, and re-reads the file to prove the entry
    /// is gone.
    Forget(forget::ForgetArgs),

    /// Inspect the register, apply retention, and manage its key (rekey, move-key, export-key).
    ///
    /// Where keys live: a register's key is 64 hex digits in a file of its own, by default in
    /// the per-user key store ($BLURGATE_KEY_DIR, else $XDG_DATA_HOME/blurgate/keys, else
    /// ~/.local/share/blurgate/keys; files 0600, folder 0700), named by the key id in the
    /// register's header; --key-file or $BLURGATE_REGISTER_KEY override it. A key file inside
    /// the register's folder is refused: whoever copies the folder would take the key with it.
    /// A key beside the register (REGISTER.key, the old default) still works, with a warning,
    /// until `register move-key` moves it.
    ///
    /// Backups: back up the register with your data and its key apart (`register export-key`
    /// into a password manager or offline). Without its key a register cannot be read;
    /// `register rekey` replaces a key that may have leaked.
    #[command(subcommand)]
    Register(register::RegisterCommand),

    /// Redact a live stream: faces are hidden within a bounded, stated latency.
    ///
    /// One pass with a short look-ahead; detection thins out when the machine falls behind,
    /// and frames that cannot be checked are written black, never as they came.
    ///
    /// Example: blurgate stream srt://0.0.0.0:9000?mode=listener rtmp://live.example/app/key
    #[cfg(feature = "video")]
    #[command(after_long_help = stream::AFTER_HELP)]
    Stream(stream::StreamArgs),

    /// Check the audit log's keyed chain (verify) or print its head (head).
    ///
    /// Each record carries an HMAC-SHA-256 over the previous record's MAC and its own body,
    /// keyed with the audit key (--audit-key-file, else $BLURGATE_AUDIT_KEY, else audit.key in
    /// the key store, made on first use): a log rewritten from any line on fails there. Back
    /// the audit key up like a register key.
    #[command(subcommand)]
    Audit(audit::AuditCommand),

    /// Review a redact run's faces on a local web page and change its decisions.
    ///
    /// Example: blurgate review --report report.json --operator alice --audit audit.jsonl
    #[command(after_long_help = review::AFTER_HELP)]
    Review(review::ReviewArgs),

    /// Measure recognition on your own photos and suggest thresholds.
    ///
    /// Gives same-person and different-person similarity statistics, ROC AUC, and the
    /// thresholds for a false-accept rate of 1% and 0.1% with the true-accept rate each keeps.
    ///
    /// Example: blurgate calibrate --identities staff-photos/   (one sub-folder per person)
    Calibrate(calibrate::CalibrateArgs),

    /// Work with reports: merge the reports of a run's shards.
    #[command(subcommand)]
    Report(report::ReportCommand),
}

/// What every command gets besides its own arguments.
pub struct Context {
    pub models: Option<PathBuf>,
    pub device: blurgate::models::Device,
    pub quiet: bool,
    pub config: Config,
}

impl Context {
    pub fn models(&self) -> anyhow::Result<ModelDir> {
        Ok(ModelDir::locate(self.models.as_deref())?)
    }
}

pub fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("BLURGATE_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    match run(cli, &matches) {
        Ok(code) => code,
        Err(e) => {
            let (message, code) = exit::explain(&e);
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

fn run(mut cli: Cli, matches: &ArgMatches) -> anyhow::Result<ExitCode> {
    let config = Config::load(cli.config.as_deref())?;
    take(matches, "device", &mut cli.device, &config.run.device);
    take_opt(matches, "models", &mut cli.models, &config.run.models);
    let sub = matches.subcommand().map(|(_, m)| m).expect("a subcommand is required");
    let ctx = Context { models: cli.models, device: cli.device.into(), quiet: cli.quiet, config };
    match cli.command {
        Command::Redact(args) => redact::run(args, sub, &ctx),
        Command::Check(args) => check::run(args, sub, &ctx),
        Command::Enroll(args) => enroll::run(args, &ctx),
        Command::Find(args) => find::run(args, sub, &ctx),
        Command::Forget(args) => forget::run(args),
        Command::Register(cmd) => register::run(cmd),
        Command::Audit(cmd) => audit::run(cmd),
        Command::Calibrate(args) => calibrate::run(args, &ctx),
        Command::Review(args) => review::run(args, sub, &ctx),
        Command::Report(cmd) => report::run(cmd, ctx.quiet),
        #[cfg(feature = "video")]
        Command::Stream(args) => stream::run(args, sub, &ctx),
    }
}
