//! Where keys live. A key is a file of 64 hexadecimal digits, owner-only (0600). By default it
//! goes to the per-user key store (`$BLURGATE_KEY_DIR`, else `$XDG_DATA_HOME/blurgate/keys`,
//! else `~/.local/share/blurgate/keys`, folder 0700), never beside what it opens: whoever copies
//! a folder that holds both the lock and its key takes both.

use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use chacha20poly1305::aead::{KeyInit, OsRng};
use chacha20poly1305::XChaCha20Poly1305;

use crate::error::{Error, KeyProblem, Result};

pub const KEY_DIR_ENV: &str = "BLURGATE_KEY_DIR";

/// The key store folder (it need not exist yet).
pub fn key_dir() -> Result<PathBuf> {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = var(KEY_DIR_ENV) {
        return Ok(dir);
    }
    if let Some(data) = var("XDG_DATA_HOME") {
        return Ok(data.join("blurgate").join("keys"));
    }
    var("HOME").map(|home| home.join(".local/share/blurgate/keys")).ok_or(Error::NoKeyStore)
}

/// 256 random bits from the operating system.
pub fn random_key() -> [u8; 32] {
    XChaCha20Poly1305::generate_key(&mut OsRng).into()
}

/// 64 hexadecimal digits, surrounding whitespace ignored.
pub fn parse_hex(text: &str) -> std::result::Result<[u8; 32], KeyProblem> {
    let t = text.trim();
    if t.len() != 64 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(KeyProblem::NotAKey);
    }
    let mut key = [0u8; 32];
    for (i, k) in key.iter_mut().enumerate() {
        *k = u8::from_str_radix(&t[2 * i..2 * i + 2], 16).expect("checked hex");
    }
    Ok(key)
}

/// Where a key was taken from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyFrom {
    File(PathBuf),
    Env(&'static str),
}

impl std::fmt::Display for KeyFrom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyFrom::File(p) => write!(f, "{}", p.display()),
            KeyFrom::Env(name) => f.write_str(name),
        }
    }
}

/// A key from `file` when given, else the hex in the variable `env`, else `store_name` in the
/// key store; with `create`, a key file that is not there yet is made first.
pub fn resolve(
    file: Option<&Path>,
    env: &'static str,
    store_name: &str,
    create: bool,
) -> Result<std::result::Result<[u8; 32], (KeyFrom, KeyProblem)>> {
    let path = match file {
        Some(f) => f.to_path_buf(),
        None if std::env::var_os(env).is_some_and(|v| !v.is_empty()) => {
            let text = std::env::var(env).unwrap_or_default();
            return Ok(parse_hex(&text).map_err(|p| (KeyFrom::Env(env), p)));
        }
        None => key_dir()?.join(store_name),
    };
    if create && !path.exists() {
        let key = random_key();
        match write_new_key(&path, &key) {
            Ok(()) => return Ok(Ok(key)),
            // Another run made it first: use theirs.
            Err(Error::KeyExists { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(read_key(&path).map_err(|p| (KeyFrom::File(path), p)))
}

pub fn read_key(path: &Path) -> std::result::Result<[u8; 32], KeyProblem> {
    parse_hex(&std::fs::read_to_string(path).map_err(KeyProblem::Unreadable)?)
}

/// Writes a new key file, never replacing one: in full under a temporary name, then linked to
/// `path`, so a reader never sees half a key and two writers cannot both win.
pub fn write_new_key(path: &Path, key: &[u8; 32]) -> Result<()> {
    let io = |e| Error::io(path, e);
    let tmp = Temporary::create(path).map_err(io)?;
    let mut file = tmp.file.as_ref().expect("open");
    writeln!(file, "{}", crate::digest::hex(key)).and_then(|()| file.sync_all()).map_err(io)?;
    match std::fs::hard_link(&tmp.path, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::KeyExists { path: path.to_path_buf() }),
        Err(e) => Err(io(e)),
    }
}

/// Replaces `path` with `bytes` through an owner-only temporary file (removed on every way out,
/// a panic included), so the file is never seen half written and never readable by others.
pub fn write_private_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = Temporary::create(path)?;
    let mut file = tmp.file.take().expect("open");
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp.path, path)?;
    tmp.renamed = true;
    Ok(())
}

/// An owner-only file beside `path`, created new and deleted when dropped unless renamed.
struct Temporary {
    path: PathBuf,
    file: Option<std::fs::File>,
    renamed: bool,
}

impl Temporary {
    fn create(path: &Path) -> std::io::Result<Temporary> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir)?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.blurgate-{}-{n}.tmp", std::process::id()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&tmp)?;
        Ok(Temporary { path: tmp, file: Some(file), renamed: false })
    }
}

