//! Command line: parses arguments and hands them to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use blurgate::calibrate::{ImpostorTail, PairSet, MIN_TAIL_PAIRS};
use blurgate::detect::{DetectorOptions, Precision, Speed, Tiling};
use blurgate::media_in::DecodeLimits;
use blurgate::media_out::{EncodeOptions, MetadataPolicy};
use blurgate::models::{sha256_file, Device, ModelDir};
use blurgate::pipeline::{run_find, run_redact, Engine, FindJob, Matching, RedactJob};
use blurgate::policy::{Decision, Policy, ThresholdSource, Thresholds, DEFAULT_TARGET_FAR};
use blurgate::quality::QualityGate;
use blurgate::redact::{RedactOptions, Shape, Style};
use blurgate::register::enrol::{embed_reference_photos, EnrolOptions};
use blurgate::register::{parse_date, today, Person, Register, RegisterFile, DEFAULT_PURPOSE};
use blurgate::report::audit::{self, AuditLog, Event};
use blurgate::report::FileStatus;
use blurgate::Error;

/// Finds every face in event photos and redacts them before publication.
///
/// Originals are never modified: redacted copies go to a separate folder. A file that cannot
/// be read, checked or written is reported and left out of the output, and the run exits 1.
#[derive(Parser)]
#[command(name = "blurgate", version, propagate_version = true, max_term_width = 100)]
#[command(
    after_help = "Exit codes: 0 all files done, 1 some files failed (see the report), 2 usage or set-up error.\n\
Models: --models DIR, else $BLURGATE_MODELS, else the models/ folder that scripts/setup.sh fills."
)]
struct Cli {
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
    #[command(after_long_help = REDACT_AFTER_HELP)]
    Redact(RedactArgs),

    /// Add a person to the opt-out register from one or more reference photos.
    ///
    /// Each photo must show exactly one usable face (or pass --pick largest). Only face
    /// embeddings are stored, encrypted; never the photos.
    ///
    /// Example: blurgate enroll --register optouts.reg --id P-0042 --expires 2027-12-31 ref1.jpg ref2.jpg
    Enroll(EnrollArgs),

    /// Right of access: list the files in which a registered person appears.
    ///
    /// Example: blurgate find --register optouts.reg --id P-0042 archive/ --report access.json
    Find(FindArgs),

    /// Right to erasure: delete a person from the register (and verify it).
    ///
    /// Prints the register's sha256 before and after, and re-reads the file to prove the entry
    /// is gone.
    Forget(ForgetArgs),

    /// Inspect the register and apply retention.
    #[command(subcommand)]
    Register(RegisterCommand),

    /// Check the audit log's hash chain.
    #[command(subcommand)]
    Audit(AuditCommand),

    /// Measure recognition on your own photos and suggest thresholds.
    ///
    /// Gives same-person and different-person similarity statistics, ROC AUC, and the
    /// thresholds for a false-accept rate of 1% and 0.1% with the true-accept rate each keeps.
    ///
    /// Example: blurgate calibrate --identities staff-photos/   (one sub-folder per person)
    Calibrate(CalibrateArgs),
}

#[derive(Subcommand)]
enum RegisterCommand {
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

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify every line's hash and the chain between lines; exit 1 at the first break.
    Verify {
        /// Audit log (JSON Lines) written with --audit.
        file: PathBuf,
    },
}

#[derive(clap::Args)]
struct RegisterArgs {
    /// The encrypted register file.
    #[arg(long, value_name = "FILE")]
    register: PathBuf,

    /// File holding the register key (64 hex digits). Default: $BLURGATE_REGISTER_KEY, else
    /// FILE.key beside the register.
    #[arg(long, value_name = "KEYFILE")]
    key_file: Option<PathBuf>,
}

#[derive(clap::Args)]
struct AuditArg {
    /// Append a hash-chained record of every decision to this JSON Lines file.
    #[arg(long, value_name = "FILE")]
    audit: Option<PathBuf>,
}

