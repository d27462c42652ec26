//! The models a job needs, loaded once and shared by its workers: the detector, and the
//! recogniser when faces are matched against a register.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use image::RgbImage;
use time::Date;

use crate::badge::{TextDetector, TextRegion};
use crate::detect::{Detection, DetectionWork, Detector, DetectorOptions, Landmarks};
use crate::embed::{Embedder, EmbedderOptions, Embedding, Probe};
use crate::error::{Error, Result};
use crate::matching::{self, FaceDecision, Policy, Thresholds};
use crate::models::{ModelDir, ModelKind};
use crate::register::Register;

/// Recognition against a register.
#[derive(Debug, Clone)]
pub struct Matching {
    pub register: Register,
    /// The use of the photos, checked against each person's refused purposes.
    pub purpose: String,
    /// The band edges in force (see [`Register::thresholds`]).
    pub thresholds: Thresholds,
    /// Entries that expired before this day no longer match.
    pub today: Date,
}

impl Matching {
    /// sha256 of the register's content: what a result found with it depends on.
    pub fn register_digest(&self) -> String {
        crate::digest::sha256_hex(&serde_json::to_vec(&self.register).expect("register serialises"))
    }

    /// Names everything a face's match decision depends on: the register, the purpose, the
    /// band edges and the day (entries expire).
    pub fn identity(&self) -> String {
        let text = format!("{}|{}|{:?}|{}", self.register_digest(), self.purpose, self.thresholds, self.today);
        crate::digest::sha256_hex(text.as_bytes())
    }
}

/// Whether an engine loads the recogniser as well as the detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recognition {
    Off,
    On,
}

/// Model name → sha256 of the file loaded, for the audit log and the run's settings.
pub type ModelDigests = BTreeMap<String, String>;

pub struct Engine {
    detector: Detector,
    embedder: Option<Embedder>,
    digests: ModelDigests,
    models: ModelDir,
    /// Sessions per model, and threads per session.
    sessions: (usize, usize),
    /// The text detector, loaded by the first file with a redacted face (a run without any
    /// pays nothing for it); a failure to load fails that file and is tried again by the next.
    text: OnceLock<TextDetector>,
    loading_text: Mutex<()>,
}

impl Engine {
    /// Loads the detector (and the recogniser with [`Recognition::On`]) with one session per
    /// worker, the machine's cores shared out between them.
    pub fn new(
        models: &ModelDir,
        detector: DetectorOptions,
        recognition: Recognition,
        workers: usize,
    ) -> Result<Engine> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = (cores / workers.max(1)).max(1);
        let env = models.init_runtime()?;
        let mut digests = BTreeMap::new();
        let centerface = models.model(detector.precision.model())?;
        digests.insert(centerface.name.clone(), centerface.sha256.clone());
        let detector = Detector::try_new(
            env,
            &centerface.path,
            DetectorOptions { sessions: workers, threads_per_session: threads, ..detector },
        )?;
        let embedder = match recognition {
            Recognition::Off => None,
            Recognition::On => {
                let sface = models.model(ModelKind::SFace)?;
                digests.insert(sface.name.clone(), sface.sha256.clone());
                let options = EmbedderOptions {
                    sessions: workers,
                    threads_per_session: threads,
                    device: detector.options().device,
                };
                Some(Embedder::try_new(env, &sface.path, options)?)
            }
        };
        let (models, sessions) = (models.clone(), (workers, threads));
        Ok(Engine {
            detector,
            embedder,
            digests,
            models,
            sessions,
            text: OnceLock::new(),
            loading_text: Mutex::new(()),
        })
    }

    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    /// Text in the badge areas of `faces` (the redacted ones) in `rgb`, the photo at full
    /// resolution; the text network's runs are added to `work`.
    pub fn badges(&self, rgb: &RgbImage, faces: &[Detection], work: &mut DetectionWork) -> Result<Vec<TextRegion>> {
        if faces.is_empty() {
            return Ok(Vec::new());
        }
        self.text_detector()?.find(rgb, faces, work)
    }

    fn text_detector(&self) -> Result<&TextDetector> {
        if let Some(t) = self.text.get() {
            return Ok(t);
        }
        let _one_at_a_time = self.loading_text.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = self.text.get() {
            return Ok(t);
        }
        let model = self.models.model(ModelKind::TextDetector)?;
        let env = self.models.init_runtime()?;
        let (sessions, threads) = self.sessions;
        let text = TextDetector::try_new(env, &model.path, sessions, threads, self.detector.options().device)?;
        tracing::debug!(model = %model.path.display(), "text detector loaded");
        Ok(self.text.get_or_init(|| text))
    }

    /// The model files in use, by name.
    pub fn model_digests(&self) -> &ModelDigests {
        &self.digests
    }

    /// The face recogniser; an error if the engine was built without recognition.
    pub fn embedder(&self) -> Result<&Embedder> {
        self.embedder.as_ref().ok_or(Error::RecognitionNotLoaded)
    }

    /// Embeddings of the faces at `landmarks`.
    pub fn embed(&self, rgb: &RgbImage, landmarks: &[Landmarks]) -> Result<Vec<Embedding>> {
        self.embedder()?.embed(rgb, landmarks)
    }

    /// Every face in the photo and, with a register, its match decision under `policy`
    /// (without one, every face is to be redacted); what detection ran is added to `work`.
    pub fn analyse(
        &self,
        rgb: &RgbImage,
        policy: Policy,
        matching: Option<&Matching>,
        work: &mut DetectionWork,
    ) -> Result<Vec<(Detection, Option<FaceDecision>)>> {
        let faces = self.detector.detect_traced(rgb, None, work)?;
        self.decide(rgb, faces, policy, matching)
    }

    /// The match decision of every face found in `rgb` (the photo at full resolution), or
    /// none without a register (then `rgb` is not looked at).
    pub fn decide(
        &self,
        rgb: &RgbImage,
        faces: Vec<Detection>,
        policy: Policy,
        matching: Option<&Matching>,
    ) -> Result<Vec<(Detection, Option<FaceDecision>)>> {
        let Some(m) = matching else {
            return Ok(faces.into_iter().map(|d| (d, None)).collect());
        };
        let probes = self.embedder()?.probes(rgb, &faces)?;
        Ok(faces.into_iter().zip(probes).map(|(d, p)| (d, Some(decide_probe(&p, policy, m)))).collect())
    }
}

/// The match decision for one embedded face.
pub fn decide_probe(p: &Probe, policy: Policy, m: &Matching) -> FaceDecision {
    let best = m.register.best_match(&p.embedding, m.today, &m.purpose);
    matching::decide(policy, &m.thresholds, best, &p.quality)
}
