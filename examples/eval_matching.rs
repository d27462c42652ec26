//! Matching evaluation (development tool; `scripts/eval_matching.sh` runs it): opt-out recall
//! and strangers' false-redaction rate at several register sizes, with blurgate's defaults.
//!
//!   cargo run --release --example eval_matching -- SHARED_DIR [--cache FILE] [--compare]
//!
//! `--cache FILE` keeps the measured faces between runs; `--compare` adds the thresholds before
//! issue 13 and the scoring variants measured.
//!
//! People: `identities/deepface_pairs` (its checked components), `face_recognition_knn/knn_train`
//! (a folder per person) and `lfw_pairs_insightface` (by name), the largest face of each photo.
//! Each is enrolled from 1 or 3 photos and probed with their other photos (genuine). Strangers:
//! every face found in `annotated/wider_dev/images` and `photos/known_licence` (crowds and
//! groups), and the photos of the identity people not enrolled in that round (portraits).
//! Registers larger than the identity people are filled with strangers' faces that enrolment
//! accepts, enrolled as extra people (and then left out of the strangers).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use blurgate::detect::{DetectorOptions, FaceBox, Landmarks};
use blurgate::embed::{align, Embedding};
use blurgate::embed::{FaceQuality, QualityGate};
use blurgate::jobs::{plan, Engine, Recognition};
use blurgate::matching::ImpostorTail;
use blurgate::matching::{self, Decision, Policy, ThresholdSource, Thresholds, DEFAULT_TARGET_FAR};
use blurgate::media::{self, DecodeLimits};
use blurgate::models::ModelDir;
use blurgate::register::{Person, Register, DEFAULT_PURPOSE};
use image::{imageops, RgbImage};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// One face as the pipeline sees it: the detection, its quality, and the embeddings of the
/// aligned face and of its mirror image (kept apart so that variants can be compared).
#[derive(Serialize, Deserialize)]
struct Face {
    detection: Detected,
    quality: FaceQuality,
    plain: Embedding,
    mirrored: Embedding,
    /// Index of the photo among the crowd photos (strangers only).
    #[serde(default)]
    photo: usize,
}

#[derive(Serialize, Deserialize)]
struct Detected {
    bbox: FaceBox,
    score: f32,
    landmarks: Landmarks,
}

/// A person of the identity sets: the largest face of each of their photos.
#[derive(Serialize, Deserialize)]
struct Identity {
    name: String,
    faces: Vec<Face>,
}

/// Everything measured on the photos, cached between runs with `--cache FILE`.
#[derive(Serialize, Deserialize)]
struct Measured {
    identities: Vec<Identity>,
    crowd: Vec<Face>,
    crowd_photos: usize,
}

fn photos_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let walk = plan::walk(&[dir.into()], false, None)?;
    let mut files: Vec<PathBuf> = walk
        .files
        .into_iter()
        .filter(|f| matches!(f.verdict, plan::Verdict::Check))
        .filter_map(|f| f.input.local_path().map(Path::to_path_buf))
        .collect();
    files.sort();
    Ok(files)
}

/// The identity sets as (person, photos).
fn identity_groups(shared: &Path) -> Result<Vec<(String, Vec<PathBuf>)>> {
    let ids = shared.join("fixtures/identities");
    let mut groups = Vec::new();
    let deepface = ids.join("deepface_pairs");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(deepface.join("identities_checked.json"))?)?;
    for (n, component) in json["components"].as_array().context("components")?.iter().enumerate() {
        let files =
            component.as_array().context("component")?.iter().map(|f| deepface.join(f.as_str().unwrap_or_default()));
        groups.push((format!("deepface-{n}"), files.collect()));
    }
    let knn = ids.join("face_recognition_knn/knn_train");
    let mut people: Vec<_> = std::fs::read_dir(&knn)?.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    people.sort();
    for dir in people {
        groups.push((format!("knn-{}", dir.file_name().unwrap_or_default().to_string_lossy()), photos_in(&dir)?));
    }
    // LFW names: Firstname_Lastname_0001.jpg.
    let mut lfw: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for f in photos_in(&ids.join("lfw_pairs_insightface"))? {
        let stem = f.file_stem().unwrap_or_default().to_string_lossy().into_owned();
        let name = stem.rsplit_once('_').map_or(stem.clone(), |(n, _)| n.to_string());
        lfw.entry(format!("lfw-{name}")).or_default().push(f);
    }
    groups.extend(lfw);
    Ok(groups)
}