impl Drop for Temporary {
    fn drop(&mut self) {
        if !self.renamed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Refuses a key at `key` that lies in `folder` or below it; `what` names the folder.
pub fn refuse_inside(key: &Path, folder: &Path, what: &'static str) -> Result<()> {
    let (k, f) = (real(key), real(folder));
    if k.starts_with(&f) {
        return Err(Error::KeyInside { key: key.to_path_buf(), folder: folder.to_path_buf(), what });
    }
    Ok(())
}

/// Refuses a key in the folder of `file` (what the key opens or signs), or below it; `what`
/// names that folder. For a file kept in the home folder (or above it) only that folder itself
/// is checked: everything of the user, the key store included, lies below it, and a home
/// folder is not what one copies to hand a register or a log on.
pub fn refuse_in_folder_of(key: &Path, file: &Path, what: &'static str) -> Result<()> {
    let folder = folder_of(file);
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).map(|h| real(Path::new(&h)));
    if home.is_some_and(|home| home.starts_with(real(folder))) {
        let beside = real(key).parent().is_some_and(|p| p == real(folder));
        if !beside {
            return Ok(());
        }
    }
    refuse_inside(key, folder, what)
}

/// The folder a file lies in (`.` for a bare file name).
pub fn folder_of(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// `path` with links resolved as far as it exists, so `a/../b` or a link cannot hide that one
/// path lies inside another.
fn real(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut normal = PathBuf::new();
    for part in absolute.components() {
        match part {
            Component::ParentDir => {
                normal.pop();
            }
            Component::CurDir => {}
            other => normal.push(other),
        }
    }
    let mut existing = normal.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(found) = existing.canonicalize() {
            return rest.iter().rev().fold(found, |p, name| p.join(name));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name);
                existing = parent;
            }
            _ => return normal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_written_owner_only_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store/k.key");
        let key = random_key();
        write_new_key(&path, &key).unwrap();
        assert_eq!(read_key(&path).unwrap(), key);
        assert!(matches!(write_new_key(&path, &random_key()), Err(Error::KeyExists { .. })));
        assert_eq!(read_key(&path).unwrap(), key);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
            assert_eq!(std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
        }
        let names: Vec<_> =
            std::fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("k.key")], "no temporary file is left");
    }

    #[test]
    fn inside_sees_through_dot_dot_and_paths_not_yet_made() {
        let dir = tempfile::tempdir().unwrap();
        let reg = dir.path().join("reg");
        std::fs::create_dir(&reg).unwrap();
        assert!(refuse_inside(&reg.join("x.key"), &reg, "f").is_err());
        assert!(refuse_inside(&reg.join("new/deeper/x.key"), &reg, "f").is_err());
        assert!(refuse_inside(&dir.path().join("other/../reg/x.key"), &reg, "f").is_err());
        assert!(refuse_inside(&dir.path().join("other/x.key"), &reg, "f").is_ok());
        assert!(refuse_inside(&dir.path().join("regx.key"), &reg, "f").is_ok());
    }

    #[test]
    fn a_file_in_the_home_folder_may_use_the_key_store_below_it() {
        let home = std::env::var_os("HOME").map(PathBuf::from).filter(|h| h.is_dir());
        let Some(home) = home else { return };
        let register = home.join("optouts.reg");
        assert!(refuse_in_folder_of(&home.join(".local/share/blurgate/keys/x.key"), &register, "f").is_ok());
        assert!(refuse_in_folder_of(&home.join("optouts.key"), &register, "f").is_err());
        let dir = tempfile::tempdir().unwrap();
        let register = dir.path().join("optouts.reg");
        assert!(refuse_in_folder_of(&dir.path().join("keys/x.key"), &register, "f").is_err());
    }
}
