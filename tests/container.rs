//! The container image and the Kubernetes manifests, run on this machine. deploy/build-image.sh
//! builds the image from the binary under test and the models (no container registry);
//! deploy/k8s/local_job.py starts the pods of deploy/k8s/redact-indexed-job.yaml as podman
//! containers, the way the kubelet would (shard from the completion index, secrets as mounted
//! files, the shared cache and reports volumes, the pod's security context), three of them
//! against the S3 test server; then deploy/k8s/publish-gate-job.yaml merges their reports and
//! checks the published prefix in a fourth. Their outputs must be one local process's, byte for
//! byte, each once. deploy/k8s/validate.py checks the manifests against the Kubernetes API's
//! models, offline.
//!
//! The containers need root and podman (scripts/setup.sh installs podman, buildah, runc and
//! mmdebstrap as root): without them the test says so and is skipped, except that CI or
//! BLURGATE_REQUIRE_CONTAINERS makes a missing podman an error for root.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use blurgate::report::Report;

use crate::common::s3::{self, S3};
use crate::common::*;

/// Fixture photos, one to three per shard of 3 (by the hash of their names).
const PHOTOS: [&str; 4] = ["obama.jpg", "biden.jpg", "t1.jpg", "obama3.jpg"];
const SHARDS: usize = 3;
const JOB: &str = "deploy/k8s/redact-indexed-job.yaml";
const GATE: &str = "deploy/k8s/publish-gate-job.yaml";
const CLAIMS: &str = "deploy/k8s/volumes.yaml";

fn required() -> bool {
    std::env::var_os("CI").is_some() || std::env::var_os("BLURGATE_REQUIRE_CONTAINERS").is_some()
}

/// Whether containers can run here; if not, says why (and fails where they are required).
fn podman_available() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: the container test runs as root only (rootless podman is not set up for it)");
        return false;
    }
    if Command::new("podman").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return true;
    }
    assert!(
        !required(),
        "podman is missing: run scripts/setup.sh as root (apt-get install podman buildah runc mmdebstrap)"
    );
    eprintln!("skipped: podman is missing (scripts/setup.sh installs it as root)");
    false
}

/// `podman run` flags this machine class needs: runc (crun refuses mixed cgroup v1/v2) and
/// explicit limits.
fn engine_flags() -> Vec<&'static str> {
    let mut flags = vec!["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"];
    if Command::new("runc").arg("--version").output().is_ok_and(|o| o.status.success()) {
        flags.extend(["--runtime", "runc"]);
    }
    flags
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A Python script of deploy/k8s with the pinned Kubernetes client (deploy/k8s/python.sh).
fn k8s_python(args: &[&str]) -> Output {
    Command::new("bash").arg(root().join("deploy/k8s/python.sh")).args(args).current_dir(root()).output().unwrap()
}

