//! Command line: parses arguments and hands them to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use blurgate::detect::{DetectorOptions, Tiling, DEFAULT_THRESHOLD};
use blurgate::media_in::DecodeLimits;
use blurgate::media_out::{EncodeOptions, MetadataPolicy};
use blurgate::models::ModelDir;
use blurgate::pipeline::{run_redact, RedactJob};
use blurgate::redact::{RedactOptions, Shape, Style};

/// Finds every face in event photos and redacts them before publication.
///
/// Originals are never modified: redacted copies go to a separate folder. A file that cannot
/// be read, checked or written is reported and left out of the output, and the run exits 1.
#[derive(Parser)]
#[command(name = "blurgate", version, propagate_version = true, max_term_width = 100)]
#[command(after_help = "Exit codes: 0 all files done, 1 some files failed (see the report), 2 usage or set-up error.\n\
Models: --models DIR, else $BLURGATE_MODELS, else the models/ folder that scripts/setup.sh fills.")]
struct Cli {
    /// Folder with manifest.json, the ONNX models and the ONNX Runtime library.
    #[arg(long, global = true, value_name = "DIR", env = "BLURGATE_MODELS")]
    models: Option<PathBuf>,

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
}

const REDACT_AFTER_HELP: &str = "\
What is kept: the colour profile and the Artist and Copyright tags. GPS, camera serials, maker
notes and XMP (which can name the people in a photo) are removed unless --keep-metadata.

Fail closed: a file that cannot be decoded (truncated, corrupt, unsupported such as HEIC) or
written is listed as failed on stderr and in the report, nothing of it is written (an older copy
under its output name is removed), the other files still complete, and the exit code is 1.
Outputs appear under their final names only once complete.

Report (--report FILE, JSON): {\"version\":1, \"files\":[{\"input\", \"output\", \"status\":
\"redacted\"|\"unchanged\"|\"failed\", \"error\", \"width\", \"height\", \"faces\":[{\"box\":[x1,y1,x2,y2],
\"score\", \"landmarks\", \"action\":\"redacted\"|\"kept\", \"mask\"}]}], \"summary\":{...}}.
Coordinates are pixels of the upright output image.

Exit codes: 0 every file done, 1 some files failed, 2 usage or set-up error (nothing written).";

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

    /// Detector confidence from 0 to 1; lower finds more faces (and more false alarms).
    #[arg(long, default_value_t = DEFAULT_THRESHOLD, value_name = "SCORE")]
    threshold: f32,

    /// Long side, in pixels, the whole photo is scaled to for the first detection pass.
    #[arg(long, default_value_t = 1280, value_name = "PIXELS")]
    max_side: u32,

    /// Tile side for the second pass over large photos at full resolution (multiple of 32).
    #[arg(long, default_value_t = Tiling::default().size, value_name = "PIXELS")]
    tile_size: u32,

    /// Skip the tiled second pass (faster on large photos; small faces may be missed).
    #[arg(long)]
    no_tiles: bool,

    /// Keep the source EXIF (GPS, camera serials, maker notes...). By default only the colour
    /// profile and the Artist and Copyright tags are kept.
    #[arg(long)]
    keep_metadata: bool,

    /// JPEG quality of the redacted copies (1-100).
    #[arg(long, default_value_t = EncodeOptions::default().jpeg_quality, value_name = "Q",
          value_parser = clap::value_parser!(u8).range(1..=100))]
    jpeg_quality: u8,

    /// Photos processed at once (default: one per CPU core).
    #[arg(long, short = 'j', value_name = "N")]
    jobs: Option<usize>,

    /// Refuse photos whose width or height exceeds this many pixels.
    #[arg(long, default_value_t = DecodeLimits::default().max_side, value_name = "PIXELS")]
    max_dimension: u32,
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
            let code = e.downcast_ref::<blurgate::Error>().map_or(2, |e| e.exit_code());
            ExitCode::from(code as u8)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Redact(args) => redact(args, cli.models, cli.quiet),
    }
}

fn redact(a: RedactArgs, models: Option<PathBuf>, quiet: bool) -> anyhow::Result<ExitCode> {
    if !(0.0..=1.0).contains(&a.threshold) {
        anyhow::bail!(blurgate::Error::Usage("--threshold must be between 0 and 1".into()));
    }
    if a.mask_scale < 1.0 {
        anyhow::bail!(blurgate::Error::Usage("--mask-scale must be at least 1.0 (the mask never shrinks below the face)".into()));
    }
    let models = ModelDir::locate(models.as_deref())?;
    let job = RedactJob {
        inputs: a.inputs,
        out: a.out,
        detector: DetectorOptions {
            threshold: a.threshold,
            max_side: a.max_side,
            tiling: (!a.no_tiles).then_some(Tiling { size: a.tile_size, ..Tiling::default() }),
            ..DetectorOptions::default()
        },
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
        limits: DecodeLimits { max_side: a.max_dimension, ..DecodeLimits::default() },
        jobs: a.jobs,
        progress: !quiet,
    };
    let report = run_redact(&job, &models)?;
    if let Some(path) = &a.report {
        report.write(path)?;
    }
    if !quiet {
        eprintln!("{}", report.summary_line());
    }
    Ok(if report.summary.failed > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