fn faces_of(engine: &Engine, path: &Path, photo_index: usize) -> Result<Vec<Face>> {
    let bytes = std::fs::read(path)?;
    let photo =
        media::decode(&bytes, DecodeLimits::default()).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let found = engine.detector().detect(&photo.rgb)?;
    let aligned: Vec<RgbImage> = found.iter().map(|d| align(&photo.rgb, &d.landmarks)).collect();
    let mut batch = aligned.clone();
    batch.extend(aligned.iter().map(imageops::flip_horizontal));
    let mut embedded = engine.embedder()?.embed_aligned(&batch)?;
    let mirrored = embedded.split_off(found.len());
    Ok(found
        .into_iter()
        .zip(aligned)
        .zip(embedded.into_iter().zip(mirrored))
        .map(|((d, a), (plain, mirrored))| Face {
            quality: FaceQuality::measure(&d, &a),
            detection: Detected { bbox: d.bbox, score: d.score, landmarks: d.landmarks },
            plain,
            mirrored,
            photo: photo_index,
        })
        .collect())
}

/// The photo's largest confident face, as `calibrate` takes it.
fn largest(faces: Vec<Face>) -> Option<Face> {
    faces
        .into_iter()
        .filter(|f| f.detection.score >= 0.5)
        .max_by(|a, b| a.detection.bbox.area().total_cmp(&b.detection.bbox.area()))
}

fn measure(shared: &Path) -> Result<Measured> {
    let models = ModelDir::locate(None)?;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let engine = Engine::new(&models, DetectorOptions::default(), Recognition::On, workers)?;
    let groups = identity_groups(shared)?;
    let identities: Vec<Identity> = groups
        .par_iter()
        .map(|(name, photos)| {
            let faces = photos.iter().map(|p| Ok(largest(faces_of(&engine, p, 0)?))).collect::<Result<Vec<_>>>()?;
            Ok(Identity { name: name.clone(), faces: faces.into_iter().flatten().collect() })
        })
        .collect::<Result<_>>()?;
    let mut crowd_photos = photos_in(&shared.join("fixtures/annotated/wider_dev/images"))?;
    crowd_photos.extend(photos_in(&shared.join("fixtures/photos/known_licence"))?);
    let crowd = crowd_photos
        .par_iter()
        .enumerate()
        .map(|(i, p)| faces_of(&engine, p, i))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect();
    Ok(Measured { identities, crowd, crowd_photos: crowd_photos.len() })
}

/// Small deterministic generator for picking register fillers.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

/// The person as the register holds them; with `best_shot`, one entry per photo.
fn enrol(register: &mut Register, id: String, faces: &[&Face], v: Variant) {
    let person = |faces: &[&Face]| Person {
        id: id.clone(),
        label: None,
        refuses: vec![DEFAULT_PURPOSE.into()],
        enrolled_at: time::OffsetDateTime::UNIX_EPOCH,
        expires_at: None,
        embeddings: faces.iter().map(|f| v.embedding(f)).collect(),
    };
    if v.best_shot {
        register.people.extend(faces.iter().map(|f| person(&[f])));
    } else {
        register.people.push(person(faces));
    }
}

/// Counts for one register size.
#[derive(Default)]
struct Tally {
    rounds: usize,
    genuine: usize,
    recalled: usize,
    wrong_person: usize,
    crowd: usize,
    crowd_redacted: usize,
    portraits: usize,
    portraits_redacted: usize,
    uncertain: usize,
    thresholds: Vec<Thresholds>,
}

