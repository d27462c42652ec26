//! Shared helpers for the integration tests: fixture photos and models come from
//! scripts/setup.sh (or BLURGATE_FIXTURES / BLURGATE_MODELS), the binary from cargo.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use blurgate::detect::{Detector, DetectorOptions, FaceBox};
use blurgate::embed::{Embedder, EmbedderOptions};
use blurgate::models::ModelDir;
use blurgate::report::Report;
use image::RgbImage;

pub mod s3;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn models_dir() -> PathBuf {
    std::env::var_os("BLURGATE_MODELS").map(PathBuf::from).unwrap_or_else(|| root().join("models"))
}

/// A fixture photo fetched by scripts/setup.sh.
pub fn fixture(rel: &str) -> PathBuf {
    let base = std::env::var_os("BLURGATE_FIXTURES").map(PathBuf::from).unwrap_or_else(|| root().join("fixtures"));
    let path = base.join(rel);
    assert!(path.is_file(), "{} is missing: run scripts/setup.sh first", path.display());
    path
}

pub fn blurgate(args: &[&str]) -> Output {
    command().args(args).output().expect("blurgate runs")
}

/// The binary with the test models, keys kept in a key store under target/ (never the
/// user's own, nor keys from the user's environment), and a result cache of this test process
/// alone (results of an earlier build are never taken).
pub fn command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_blurgate"));
    command
        .env("BLURGATE_MODELS", models_dir())
        .env("BLURGATE_KEY_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("blurgate-keys"))
        .env("BLURGATE_CACHE_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cache-{}", std::process::id())))
        .env_remove("BLURGATE_ENDPOINT")
        .env_remove("BLURGATE_REGISTER_KEY")
        .env_remove("BLURGATE_AUDIT_KEY")
        .env_remove("BLURGATE_MANIFEST_KEY");
    command
}

pub fn run_ok(args: &[&str]) {
    let o = blurgate(args);
    assert!(o.status.success(), "blurgate {args:?} failed: {}", stderr(&o));
}

/// `blurgate redact INPUT --out OUT --report REPORT -q EXTRA...`, which must succeed; its report.
pub fn redact_ok(input: &Path, out: &Path, report: &Path, extra: &[&str]) -> Report {
    let mut args = vec!["redact", s(input), "--out", s(out), "--report", s(report), "-q"];
    args.extend_from_slice(extra);
    run_ok(&args);
    read_report(report)
}

/// A path as a command-line argument.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn read_report(path: &Path) -> Report {
    serde_json::from_slice(&std::fs::read(path).expect("report written")).expect("report parses")
}

/// A report's `[x1, y1, x2, y2]` as a box.
pub fn face_box(b: [f32; 4]) -> FaceBox {
    FaceBox { x1: b[0], y1: b[1], x2: b[2], y2: b[3] }
}

pub fn rgb(path: &Path) -> RgbImage {
    image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgb8()
}

/// Detector and embedder on the real models, shared by the tests of one binary.
pub struct Models {
    pub detector: Detector,
    pub embedder: Embedder,
}

pub fn models() -> &'static Models {
    static MODELS: OnceLock<Models> = OnceLock::new();
    MODELS.get_or_init(|| {
        let dir = ModelDir::open(&models_dir()).expect("models set up");
        let env = dir.init_runtime().expect("ONNX Runtime loads");
        let options = DetectorOptions::default();
        let model = dir.model(options.precision.model()).unwrap();
        let detector = Detector::try_new(env, &model.path, options).unwrap();
        let embedder = Embedder::try_new(
            env,
            &dir.model(blurgate::models::ModelKind::SFace).unwrap().path,
            EmbedderOptions::default(),
        )
        .unwrap();
        Models { detector, embedder }
    })
}

/// Per-pixel absolute difference summed over channels.
pub fn diff(a: &RgbImage, b: &RgbImage, x: u32, y: u32) -> u32 {
    let (p, q) = (a.get_pixel(x, y), b.get_pixel(x, y));
    (0..3).map(|c| p[c].abs_diff(q[c]) as u32).sum()
}