#[derive(clap::Args)]
struct EnrollArgs {
    #[command(flatten)]
    register: RegisterArgs,

    /// The person's id in the register (a reference, not a name: e.g. a participant number).
    #[arg(long)]
    id: String,

    /// A short note for staff (stored encrypted; never written to reports or logs).
    #[arg(long)]
    label: Option<String>,

    /// Last day the entry applies (YYYY-MM-DD); afterwards it no longer matches.
    #[arg(long, value_name = "DATE")]
    expires: Option<String>,

    /// Purposes the person refused (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_PURPOSE, value_name = "PURPOSES")]
    refuses: Vec<String>,

    /// The person consented to every purpose (for registers used with --policy consented-only).
    #[arg(long, conflicts_with = "refuses")]
    consents: bool,

    /// Replace the person's existing embeddings instead of adding to them.
    #[arg(long)]
    replace: bool,

    /// With several faces in a photo, use the largest instead of refusing the photo.
    #[arg(long, value_enum, value_name = "WHICH")]
    pick: Option<PickArg>,

    /// Refuse faces smaller than this (pixels, shorter side of the box).
    #[arg(long, default_value_t = QualityGate::ENROL.min_size, value_name = "PIXELS")]
    min_face: f32,

    /// Refuse faces the detector is less sure of.
    #[arg(long, default_value_t = QualityGate::ENROL.min_score, value_name = "SCORE")]
    min_score: f32,

    /// Enrol photos that look like different people (similarity under 0.3) anyway.
    #[arg(long)]
    force: bool,

    #[command(flatten)]
    audit: AuditArg,

    /// Reference photos of the person.
    #[arg(required = true, value_name = "PHOTO")]
    photos: Vec<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum PickArg {
    Largest,
}

#[derive(clap::Args)]
struct MatchArgs {
    /// Share of strangers' faces that may be redacted for resembling someone in the register;
    /// the thresholds are chosen for it and for the register's size.
    #[arg(long, default_value_t = DEFAULT_TARGET_FAR, value_name = "RATE")]
    target_far: f64,

    /// Similarity at or above which a face is the registered person (default: chosen for
    /// --target-far and the register's size).
    #[arg(long, value_name = "SIM")]
    match_threshold: Option<f32>,

    /// Similarity at or above which a face may be the person: redacted and flagged for review
    /// (default: chosen for --target-far and the register's size).
    #[arg(long, value_name = "SIM")]
    uncertain_threshold: Option<f32>,

    /// The use the photos are for, checked against each person's refused purposes.
    #[arg(long, default_value = DEFAULT_PURPOSE)]
    purpose: String,
}

#[derive(clap::Args)]
struct FindArgs {
    #[command(flatten)]
    register: RegisterArgs,

    /// Register id of the person asking.
    #[arg(long)]
    id: String,

    #[command(flatten)]
    matching: MatchArgs,

    #[command(flatten)]
    detection: DetectionArgs,

    /// Write the findings as JSON (same format as redact's report).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,

    /// Photos processed at once (default: one per CPU core).
    #[arg(long, short = 'j', value_name = "N")]
    jobs: Option<usize>,

    /// Photos and folders to search.
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<PathBuf>,
}

#[derive(clap::Args)]
struct ForgetArgs {
    #[command(flatten)]
    register: RegisterArgs,

    /// Register id to delete.
    #[arg(long)]
    id: String,

    #[command(flatten)]
    audit: AuditArg,
}

#[derive(clap::Args)]
struct CalibrateArgs {
    /// Folder with one sub-folder of photos per person.
    #[arg(long, value_name = "DIR", required_unless_present_any = ["pairs", "components"])]
    identities: Option<PathBuf>,

    /// CSV of photo pairs: file_x,file_y,yes|no (paths relative to the CSV).
    #[arg(long, value_name = "CSV", conflicts_with_all = ["identities", "components"])]
    pairs: Option<PathBuf>,

    /// JSON {"components": [[photos of one person], ...]} (paths relative to the JSON).
    #[arg(long, value_name = "JSON", conflicts_with = "identities")]
    components: Option<PathBuf>,

