//! `blurgate calibrate`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use blurgate::detect::DetectorOptions;
use blurgate::jobs::calibrate::{calibrate, PairSet};
use blurgate::jobs::{Engine, Recognition};
use blurgate::matching::tail::MIN_TAIL_PAIRS;
use blurgate::matching::{ImpostorTail, ThresholdSource, Thresholds, DEFAULT_TARGET_FAR};
use blurgate::register::RegisterFile;
use blurgate::storage::write_atomic;

use super::exit::usage;
use super::Context;

#[derive(clap::Args, Debug)]
pub struct CalibrateArgs {
    /// Folder with one sub-folder of photos per person.
    #[arg(long, value_name = "DIR", required_unless_present_any = ["pairs", "components"])]
    pub identities: Option<PathBuf>,

    /// CSV of photo pairs: file_x,file_y,yes|no (paths relative to the CSV).
    #[arg(long, value_name = "CSV", conflicts_with_all = ["identities", "components"])]
    pub pairs: Option<PathBuf>,

    /// JSON {"components": [[photos of one person], ...]} (paths relative to the JSON).
    #[arg(long, value_name = "JSON", conflicts_with = "identities")]
    pub components: Option<PathBuf>,

    /// Write the figures as JSON.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// Store the fitted impostor tail in this register (only the three numbers, no face data):
    /// its thresholds are then chosen from your photos instead of the shipped figures.
    #[arg(long, value_name = "FILE")]
    pub register: Option<PathBuf>,

    /// File holding the register key (default: $BLURGATE_REGISTER_KEY, else the key store).
    #[arg(long, value_name = "KEYFILE", requires = "register")]
    pub key_file: Option<PathBuf>,
}

pub fn run(a: CalibrateArgs, ctx: &Context) -> anyhow::Result<ExitCode> {
    let set = match (&a.identities, &a.pairs, &a.components) {
        (Some(dir), _, _) => PairSet::from_identities(dir)?,
        (_, Some(csv), _) => PairSet::from_csv(csv)?,
        (_, _, Some(json)) => PairSet::from_components(json)?,
        _ => return Err(usage("give --identities DIR, --pairs CSV or --components JSON")),
    };
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let detector = DetectorOptions { device: ctx.device, ..DetectorOptions::default() };
    let engine = Engine::new(&ctx.models()?, detector, Recognition::On, workers)?;
    let c = calibrate(&engine, &set, &[0.01, 0.001])?;
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
        write_atomic(path, &serde_json::to_vec_pretty(&c)?).with_context(|| path.display().to_string())?;
    }
    Ok(ExitCode::SUCCESS)
}
