//! `blurgate redact`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::ArgMatches;

use blurgate::audit;
use blurgate::jobs::redact::Replace;
use blurgate::jobs::{run_redact, Decisions, RedactJob, RenderOptions};
use blurgate::media::{EncodeOptions, MetadataPolicy};
use blurgate::register::RegisterFile;
use blurgate::report::FileStatus;
use blurgate::sheet::{self, SheetOptions};
use blurgate::storage::Location;

use super::args::{
    refuse_keys_inside, AuditArg, BadgesArg, DetectionArgs, MatchArgs, OutputFormatArg, PolicyArg, StoreArgs,
    StyleArgs, VideoArgs,
};
use super::config::{take, take_opt, Config};
use super::exit::{usage, FILES_FAILED};
use super::progress::Progress;
use super::{options, Context};

pub const AFTER_HELP: &str = "\
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

Dry run (--dry-run): every file is checked as above, nothing is written; stdout lists each file
as \"write\", \"hold\" or \"refuse\" with its output path or reason.

Report (--report FILE, JSON): {\"version\":1, \"files\":[{\"input\", \"output\", \"status\":
\"redacted\"|\"unchanged\"|\"failed\"|\"held\", \"error\", \"error_kind\" (read, unsupported,
decode, limit, model, encode, write, state, audit, internal), \"review\", \"width\", \"height\",
\"input_sha256\", \"output_sha256\", \"faces\":[{\"box\":[x1,y1,x2,y2], \"score\", \"landmarks\",
\"action\":\"redacted\"|\"kept\", \"mask\", \"decision\":\"matched\"|\"uncertain\"|\"unknown\",
\"person\", \"similarity\"}]}], \"summary\":{...}, \"render\":{...}}. Coordinates are pixels of the
upright output image. Embeddings are never written. `blurgate review` adds \"reviewed\" to the
faces it decides; a held file's \"pending_output\" says where it goes once reviewed.

Videos: decoded twice with FFmpeg. The first pass finds faces (every --detect-every frame,
scaled to --video-max-side) and links them into tracks; with a register each track is decided
from its best faces, for all its frames. The second pass redacts every frame of each redacted
track's life (interpolated where the detector missed it, --track-margin frames before and
after) and encodes the video stream (--video-codec, --crf) into the same container, keeping
timestamps, frame rate, rotation and colour tags; audio is copied unchanged (--strip-audio
drops it), subtitle and data streams are dropped. The report's \"video\" field lists streams
and tracks; \"faces\" holds one entry per track.

Exit codes: 0 every file done, 1 some files failed or were held for review, 2 usage or set-up
error (nothing written).";

#[derive(clap::Args, Debug)]
pub struct RedactArgs {
    /// Photos, videos and folders to redact (JPEG and MPO, HEIC and AVIF, PNG, WebP, TIFF, BMP,
    /// GIF; MP4, MOV, MKV, WebM, AVI, Ogg and more through FFmpeg); a file is known by its name,
    /// else by its content. Local paths, or s3://bucket/prefix, gs://bucket/prefix,
    /// az://container/prefix.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<String>,

    /// Folder for the redacted copies (created if needed; must not be inside an input folder);
    /// a local path or an object-store prefix.
    #[arg(long, short, value_name = "DIR", required_unless_present = "replace_published")]
    pub out: Option<String>,

    /// The INPUT is a published location (one folder or prefix, or one file): replace, in
    /// place, each file that shows a face the policy hides (after a late opt-out: use the
    /// register) by its redacted copy, leave the others byte for byte, and vouch for all of
    /// them in the location's manifest. Each replacement is one atomic write and an audit
    /// record; a file that cannot be checked stays as it is and is reported failed.
    #[arg(long, conflicts_with_all = ["out", "output_format", "jpeg_quality"])]
    pub replace_published: bool,

    /// With --replace-published: keep each replaced original here, at its path below the
    /// location (never inside the location: it would be published). By default the originals
    /// are not kept.
    #[arg(long, value_name = "DIR", requires = "replace_published")]
    pub keep_originals: Option<String>,

    /// Write a JSON report of every file and face to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    #[command(flatten)]
    pub style: StyleArgs,

