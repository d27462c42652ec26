//! The model registry ([`ModelKind`]), discovery and verification: finds `models/`, checks
//! every file against `manifest.json` (sha256) and loads ONNX Runtime once per process.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::{Error, ManifestProblem, Result};
use ort::environment::Environment;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::session::Session;
use serde::Deserialize;

pub const MODELS_ENV: &str = "BLURGATE_MODELS";
const MANIFEST: &str = "manifest.json";

/// What set-up wrote into `models/manifest.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub runtime: RuntimeEntry,
    pub models: Vec<ModelEntry>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RuntimeEntry {
    pub file: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ModelEntry {
    pub name: String,
    pub file: String,
    pub sha256: String,
    pub licence: String,
}

/// The models blurgate knows, keyed by what they are for; `scripts/setup.sh` fetches and pins
/// each (`scripts/prepare_models.py`) and records it in the manifest under [`ModelKind::name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelKind {
    /// CenterFace face detector (fp32).
    CenterFace,
    /// CenterFace quantised to int8 by set-up (`--precision int8`).
    CenterFaceInt8,
    /// SFace face recogniser (128-d embeddings).
    SFace,
    /// PP-OCRv4's text detection network (badges and name cards of redacted people).
    TextDetector,
}

impl ModelKind {
    /// The model's entry in `models/manifest.json`.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::CenterFace => "centerface",
            ModelKind::CenterFaceInt8 => "centerface_int8",
            ModelKind::SFace => "sface",
            ModelKind::TextDetector => "ppocr_det",
        }
    }
}

/// A model file that was found and whose checksum matched the manifest.
#[derive(Debug, Clone)]
pub struct VerifiedModel {
    pub name: String,
    pub path: PathBuf,
    pub sha256: String,
}

/// The models folder in use.
#[derive(Debug, Clone)]
pub struct ModelDir {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl ModelDir {
    /// `--models DIR`, else `BLURGATE_MODELS`, else a `models/` folder beside the project the
    /// binary was built in, else the per-user data folder.
    pub fn locate(explicit: Option<&Path>) -> Result<Self> {
        let dir = match explicit {
            Some(d) => d.to_path_buf(),
            None => match std::env::var_os(MODELS_ENV) {
                Some(d) if !d.is_empty() => PathBuf::from(d),
                _ => default_candidates()
                    .into_iter()
                    .find(|d| d.join(MANIFEST).is_file())
                    .unwrap_or_else(|| PathBuf::from("models")),
            },
        };
        Self::open(&dir)
    }

    pub fn open(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST);
        if !path.is_file() {
            return Err(Error::ModelMissing { what: "model manifest", path });
        }
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let manifest: Manifest =
            serde_json::from_str(&text).map_err(|e| Error::Manifest { path: path.clone(), problem: e.into() })?;
        if manifest.version != 1 {
            return Err(Error::Manifest { path, problem: ManifestProblem::Version(manifest.version) });
        }
        Ok(ModelDir { dir: dir.to_path_buf(), manifest })
    }

    /// The named model, present and matching its manifest checksum.
    pub fn model(&self, kind: ModelKind) -> Result<VerifiedModel> {
        let name = kind.name();
        let entry = self.manifest.models.iter().find(|m| m.name == name).ok_or_else(|| Error::Manifest {
            path: self.dir.join(MANIFEST),
            problem: ManifestProblem::NoEntry(name),
        })?;
        let path = self.dir.join(&entry.file);
        if !path.is_file() {
            return Err(Error::ModelMissing { what: name, path });
        }
        verify_sha256(&path, &entry.sha256)?;
        Ok(VerifiedModel { name: entry.name.clone(), path, sha256: entry.sha256.clone() })
    }

    /// Loads ONNX Runtime (from `ORT_DYLIB_PATH` if set, else from this folder) exactly once.
    pub fn init_runtime(&self) -> Result<&'static Environment> {
        let path = match std::env::var_os("ORT_DYLIB_PATH") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => self.dir.join(&self.manifest.runtime.file),
        };
        init_runtime(&path)
    }
}