#[test]
fn the_manifests_are_valid_kubernetes_and_the_check_finds_mistakes() {
    let o = k8s_python(&["deploy/k8s/validate.py", JOB, GATE, CLAIMS]);
    if !o.status.success() && text(&o).contains("could not install") && !required() {
        eprintln!("skipped: the Kubernetes client could not be installed from PyPI: {}", text(&o));
        return;
    }
    assert!(o.status.success(), "{}", text(&o));
    eprintln!("{}", String::from_utf8_lossy(&o.stdout).trim());

    // The check is not a formality: each of these mistakes is found and named.
    let tmp = tempfile::tempdir().unwrap();
    let manifest = std::fs::read_to_string(root().join(JOB)).unwrap();
    let key = "0123456789abcdef".repeat(4);
    let key_env = format!("- name: AWS_REGION\n              value: eu-central-1\n            - name: BLURGATE_MANIFEST_KEY\n              value: \"{key}\"");
    let mistakes: [(&str, &str, &str, &str); 7] = [
        ("misspelt", "completionMode: Indexed", "completionmode: Indexed", "unknown field of V1JobSpec"),
        ("wrong-type", "completions: 8", "completions: \"8\"", "expected int"),
        ("shard", "\"$(JOB_COMPLETION_INDEX)/8\"", "\"$(JOB_COMPLETION_INDEX)/4\"", "BLURGATE_SHARD"),
        ("root", "runAsUser: 65532", "runAsUser: 0", "non-root user"),
        ("writable-root", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false", "readOnlyRootFilesystem"),
        (
            "key-outside-secret",
            "{ name: register-key, mountPath: /secrets/register-key, readOnly: true }",
            "{ name: register-key, mountPath: /keys, readOnly: true }",
            "/secrets/register-key/register.key lies in no secret volume",
        ),
        ("key-inline", "- name: AWS_REGION\n              value: eu-central-1", &key_env, "looks like a key"),
    ];
    for (name, from, to, expected) in mistakes {
        assert!(manifest.contains(from), "{JOB} no longer holds {from:?}: update this test");
        let file = tmp.path().join(format!("{name}.yaml"));
        std::fs::write(&file, manifest.replacen(from, to, 1)).unwrap();
        let o = k8s_python(&["deploy/k8s/validate.py", s(&file)]);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", text(&o));
        assert!(text(&o).contains(expected), "{name}: expected {expected:?} in {}", text(&o));
    }
}

fn sha256(path: &Path) -> String {
    blurgate::digest::sha256_hex(&std::fs::read(path).unwrap())
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// The secrets of the manifests, a folder per secret and a file per key: the register of one
/// opt-out and its key, the manifest key, the S3 test server's credentials.
fn make_secrets(dir: &Path) -> (PathBuf, PathBuf) {
    let register = dir.join("blurgate-register/optouts.reg");
    let register_key = dir.join("blurgate-register-key/register.key");
    std::fs::create_dir_all(register.parent().unwrap()).unwrap();
    std::fs::create_dir_all(register_key.parent().unwrap()).unwrap();
    let obama2 = fixture("photos/obama2.jpg");
    run_ok(&["enroll", "--register", s(&register), "--key-file", s(&register_key), "--id", "P-1", s(&obama2)]);
    let mut random = [0u8; 32];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").unwrap(), &mut random).unwrap();
    write(&dir.join("blurgate-manifest-key/manifest.key"), format!("{}\n", blurgate::digest::hex(&random)).as_bytes());
    write(&dir.join("blurgate-s3-credentials/AWS_ACCESS_KEY_ID"), s3::ACCESS_KEY.as_bytes());
    write(&dir.join("blurgate-s3-credentials/AWS_SECRET_ACCESS_KEY"), s3::SECRET_KEY.as_bytes());
    (register, register_key)
}

/// Runs a Job manifest with deploy/k8s/local_job.py; its output, and the seconds it took.
fn run_job(s3: &S3, manifest: &str, image: &str, secrets: &Path, volumes: &Path, extra: &[&str]) -> (Output, f64) {
    let endpoint = format!("BLURGATE_ENDPOINT={}", s3.endpoint);
    let mut args = vec!["deploy/k8s/local_job.py", manifest, "--image", image, "--secrets", s(secrets)];
    // The test server listens on 127.0.0.1 of this machine: the pods share its network.
    args.extend(["--volumes", s(volumes), "--env", &endpoint, "--engine-arg=--network=host", "--timeout", "600"]);
    args.extend_from_slice(extra);
    let started = Instant::now();
    let o = k8s_python(&args);
    (o, started.elapsed().as_secs_f64())
}

/// Object keys below `prefix` of a bucket, each with its sha256, manifests apart.
fn outputs(s3: &S3, bucket: &str, prefix: &str) -> (BTreeMap<String, String>, BTreeSet<String>) {
    let (mut files, mut manifests) = (BTreeMap::new(), BTreeSet::new());
    for key in s3.keys(bucket, prefix) {
        let rel = key[prefix.len() + 1..].to_string();
        if rel.starts_with(".blurgate-manifest") {
            manifests.insert(rel);
        } else {
            files.insert(rel, sha256(&s3.object_path(bucket, &key)));
        }
    }
    (files, manifests)
}

#[test]
fn the_indexed_job_in_three_containers_writes_what_one_process_writes_and_passes_the_gate() {
    if !podman_available() {
        return;
    }
    let Some(s3) = s3::server() else { return };
    let tmp = tempfile::tempdir().unwrap();

    // The image, from the binary under test.
    let started = Instant::now();
    let o = Command::new("bash")
        .arg(root().join("deploy/build-image.sh"))
        .current_dir(root())
        .env("BLURGATE_IMAGE", "localhost/blurgate:test")
        .env("BLURGATE_BINARY", env!("CARGO_BIN_EXE_blurgate"))
        .env("BLURGATE_MODELS", models_dir())
        .output()
        .unwrap();
    let build_seconds = started.elapsed().as_secs_f64();
    assert!(o.status.success(), "deploy/build-image.sh failed: {}", text(&o));
    let image = String::from_utf8(o.stdout).unwrap().trim().to_string();
    assert_eq!(image, "localhost/blurgate:test", "build-image.sh prints the image name alone");

    // It runs as a non-root user and holds no key, no register and no secret.
    let o = Command::new("podman")
        .args(["image", "inspect", "--format", "{{.Config.User}}|{{.Size}}|{{.Config.Env}}", &image])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let inspect = String::from_utf8(o.stdout).unwrap();
    let [user, size, env] = inspect.trim().splitn(3, '|').collect::<Vec<_>>()[..] else { panic!("{inspect}") };
    assert_eq!(user, "65532:65532", "the image's user");
    let size_mb = size.parse::<u64>().unwrap() / 1_000_000;
    for secret in ["_KEY=", "SECRET", "TOKEN", "PASSWORD"] {
        assert!(!env.contains(secret), "the image's environment holds {secret}: {env}");
    }
    let in_image = |user: &str, script: &str| {
        let mut c = Command::new("podman");
        c.args(["run", "--rm", "--user", user]).args(engine_flags()).args(["--entrypoint", "/bin/sh", &image, "-c"]);
        let o = c.arg(script).output().unwrap();
        assert!(o.status.success(), "{script}: {}", text(&o));
        String::from_utf8(o.stdout).unwrap()
    };
    assert_eq!(in_image(user, "id -u").trim(), "65532");
    // Searched as root, so that nothing is hidden by permissions.
    let found = in_image("0", "find / -xdev -name '*.key' -o -name '*.reg*' -o -name '.blurgate*' -o -path '*/keys/*'");
    assert_eq!(found, "", "the image holds no key and no register");

    // The bucket, the secrets, and one local process as the reference.
    let (raw, publish, local) = (s3.bucket("events-raw"), s3.bucket("events-publish"), s3.bucket("events-local"));
    for name in PHOTOS {
        s3.put_file(&raw, &format!("2026/{name}"), &fixture(&format!("photos/{name}")));
    }
    let secrets = tmp.path().join("secrets");
    let (register, register_key) = make_secrets(&secrets);
    let local_report = tmp.path().join("local.json");
    let started = Instant::now();
    let o = s3
        .command()
        .env("BLURGATE_KEY_DIR", secrets.join("blurgate-manifest-key"))
        .args(["-q", "redact", "s3://events-raw/2026/", "--out", "s3://events-local/2026/"])
        .args(["--register", s(&register), "--key-file", s(&register_key), "--report", s(&local_report)])
        .output()
        .unwrap();
    let local_seconds = started.elapsed().as_secs_f64();
    assert!(o.status.success(), "{}", stderr(&o));
    let local_report = read_report(&local_report);
    assert!(local_report.summary.redacted >= 1, "the opt-out is redacted somewhere: {:?}", local_report.summary);

    // The Indexed Job: three pods at once.
    let volumes = tmp.path().join("volumes");
    let (o, job_seconds) = run_job(s3, JOB, &image, &secrets, &volumes, &["--completions", "3"]);
    assert!(o.status.success(), "the Indexed Job failed: {}", text(&o));
    eprintln!("{}", String::from_utf8_lossy(&o.stderr));

    // The union of the shards' outputs is the local process's, byte for byte, each once.
    let (three, manifests) = outputs(s3, &publish, "2026");
    let (one, _) = outputs(s3, &local, "2026");
    assert_eq!(one.len(), PHOTOS.len());
    assert_eq!(three, one, "the shards' outputs (name → sha256) are the local process's");
    let expected: BTreeSet<String> =
        (0..SHARDS).map(|i| format!(".blurgate-manifest.shard-{i}-of-{SHARDS}.json")).collect();
    assert_eq!(manifests, expected, "one sealed manifest per shard");
    let reports: Vec<Report> =
        (0..SHARDS).map(|i| read_report(&volumes.join(format!("blurgate-reports/shard-{i}.json")))).collect();
    let mut seen = BTreeMap::new();
    for (i, r) in reports.iter().enumerate() {
        assert!(!r.files.is_empty(), "shard {i} had work: {PHOTOS:?} spread over {SHARDS}");
        for f in &r.files {
            assert!(seen.insert(f.input.clone(), f.status).is_none(), "{} in two shards", f.input);
        }
    }
    let local_status: BTreeMap<_, _> = local_report.files.iter().map(|f| (f.input.clone(), f.status)).collect();
    assert_eq!(seen, local_status, "each file in one shard, with the local process's verdict");

    // The gate: `report merge` in an init container, `check` of the published prefix in a
    // fourth container.
    let (o, gate_seconds) = run_job(s3, GATE, &image, &secrets, &volumes, &[]);
    assert!(o.status.success(), "the gate Job failed: {}", text(&o));
    eprintln!("{}", String::from_utf8_lossy(&o.stderr));
    let merged = read_report(&volumes.join("blurgate-reports/report.json"));
    assert_eq!(
        (merged.summary.files, merged.summary.redacted, merged.summary.failed),
        (PHOTOS.len(), local_report.summary.redacted, 0),
        "{:?}",
        merged.summary
    );
    let check = read_report(&volumes.join("blurgate-reports/check.json"));
    assert_eq!(check.summary.violations, 0, "{:?}", check.summary);
    let vouched = check.files.iter().filter(|f| f.vouched).count();
    assert_eq!(vouched, PHOTOS.len(), "every published photo vouched for by a shard's manifest");

    eprintln!(
        "container test: image {image} built in {build_seconds:.1} s, {size_mb} MB; one local process {local_seconds:.1} s; \
         {SHARDS} shards in containers {job_seconds:.1} s (wall); gate (merge, check) {gate_seconds:.1} s"
    );
}