    /// Text on a redacted person (an access badge, a lanyard card, a table name card) names
    /// them: redact (default) finds text where their badge can be, below and around the face
    /// (scaled by its size and pose), and hides it in the same style; keep leaves it. Faces
    /// that are kept keep their badges. Photos only: in videos, badges are not looked for yet.
    /// If the text detector cannot run on a photo whose faces need it, the photo fails.
    #[arg(long, value_enum, default_value_t = BadgesArg::Redact, value_name = "WHAT")]
    pub badges: BadgesArg,

    #[command(flatten)]
    pub detection: DetectionArgs,

    #[command(flatten)]
    pub video: VideoArgs,

    /// Register of enrolled people (see `blurgate enroll`). With it the default policy is
    /// opt-outs.
    #[arg(long, value_name = "FILE")]
    pub register: Option<PathBuf>,

    /// File holding the register key (default: $BLURGATE_REGISTER_KEY, else the key store; see
    /// `blurgate register --help`); never inside the register's, an input or the output folder.
    #[arg(long, value_name = "KEYFILE", requires = "register")]
    pub key_file: Option<PathBuf>,

    /// Who is redacted: all (every face; default without a register), opt-outs (registered
    /// people who refused --purpose; default with a register), consented-only (everyone not
    /// matched to a consenting person in the register).
    #[arg(long, value_enum)]
    pub policy: Option<PolicyArg>,

    #[command(flatten)]
    pub matching: MatchArgs,

    /// Do not write files with an uncertain match; list them for review instead.
    #[arg(long)]
    pub hold_uncertain: bool,

    #[command(flatten)]
    pub audit: AuditArg,

    /// Keep the source EXIF (GPS, camera serials, maker notes...). By default only the colour
    /// profile and the Artist and Copyright tags are kept.
    #[arg(long)]
    pub keep_metadata: bool,

    /// Encode every JPEG afresh at this quality (1-100). By default a JPEG keeps its own
    /// quality: only the blocks a redaction reaches are encoded again and the rest of its
    /// image data is copied unchanged (EXIF-rotated ones turned losslessly when their sides are
    /// whole blocks); JPEGs that cannot be rewritten that way (CMYK, 12-bit, rotated with partial
    /// blocks) are encoded at quality 92.
    #[arg(long, value_name = "Q", value_parser = clap::value_parser!(u8).range(1..=100))]
    pub jpeg_quality: Option<u8>,

    /// Format of the redacted copies: keep (each file in its own format and, where its encoder
    /// can write it, bit depth: HEIC stays HEIC, 16-bit PNG stays 16-bit), jpeg or png (outputs
    /// then take that extension).
    #[arg(long, value_enum, default_value_t = OutputFormatArg::Keep, value_name = "FORMAT")]
    pub output_format: OutputFormatArg,

    /// Follow symbolic links that lead outside an input folder (by default they are skipped).
    #[arg(long)]
    pub follow_symlinks: bool,

    /// Check every file again. By default a run into the same --out resumes: files finished
    /// earlier with the same input, settings and register are skipped (reported as resumed).
    #[arg(long)]
    pub fresh: bool,

    /// Photos processed at once (default: one per CPU core).
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,

    /// Write an HTML contact sheet of the run to FILE: before/after thumbnails of every file
    /// with the faces boxed by decision (self-contained, opens offline).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// In the --html sheet, show registered people's faces unredacted in the "before"
    /// thumbnails (the sheet can leak: by default they are redacted there too).
    #[arg(long, requires = "html")]
    pub show_originals: bool,

    /// Decide everything and write nothing: list each file as it would be written, held for
    /// review or refused (failed), with the report (--report) saying the same. No output
    /// folder, run state or audit record is created.
    #[arg(long)]
    pub dry_run: bool,

    #[command(flatten)]
    pub store: StoreArgs,
}

impl RedactArgs {
    /// The settings file's values for every flag not given.
    fn merge(&mut self, m: &ArgMatches, c: &Config) {
        self.detection.merge(m, &c.detection);
        self.matching.merge(m, &c.matching);
        self.style.merge(m, &c.render);
        take(m, "badges", &mut self.badges, &c.render.badges);
        take(m, "keep_metadata", &mut self.keep_metadata, &c.render.keep_metadata);
        take_opt(m, "jpeg_quality", &mut self.jpeg_quality, &c.render.jpeg_quality);
        take(m, "output_format", &mut self.output_format, &c.render.output_format);
        take_opt(m, "register", &mut self.register, &c.matching.register);
        take_opt(m, "key_file", &mut self.key_file, &c.matching.key_file);
        take_opt(m, "policy", &mut self.policy, &c.matching.policy);
        take(m, "hold_uncertain", &mut self.hold_uncertain, &c.matching.hold_uncertain);
        take_opt(m, "audit", &mut self.audit.audit, &c.run.audit);
        take(m, "follow_symlinks", &mut self.follow_symlinks, &c.run.follow_symlinks);
        take_opt(m, "jobs", &mut self.jobs, &c.run.jobs);
    }