fn default_candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    // target/{release,debug}/blurgate (and target/*/deps for tests) sit below the project root.
    if let Ok(exe) = std::env::current_exe() {
        out.extend(exe.ancestors().skip(1).take(4).map(|a| a.join("models")));
    }
    out.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models"));
    let data_home = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")));
    if let Some(d) = data_home {
        out.push(d.join("blurgate/models"));
    }
    out
}

fn init_runtime(path: &Path) -> Result<&'static Environment> {
    // ort keeps only a weak reference to the environment: hold it for the life of the process.
    type Loaded = Result<Environment, Box<dyn std::error::Error + Send + Sync>>;
    static ENV: OnceLock<Loaded> = OnceLock::new();
    if !path.is_file() {
        return Err(Error::ModelMissing { what: "ONNX Runtime library", path: path.to_path_buf() });
    }
    let loaded = ENV.get_or_init(|| Ok(ort::init_from(path)?.with_name("blurgate").build()?));
    loaded.as_ref().map_err(|e| Error::Runtime { path: path.to_path_buf(), reason: e.to_string() })
}

/// Where inference runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    #[default]
    Cpu,
    /// ONNX Runtime's CUDA execution provider; falls back to the CPU with a warning when the
    /// build, the runtime library or the machine cannot provide it.
    Cuda,
}

/// One inference session with blurgate's settings: full graph optimisation, `threads`
/// intra-op threads, no inter-op parallelism (workers already run in parallel), and no memory
/// pattern: it is planned per input shape, and photos come in many shapes (on the benchmark
/// set, peak RSS 970 → 752 MiB at the same speed; the arena stays, turning it off cost a third
/// of the speed).
pub fn session(
    env: &Environment,
    model: &Path,
    threads: usize,
    device: Device,
    config: &[(&str, &str)],
) -> Result<Session> {
    let mut builder = Session::builder(env)?
        .with_optimization_level(GraphOptimizationLevel::All)?
        .with_intra_threads(threads.max(1))?
        .with_inter_threads(1)?
        .with_memory_pattern(false)?;
    for (key, value) in config {
        builder = builder.with_config_entry(key, value)?;
    }
    if device == Device::Cuda {
        builder = with_cuda(builder);
    }
    Ok(builder.commit_from_file(model)?)
}

/// One session per pipeline worker: worker `i` of a rayon pool always uses session `i`, so
/// workers never wait for each other (`Session::run` needs exclusive access).
pub struct SessionPool(Vec<std::sync::Mutex<Session>>);

impl SessionPool {
    pub fn new(
        env: &Environment,
        model: &Path,
        sessions: usize,
        threads: usize,
        device: Device,
        config: &[(&str, &str)],
    ) -> Result<Self> {
        // Created side by side: each takes tens of milliseconds (loading and optimising the
        // graph), paid before the first photo.
        let pool = std::thread::scope(|s| {
            let started: Vec<_> =
                (0..sessions.max(1)).map(|_| s.spawn(|| session(env, model, threads, device, config))).collect();
            started
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)).map(std::sync::Mutex::new))
                .collect::<Result<Vec<_>>>()
        })?;
        Ok(SessionPool(pool))
    }

    /// The calling worker's session. A poisoned lock means an earlier inference panicked; the
    /// session itself is still valid.
    pub fn get(&self) -> std::sync::MutexGuard<'_, Session> {
        let index = rayon::current_thread_index().unwrap_or(0) % self.0.len();
        self.0[index].lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn warn_cpu_fallback(reason: &str) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| tracing::warn!("the CUDA execution provider was asked for: {reason}; running on the CPU"));
}

#[cfg(feature = "cuda")]
fn with_cuda(mut builder: SessionBuilder) -> SessionBuilder {
    use ort::ep::ExecutionProvider;
    if let Err(e) = ort::ep::CUDA::default().register(&mut builder) {
        warn_cpu_fallback(&format!("CUDA is not available ({e})"));
    }
    builder
}

#[cfg(not(feature = "cuda"))]
fn with_cuda(builder: SessionBuilder) -> SessionBuilder {
    warn_cpu_fallback("this blurgate was built without the `cuda` feature");
    builder
}

fn verify_sha256(path: &Path, expected: &str) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let found = crate::digest::sha256_reader(file).map_err(|e| Error::io(path, e))?;
    if found.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(Error::ModelChecksum { path: path.to_path_buf(), expected: expected.to_string(), found })
    }
}