    /// Write the figures as JSON.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,

    /// Store the fitted impostor tail in this register (only the three numbers, no face data):
    /// its thresholds are then chosen from your photos instead of the shipped figures.
    #[arg(long, value_name = "FILE")]
    register: Option<PathBuf>,

    /// File holding the register key (default: $BLURGATE_REGISTER_KEY, else FILE.key).
    #[arg(long, value_name = "KEYFILE", requires = "register")]
    key_file: Option<PathBuf>,
}

#[derive(clap::Args)]
struct DetectionArgs {
    /// How hard to look for faces. balanced (default): the whole photo, a mirrored copy, a
    /// half-size copy, native-resolution tiles for large photos, and x2 / x3 zoomed tiles
    /// wherever the finest whole-photo pass saw any candidate, fused per face. thorough: also
    /// mirrored zooms and the photo turned 90/180/270 degrees (faces upside down in the
    /// pixels); about three times as slow. fast: the whole photo and native tiles only; about
    /// ten times faster on crowd photos, but misses many faces under 16 px. The report records
    /// the preset.
    #[arg(long, value_enum, default_value_t = SpeedArg::Balanced, value_name = "PRESET")]
    speed: SpeedArg,

    /// Score a face needs, from 0 to 1 (default: 0.15 for balanced and thorough, where it is
    /// the face's score averaged over the passes that could see it; 0.3 for fast); lower
    /// finds more faces and more false alarms.
    #[arg(long, value_name = "SCORE")]
    threshold: Option<f32>,

    /// Detection model: int8 is about 1.6x faster than fp32 and, measured on the WIDER FACE
    /// dev set, finds as many faces at balanced (recall within 0.005 of fp32); fast (a single
    /// look) loses 0.010 of hard-face recall with it. Opt-in while its boxes are checked
    /// against every redaction test. The report records the precision.
    #[arg(long, value_enum, default_value_t = PrecisionArg::Fp32, value_name = "PRECISION")]
    precision: PrecisionArg,

    /// Long side, in pixels, the whole photo is scaled to for the first detection pass.
    #[arg(long, default_value_t = 1280, value_name = "PIXELS")]
    max_side: u32,

    /// Pass over photos larger than --max-side in overlapping tiles at full resolution, for
    /// faces too small for the whole-photo pass: auto and always run it on every large photo
    /// (auto no longer skips it when only large faces were found: a speaker in front of an
    /// audience is exactly that photo); never skips it (small faces will be missed).
    #[arg(long, value_enum, default_value_t = TilesArg::Auto, value_name = "WHEN")]
    tiles: TilesArg,

    /// Largest tile side, in network input pixels, for the native-resolution and zoomed passes
    /// (multiple of 32).
    #[arg(long, default_value_t = Tiling::default().size, value_name = "PIXELS")]
    tile_size: u32,

    /// Refuse photos whose width or height exceeds this many pixels.
    #[arg(long, default_value_t = DecodeLimits::default().max_side, value_name = "PIXELS")]
    max_dimension: u32,
}

impl DetectionArgs {
    fn options(&self, base: DetectorOptions) -> anyhow::Result<DetectorOptions> {
        if self.threshold.is_some_and(|t| !(0.0..=1.0).contains(&t)) {
            return Err(usage("--threshold must be between 0 and 1"));
        }
        Ok(DetectorOptions {
            speed: match self.speed {
                SpeedArg::Fast => Speed::Fast,
                SpeedArg::Balanced => Speed::Balanced,
                SpeedArg::Thorough => Speed::Thorough,
            },
            threshold: self.threshold,
            precision: match self.precision {
                PrecisionArg::Fp32 => Precision::Fp32,
                PrecisionArg::Int8 => Precision::Int8,
            },
            max_side: self.max_side,
            tiling: match self.tiles {
                TilesArg::Never => None,
                TilesArg::Auto | TilesArg::Always => Some(Tiling { size: self.tile_size, ..Tiling::default() }),
            },
            ..base
        })
    }

