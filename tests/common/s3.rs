//! A real S3-compatible server for the object-storage tests: s3s-fs (built by
//! scripts/setup.sh into .cache/s3s), started once per test binary on a free port of
//! 127.0.0.1, serving a temporary folder in which every sub-folder is a bucket. It dies with
//! the test process.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "blurgate-test-access";
pub const SECRET_KEY: &str = "blurgate-test-secret-key";

pub struct S3 {
    pub endpoint: String,
    /// The server's data folder: `root/BUCKET/KEY` is the object KEY of BUCKET.
    pub root: PathBuf,
}

fn binary() -> PathBuf {
    std::env::var_os("BLURGATE_S3S_FS")
        .map(PathBuf::from)
        .unwrap_or_else(|| super::root().join(".cache/s3s/bin/s3s-fs"))
}

/// The server, or `None` (with a note) when s3s-fs is not built and neither CI nor
/// BLURGATE_REQUIRE_S3 asks for it.
pub fn server() -> Option<&'static S3> {
    static SERVER: OnceLock<Option<S3>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            let bin = binary();
            if !bin.is_file() {
                let required = std::env::var_os("CI").is_some() || std::env::var_os("BLURGATE_REQUIRE_S3").is_some();
                assert!(!required, "{} is missing: run scripts/setup.sh (scripts/s3_server.sh install)", bin.display());
                eprintln!("skipped: {} is missing (scripts/s3_server.sh install)", bin.display());
                return None;
            }
            Some(start(&bin))
        })
        .as_ref()
}

fn start(bin: &Path) -> S3 {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("s3s-data-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = std::fs::File::create(root.with_extension("log")).unwrap();
    let mut command = Command::new(bin);
    command
        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--access-key", ACCESS_KEY])
        .args(["--secret-key", SECRET_KEY])
        .arg(&root)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    // The server must not outlive the tests: the kernel kills it when the thread that
    // started it ends, so a thread that never ends starts it.
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let child = command.spawn();
        let ok = child.is_ok();
        tx.send(child.map(drop).map_err(|e| e.to_string())).unwrap();
        if ok {
            loop {
                std::thread::park();
            }
        }
    });
    rx.recv().unwrap().unwrap_or_else(|e| panic!("{} does not start: {e}", bin.display()));
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "s3s-fs did not listen on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    S3 { endpoint: format!("http://127.0.0.1:{port}"), root }
}

impl S3 {
    /// A new, empty bucket for one test.
    pub fn bucket(&self, name: &str) -> String {
        let dir = self.root.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        name.to_string()
    }

    /// Where the server keeps `key` of `bucket`.
    pub fn object_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.join(bucket).join(key)
    }

    /// Uploads a file as `s3://bucket/key` (through the server's folder: s3s-fs serves what
    /// is there).
    pub fn put_file(&self, bucket: &str, key: &str, file: &Path) {
        let path = self.object_path(bucket, key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::copy(file, path).unwrap();
    }

    /// Every object key of a bucket below `prefix`, sorted.
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let base = self.root.join(bucket);
        let mut keys: Vec<String> = walkdir::WalkDir::new(base.join(prefix))
            .into_iter()
            .flatten()
            .filter(|e| e.file_type().is_file())
            .map(|e| e.path().strip_prefix(&base).unwrap().to_string_lossy().into_owned())
            .collect();
        keys.sort();
        keys
    }

    /// blurgate with this server's credentials and endpoint in the environment.
    pub fn command(&self) -> Command {
        let mut command = super::command();
        command
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_REGION", "us-east-1")
            .env("BLURGATE_ENDPOINT", &self.endpoint);
        command
    }
}