    fn render(&self) -> anyhow::Result<RenderOptions> {
        let redact = self.style.options()?;
        let metadata = if self.keep_metadata { MetadataPolicy::Keep } else { MetadataPolicy::Strip };
        let encode = EncodeOptions::default()
            .with_metadata(metadata)
            .with_jpeg_quality(self.jpeg_quality)
            .with_output(self.output_format.into());
        Ok(RenderOptions::default().with_redact(redact).with_encode(encode).with_badges(self.badges.into()))
    }

    fn decisions(&self) -> anyhow::Result<Decisions> {
        let register = self.register.as_deref().map(|r| RegisterFile::new(r, self.key_file.as_deref()));
        Ok(options::decisions(register.as_ref(), &self.matching, self.policy)?.with_hold_uncertain(self.hold_uncertain))
    }
}

pub fn run(mut a: RedactArgs, m: &ArgMatches, ctx: &Context) -> anyhow::Result<ExitCode> {
    a.merge(m, &ctx.config);
    let render = a.render()?;
    let decisions = a.decisions()?;
    let register = a.register.as_deref().map(|r| RegisterFile::new(r, a.key_file.as_deref()));
    let inputs = a.store.locations(&a.inputs)?;
    let job = match &a.out {
        Some(out) => RedactJob::new(inputs.clone(), a.store.location(out)?),
        None => {
            let [location] = <[Location; 1]>::try_from(inputs.clone())
                .map_err(|_| usage("--replace-published takes one published location (a folder, prefix or file)"))?;
            let keep_originals = a.keep_originals.as_deref().map(|k| a.store.location(k)).transpose()?;
            RedactJob::replacing(location, Replace { keep_originals })?
        }
    };
    refuse_keys_inside(register.as_ref(), a.audit.target().as_ref(), &inputs, Some(&job.out))?;
    let run = options::run(&a.detection, &a.store, a.jobs)
        .with_follow_symlinks(a.follow_symlinks)
        .with_fresh(a.fresh)
        .with_audit(a.audit.target())
        .with_dry_run(a.dry_run);
    let job = job
        .with_detection(options::detection(&a.detection, ctx.device)?)
        .with_render(render)
        .with_decisions(decisions)
        .with_run(run)
        .with_video(options::video(&a.video, render.encode.metadata));
    let report = run_redact(&job, &ctx.models()?, &Progress::new(!ctx.quiet))?;
    if let Some(path) = &a.report {
        report.write(path)?;
    }
    if let Some(path) = &a.html {
        sheet::write(&report, path, &SheetOptions { show_originals: a.show_originals, ..SheetOptions::default() })?;
    }
    if a.dry_run {
        for f in &report.files {
            match (f.status, &f.output, &f.error) {
                (FileStatus::Held, _, _) => println!("hold\t{}\tuncertain match", f.input),
                (FileStatus::Skipped, _, _) => {
                    println!("skip\t{}\t{}", f.input, f.reason.as_deref().unwrap_or(""))
                }
                (_, Some(out), _) => println!("write\t{}\t{out}", f.input),
                (_, None, error) => println!("refuse\t{}\t{}", f.input, error.as_deref().unwrap_or("")),
            }
        }
    }
    for f in report.files.iter().filter(|f| f.status == FileStatus::Held) {
        eprintln!("held for review: {} (uncertain match; not written)", f.input);
    }
    if !ctx.quiet {
        eprintln!("{}{}", report.summary_line(), if a.dry_run { " (dry run: nothing written)" } else { "" });
        if let Some(head) = a.audit.audit.as_deref().filter(|_| !a.dry_run).map(audit::head).transpose()?.flatten() {
            eprintln!("audit chain head: {head} (keep it elsewhere to check the log against later)");
        }
    }
    let s = &report.summary;
    Ok(if s.failed > 0 || s.held > 0 { ExitCode::from(FILES_FAILED) } else { ExitCode::SUCCESS })
}