    fn limits(&self) -> DecodeLimits {
        DecodeLimits { max_side: self.max_dimension, ..DecodeLimits::default() }
    }
}

const REDACT_AFTER_HELP: &str = "\
Policies: without --register every face is redacted. With a register, each face is compared
with the enrolled people: similarity >= --match-threshold is a match, between the two
thresholds is uncertain (redacted and flagged for review, or with --hold-uncertain the whole
file is held back and not written), below is unknown. opt-outs redacts matched people who
refused --purpose; consented-only redacts everyone except matched people who consented.

What is kept: the colour profile and the Artist and Copyright tags. GPS, camera serials, maker
notes and XMP (which can name the people in a photo) are removed unless --keep-metadata. The
EXIF thumbnail, comments and anything after a JPEG's end (a second picture some cameras append)
are always removed.

JPEG quality: a JPEG keeps its own quality. Only the blocks a mask reaches (whole 16x16 units
in most photos) are encoded again, with the photo's own tables; the rest of its image data is
copied unchanged, so a photo with no face loses nothing. An EXIF-rotated JPEG has its blocks
turned upright losslessly when its sides are whole 16-pixel blocks (as phone and camera photos
are). Other rotated JPEGs, CMYK and 12-bit JPEGs, and --jpeg-quality Q, encode the whole photo
afresh (at Q, default 92).

Fail closed: a file that cannot be decoded (truncated, corrupt, unsupported such as HEIC) or
written is listed as failed on stderr and in the report, nothing of it is written (an older copy
under its output name is removed), the other files still complete, and the exit code is 1.
Outputs appear under their final names only once complete.

Report (--report FILE, JSON): {\"version\":1, \"files\":[{\"input\", \"output\", \"status\":
\"redacted\"|\"unchanged\"|\"failed\"|\"held\", \"error\", \"review\", \"width\", \"height\",
\"input_sha256\", \"output_sha256\", \"faces\":[{\"box\":[x1,y1,x2,y2], \"score\", \"landmarks\",
\"action\":\"redacted\"|\"kept\", \"mask\", \"decision\":\"matched\"|\"uncertain\"|\"unknown\",
\"person\", \"similarity\"}]}], \"summary\":{...}}. Coordinates are pixels of the upright output
image. Embeddings are never written.

Exit codes: 0 every file done, 1 some files failed or were held for review, 2 usage or set-up
error (nothing written).";

#[derive(clap::Args)]
struct RedactArgs {
    /// Photos and folders to redact (JPEG, PNG, WebP, TIFF, BMP, GIF first frame).
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<PathBuf>,

    /// Folder for the redacted copies (created if needed; must not be inside an input folder).
    #[arg(long, short, value_name = "DIR")]
    out: PathBuf,

    /// Write a JSON report of every file and face to FILE.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,

    /// How faces are hidden.
    #[arg(long, value_enum, default_value_t = StyleArg::Blur)]
    style: StyleArg,

    /// Redact rectangles instead of ellipses.
    #[arg(long)]
    boxes: bool,

    /// Mask size relative to the detected face box.
    #[arg(long, default_value_t = 1.3, value_name = "FACTOR")]
    mask_scale: f32,

    #[command(flatten)]
    detection: DetectionArgs,

    /// Register of enrolled people (see `blurgate enroll`). With it the default policy is
    /// opt-outs.
    #[arg(long, value_name = "FILE")]
    register: Option<PathBuf>,

    /// File holding the register key (default: $BLURGATE_REGISTER_KEY, else FILE.key).
    #[arg(long, value_name = "KEYFILE", requires = "register")]
    key_file: Option<PathBuf>,

    /// Who is redacted: all (every face; default without a register), opt-outs (registered
    /// people who refused --purpose; default with a register), consented-only (everyone not
    /// matched to a consenting person in the register).
    #[arg(long, value_enum)]
    policy: Option<PolicyArg>,

    #[command(flatten)]
    matching: MatchArgs,

    /// Do not write files with an uncertain match; list them for review instead.
    #[arg(long)]
    hold_uncertain: bool,

    #[command(flatten)]
    audit: AuditArg,

    /// Keep the source EXIF (GPS, camera serials, maker notes...). By default only the colour
    /// profile and the Artist and Copyright tags are kept.
    #[arg(long)]
    keep_metadata: bool,

    /// Encode every JPEG afresh at this quality (1-100). By default a JPEG keeps its own
    /// quality: only the blocks a redaction reaches are encoded again and the rest of its
    /// image data is copied unchanged (EXIF-rotated ones turned losslessly when their sides are
    /// whole blocks); JPEGs that cannot be rewritten that way (CMYK, 12-bit, rotated with partial
    /// blocks) are encoded at quality 92.
    #[arg(long, value_name = "Q", value_parser = clap::value_parser!(u8).range(1..=100))]
    jpeg_quality: Option<u8>,

    /// Follow symbolic links that lead outside an input folder (by default they are skipped).
    #[arg(long)]
    follow_symlinks: bool,

    /// Check every file again. By default a run into the same --out resumes: files finished
    /// earlier with the same input, settings and register are skipped (reported as resumed).
    #[arg(long)]
    fresh: bool,

    /// Photos processed at once (default: one per CPU core).
    #[arg(long, short = 'j', value_name = "N")]
    jobs: Option<usize>,
}

#[derive(Clone, Copy, ValueEnum)]
enum DeviceArg {
    Cpu,
    Cuda,
}

#[derive(Clone, Copy, ValueEnum)]
enum SpeedArg {
    Fast,
    Balanced,
    Thorough,
}

#[derive(Clone, Copy, ValueEnum)]
enum PrecisionArg {
    Fp32,
    Int8,
}

#[derive(Clone, Copy, ValueEnum)]
enum TilesArg {
    Auto,
    Always,
    Never,
}

#[derive(Clone, Copy, ValueEnum)]
enum PolicyArg {
    All,
    OptOuts,
    ConsentedOnly,
}

#[derive(Clone, Copy, ValueEnum)]
enum StyleArg {
    Blur,
    Pixelate,
    Fill,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("BLURGATE_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            let code = e.downcast_ref::<Error>().map_or(2, |e| e.exit_code());
            ExitCode::from(code as u8)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let models = || ModelDir::locate(cli.models.as_deref());
    let device = match cli.device {
        DeviceArg::Cpu => Device::Cpu,
        DeviceArg::Cuda => Device::Cuda,
    };
    let detector = DetectorOptions { device, ..DetectorOptions::default() };
    match cli.command {
        Command::Redact(args) => redact(args, models()?, detector, cli.quiet),
        Command::Enroll(args) => enroll(args, models()?, detector),
        Command::Find(args) => find(args, models()?, detector, cli.quiet),
        Command::Forget(args) => forget(args),
        Command::Register(cmd) => register(cmd),
        Command::Audit(AuditCommand::Verify { file }) => audit_verify(&file),
        Command::Calibrate(args) => calibrate(args, models()?, detector),
    }
}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    Error::Usage(msg.into()).into()
}

impl MatchArgs {
    fn matching(&self, register: Register) -> anyhow::Result<Matching> {
        if !(self.target_far > 0.0 && self.target_far < 1.0) {
            return Err(usage("--target-far must be between 0 and 1"));
        }
        let today = today();
        let thresholds =
            register.thresholds(today, self.target_far).overridden(self.match_threshold, self.uncertain_threshold);
        if !(thresholds.uncertain <= thresholds.matched && thresholds.matched <= 1.0) {
            return Err(usage(format!(
                "thresholds must satisfy uncertain <= matched <= 1 (in force: {:.3} / {:.3})",
                thresholds.uncertain, thresholds.matched
            )));
        }
        Ok(Matching { register, purpose: self.purpose.clone(), thresholds, today })
    }
}

fn redact(a: RedactArgs, models: ModelDir, detector: DetectorOptions, quiet: bool) -> anyhow::Result<ExitCode> {
    if a.mask_scale < 1.0 {
        return Err(usage("--mask-scale must be at least 1.0 (the mask never shrinks below the face)"));
    }
    let matching = match &a.register {
        Some(path) => Some(a.matching.matching(RegisterFile::new(path, a.key_file.as_deref()).load()?.0)?),
        None => None,
    };
    let policy = match (a.policy, matching.is_some()) {
        (Some(PolicyArg::All), _) | (None, false) => Policy::All,
        (Some(PolicyArg::OptOuts), _) | (None, true) => Policy::OptOuts,
        (Some(PolicyArg::ConsentedOnly), _) => Policy::ConsentedOnly,
    };
    let job = RedactJob {
        inputs: a.inputs,
        out: a.out,
        detector: a.detection.options(detector)?,
        redact: RedactOptions {
            style: match a.style {
                StyleArg::Blur => Style::Blur,
                StyleArg::Pixelate => Style::Pixelate,
                StyleArg::Fill => Style::Fill,
            },
            shape: if a.boxes { Shape::Box } else { Shape::Ellipse },
            mask_scale: a.mask_scale,
        },
        encode: EncodeOptions {
            metadata: if a.keep_metadata { MetadataPolicy::Keep } else { MetadataPolicy::Strip },
            jpeg_quality: a.jpeg_quality,
        },
        limits: a.detection.limits(),
        policy,
        matching,
        hold_uncertain: a.hold_uncertain,
        audit: a.audit.audit,
        follow_symlinks: a.follow_symlinks,
        fresh: a.fresh,
        jobs: a.jobs,
        progress: !quiet,
    };
    let report = run_redact(&job, &models)?;
    if let Some(path) = &a.report {
        report.write(path)?;
    }
    for f in report.files.iter().filter(|f| f.status == FileStatus::Held) {
        eprintln!("held for review: {} (uncertain match; not written)", f.input);
    }
    if !quiet {
        eprintln!("{}", report.summary_line());
    }
    let s = &report.summary;
    Ok(if s.failed > 0 || s.held > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn enroll(a: EnrollArgs, models: ModelDir, detector: DetectorOptions) -> anyhow::Result<ExitCode> {
    let expires_at = a.expires.as_deref().map(parse_date).transpose().map_err(usage)?;
    if a.id.trim().is_empty() {
        return Err(usage("--id must not be empty"));
    }
    let file = RegisterFile::new(&a.register.register, a.register.key_file.as_deref());
    let (mut register, key, new_key) = file.load_or_create()?;
    let engine = Engine::new(&models, detector, true, 1)?;
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
    if let Some(log) = &a.audit.audit {
        let photos_sha256 = a.photos.iter().map(|p| sha256_file(p)).collect::<Result<_, _>>()?;
        AuditLog::open(log)?.append(&Event::Enrol {
            id: a.id.clone(),
            photos_sha256,
            embeddings: count,
            replaced: a.replace,
        })?;
    }
    if let Some(where_) = new_key {
        eprintln!("new register: its key was written to {where_} (keep it apart from the register and backed up; without it the register cannot be read)");
    }
    let total = register.person(&a.id).map_or(0, |p| p.embeddings.len());
    println!("enrolled {}: {count} photo(s) added, {total} embedding(s) held, register {}", a.id, file.path.display());
    Ok(ExitCode::SUCCESS)
}

fn find(a: FindArgs, models: ModelDir, detector: DetectorOptions, quiet: bool) -> anyhow::Result<ExitCode> {
    let (register, _) = RegisterFile::new(&a.register.register, a.register.key_file.as_deref()).load()?;
    let person = register
        .person(&a.id)
        .cloned()
        .ok_or_else(|| usage(format!("no person with id `{}` in the register", a.id)))?;
    let job = FindJob {
        inputs: a.inputs,
        detector: a.detection.options(detector)?,
        limits: a.detection.limits(),
        matching: a.matching.matching(Register { people: vec![person], calibration: register.calibration })?,
        jobs: a.jobs,
        progress: !quiet,
    };
    let report = run_find(&job, &models)?;
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
    if !quiet {
        eprintln!("{} appears in {found} of {} file(s); {failed} could not be checked", a.id, report.summary.files);
    }
    Ok(if failed > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn forget(a: ForgetArgs) -> anyhow::Result<ExitCode> {
    let file = RegisterFile::new(&a.register.register, a.register.key_file.as_deref());
    let done = file.forget(&a.id)?;
    if let Some(log) = &a.audit.audit {
        AuditLog::open(log)?.append(&Event::Forget {
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

fn register(cmd: RegisterCommand) -> anyhow::Result<ExitCode> {
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
            let p = register.person(&id).ok_or_else(|| usage(format!("no person with id `{id}` in the register")))?;
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

fn audit_verify(file: &std::path::Path) -> anyhow::Result<ExitCode> {
    match audit::verify(file)? {
        Ok(v) => {
            println!("{}: {} record(s), chain intact; last hash {}", file.display(), v.records, v.head);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("{}: BROKEN at {e}", file.display());
            Ok(ExitCode::from(1))
        }
    }
}

fn calibrate(a: CalibrateArgs, models: ModelDir, detector: DetectorOptions) -> anyhow::Result<ExitCode> {
    let set = match (&a.identities, &a.pairs, &a.components) {
        (Some(dir), _, _) => PairSet::from_identities(dir)?,
        (_, Some(csv), _) => PairSet::from_csv(csv)?,
        (_, _, Some(json)) => PairSet::from_components(json)?,
        _ => return Err(usage("give --identities DIR, --pairs CSV or --components JSON")),
    };
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let engine = Engine::new(&models, detector, true, workers)?;
    let c = blurgate::calibrate::calibrate(&engine, &set, &[0.01, 0.001])?;
    println!("photos: {} ({} without one usable face, left out)", c.photos, c.skipped.len());
    println!("pairs: {} same-person, {} different-person", c.same_pairs, c.different_pairs);
    println!(
        "mean similarity: same {:.3}, different {:.3}; highest different {:.3}",
        c.same_mean, c.different_mean, c.different_max
    );
    println!("ROC AUC: {:.4}", c.auc);
    for p in &c.points {
        println!("FAR {:.1}%: threshold {:.3}, TAR {:.3}", p.far * 100.0, p.threshold, p.tar);
    }
    let tail = match c.tail {
        Some(t) => {
            println!(
                "impostor tail: FAR(t) = {:.2e} x exp(-(t - {:.3}) / {:.4}) from {} different-person pairs",
                t.rate, t.from, t.scale, t.pairs
            );
            t
        }
        None => {
            println!("impostor tail: too few different-person pairs to fit (need {MIN_TAIL_PAIRS}); the shipped one stays in use");
            ImpostorTail::SHIPPED
        }
    };
    for people in [5, 20, 100] {
        let t = Thresholds::for_people(&tail, people, DEFAULT_TARGET_FAR, ThresholdSource::Calibration);
        println!(
            "thresholds for {people} people at {}% strangers redacted: match {:.3}, uncertain {:.3}",
            DEFAULT_TARGET_FAR * 100.0,
            t.matched,
            t.uncertain
        );
    }
    if let Some(path) = &a.register {
        let Some(fitted) = c.tail else {
            return Err(usage(format!(
                "{}: not changed: the calibration photos give too few different-person pairs",
                path.display()
            )));
        };
        let file = RegisterFile::new(path, a.key_file.as_deref());
        let (mut register, key) = file.load()?;
        register.calibration = Some(fitted);
        register.save(&file.path, &key)?;
        println!("stored the impostor tail in {}: its thresholds now come from these photos", path.display());
    }
    if let Some(path) = &a.report {
        std::fs::write(path, serde_json::to_vec_pretty(&c)?).map_err(|e| Error::Io { path: path.clone(), err: e })?;
    }
    Ok(ExitCode::SUCCESS)
}