fn today() -> time::Date {
    time::OffsetDateTime::UNIX_EPOCH.date()
}

/// Redacted?, the person named, uncertain? — as `blurgate redact` decides.
fn redacted(register: &Register, face: &Face, t: &Thresholds, v: Variant) -> (bool, Option<String>, bool) {
    let d = matching::decide(
        Policy::OptOuts,
        t,
        register.best_match(&v.embedding(face), today(), DEFAULT_PURPOSE),
        &face.quality,
    );
    (d.decision != Decision::Unknown, d.person, d.decision == Decision::Uncertain)
}

/// Ways of scoring, compared with `--compare`; blurgate's own is `Variant::SHIPPED`.
#[derive(Clone, Copy, Debug)]
struct Variant {
    /// Average each face's embedding with its mirror image's.
    flip: bool,
    /// Compare with each enrolment photo and keep the best, instead of their mean.
    best_shot: bool,
    /// Thresholds of the code before issue 13, instead of the register-size ones.
    fixed: Option<(f32, f32)>,
}

impl Variant {
    const SHIPPED: Variant = Variant { flip: false, best_shot: false, fixed: None };

    fn embedding(&self, f: &Face) -> Embedding {
        if self.flip {
            Embedding::mean(&[f.plain.clone(), f.mirrored.clone()]).expect("non-zero")
        } else {
            f.plain.clone()
        }
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: eval_matching SHARED_DIR [--cache FILE] [--compare]";
    let shared = PathBuf::from(args.first().context(usage)?);
    let cache = args
        .iter()
        .position(|a| a == "--cache")
        .map(|i| args.get(i + 1).map(PathBuf::from).context(usage))
        .transpose()?;
    let measured = match cache.as_deref().filter(|c| c.is_file()) {
        Some(c) => serde_json::from_slice(&std::fs::read(c)?)?,
        None => {
            let m = measure(&shared)?;
            if let Some(c) = &cache {
                std::fs::write(c, serde_json::to_vec(&m)?)?;
            }
            m
        }
    };
    let Measured { identities, crowd, crowd_photos } = measured;
    let identities: Vec<Identity> = identities.into_iter().filter(|i| i.faces.len() >= 2).collect();
    // Strangers' faces that could be enrolled as register fillers.
    let fillers: Vec<usize> = (0..crowd.len()).filter(|&i| enrolable(&crowd[i])).collect();
    println!(
        "identity people: {} ({} photos); crowd faces: {} in {} photos ({} enrolable as fillers)",
        identities.len(),
        identities.iter().map(|i| i.faces.len()).sum::<usize>(),
        crowd.len(),
        crowd_photos,
        fillers.len()
    );

    let mut sizes = vec![5, 20, 100];
    let largest_k = identities.len() + fillers.len() / 2;
    sizes.extend([200, 500, 1000].into_iter().filter(|&k| k <= largest_k));
    let table = |title: &str, v: Variant, sizes: &[usize]| {
        println!("\n{title}\n");
        println!("| shots | K | rounds | thresholds (match / uncertain) | opt-out recall | wrong person | strangers blurred: crowd | portraits | uncertain faces |");
        println!("|---|---|---|---|---|---|---|---|---|");
        for shots in [1, 3] {
            let people: Vec<&Identity> = identities.iter().filter(|i| i.faces.len() > shots).collect();
            for &k in sizes {
                print_row(shots, k, &evaluate(&people, &crowd, &fillers, shots, k, v));
            }
        }
    };
    if args.iter().any(|a| a == "--compare") {
        let before = Variant { fixed: Some((0.40, 0.27)), ..Variant::SHIPPED };
        table("before: fixed thresholds 0.40 / 0.27, best photo", Variant { best_shot: true, ..before }, &sizes);
        table(
            "register-size thresholds, best photo instead of the mean",
            Variant { best_shot: true, ..Variant::SHIPPED },
            &[20, 100],
        );
        table(
            "register-size thresholds, mean template, flip-averaged embeddings",
            Variant { flip: true, ..Variant::SHIPPED },
            &[20, 100],
        );
    }
    table(
        &format!("blurgate's defaults (target {}% strangers redacted)", DEFAULT_TARGET_FAR * 100.0),
        Variant::SHIPPED,
        &sizes,
    );
    Ok(())
}

fn enrolable(f: &Face) -> bool {
    QualityGate::ENROL.refusal(&f.quality).is_none()
}

fn evaluate(people: &[&Identity], crowd: &[Face], fillers: &[usize], shots: usize, k: usize, v: Variant) -> Tally {
    let n = people.len();
    let per_round = k.min(n);
    // Enough rounds that every identity person is enrolled at least once.
    let rounds = n.div_ceil(per_round).max(3);
    let mut tally = Tally::default();
    let mut rng = Lcg(k as u64 * 7919 + shots as u64);
    for round in 0..rounds {
        let enrolled: Vec<usize> = (0..per_round).map(|j| (round * per_round + j) % n).collect();
        let mut register = Register::default();
        for &i in &enrolled {
            let shots: Vec<&Face> = people[i].faces[..shots].iter().collect();
            enrol(&mut register, people[i].name.clone(), &shots, v);
        }
        let mut used = vec![false; crowd.len()];
        let mut filled = 0;
        while filled < k - per_round && filled < fillers.len() {
            let c = fillers[rng.below(fillers.len())];
            if !used[c] {
                used[c] = true;
                enrol(&mut register, format!("filler-{c}"), &[&crowd[c]], v);
                filled += 1;
            }
        }
        let t = match v.fixed {
            Some((matched, uncertain)) => {
                Thresholds { matched, uncertain, source: ThresholdSource::Flags, people: k, target_far: None }
            }
            // Counted in people, not register entries (best_shot holds one per photo).
            None => Thresholds::for_people(&ImpostorTail::SHIPPED, k, DEFAULT_TARGET_FAR, ThresholdSource::Model),
        };
        tally.thresholds.push(t);
        tally.rounds += 1;
        for (i, p) in people.iter().enumerate() {
            let is_enrolled = enrolled.contains(&i);
            let probes = if is_enrolled { &p.faces[shots..] } else { &p.faces[..] };
            for f in probes {
                let (hit, who, uncertain) = redacted(&register, f, &t, v);
                tally.uncertain += uncertain as usize;
                if is_enrolled {
                    tally.genuine += 1;
                    tally.recalled += hit as usize;
                    tally.wrong_person += (hit && who.as_deref() != Some(&p.name)) as usize;
                } else {
                    tally.portraits += 1;
                    tally.portraits_redacted += hit as usize;
                }
            }
        }
        for (_, f) in crowd.iter().enumerate().filter(|(c, _)| !used[*c]) {
            let (hit, _, uncertain) = redacted(&register, f, &t, v);
            tally.uncertain += uncertain as usize;
            tally.crowd += 1;
            tally.crowd_redacted += hit as usize;
        }
    }
    tally
}

fn print_row(shots: usize, k: usize, t: &Tally) {
    let pct = |a: usize, b: usize| {
        if b == 0 {
            "n/a".to_string()
        } else {
            format!("{:.2}% ({a}/{b})", 100.0 * a as f64 / b as f64)
        }
    };
    let ratio =
        |a: usize, b: usize| if b == 0 { "n/a".to_string() } else { format!("{:.3} ({a}/{b})", a as f64 / b as f64) };
    let (lo, hi) =
        t.thresholds.iter().fold((f32::MAX, f32::MIN), |(lo, hi), x| (lo.min(x.uncertain), hi.max(x.matched)));
    println!(
        "| {shots} | {k} | {} | {hi:.3} / {lo:.3} | {} | {} | {} | {} | {} |",
        t.rounds,
        ratio(t.recalled, t.genuine),
        t.wrong_person,
        pct(t.crowd_redacted, t.crowd),
        pct(t.portraits_redacted, t.portraits),
        t.uncertain
    );
}
