//! The register file: a small header, then the register as JSON sealed with
//! XChaCha20-Poly1305. The header is authenticated too, so any changed byte is refused.
//!
//! ```text
//! offset  size  field
//! 0       8     magic "BLURGREG"
//! 8       2     format version, big-endian (1)
//! 10      2     cipher, big-endian (1 = XChaCha20-Poly1305, 256-bit key)
//! 12      24    nonce (random, new on every write)
//! 36      ..    ciphertext of the JSON register, with its 16-byte tag
//! ```

use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use super::Register;
use crate::error::{Error, KeyProblem, RegisterProblem, Result};

const MAGIC: &[u8; 8] = b"BLURGREG";
const FORMAT_VERSION: u16 = 1;
const CIPHER_XCHACHA20POLY1305: u16 = 1;
const HEADER_LEN: usize = 8 + 2 + 2 + 24;
pub const KEY_ENV: &str = "BLURGATE_REGISTER_KEY";

/// A 256-bit register key. Kept out of logs.
#[derive(Clone)]
pub struct RegisterKey([u8; 32]);

impl std::fmt::Debug for RegisterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RegisterKey(<hidden>)")
    }
}

impl RegisterKey {
    pub fn generate() -> Self {
        RegisterKey(XChaCha20Poly1305::generate_key(&mut OsRng).into())
    }

    /// 64 hexadecimal digits, surrounding whitespace ignored.
    pub fn from_hex(text: &str) -> std::result::Result<Self, KeyProblem> {
        let t = text.trim();
        if t.len() != 64 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(KeyProblem::NotAKey);
        }
        let mut key = [0u8; 32];
        for (i, k) in key.iter_mut().enumerate() {
            *k = u8::from_str_radix(&t[2 * i..2 * i + 2], 16).expect("checked hex");
        }
        Ok(RegisterKey(key))
    }

    pub fn to_hex(&self) -> String {
        crate::digest::hex(&self.0)
    }
}

/// Where a register's key comes from: `--key-file`, else `BLURGATE_REGISTER_KEY`, else the
/// file `<register>.key` beside it.
#[derive(Debug, Clone)]
pub enum KeySource {
    File(PathBuf),
    Env,
}

impl KeySource {
    pub fn resolve(key_file: Option<&Path>, register: &Path) -> KeySource {
        match key_file {
            Some(p) => KeySource::File(p.to_path_buf()),
            None if std::env::var_os(KEY_ENV).is_some_and(|v| !v.is_empty()) => KeySource::Env,
            None => KeySource::File(default_key_path(register)),
        }
    }

    pub fn load(&self) -> Result<RegisterKey> {
        match self {
            KeySource::Env => {
                let v = std::env::var(KEY_ENV).unwrap_or_default();
                RegisterKey::from_hex(&v).map_err(|problem| Error::RegisterKey { from: KEY_ENV.into(), problem })
            }
            KeySource::File(p) => {
                let from = p.display().to_string();
                let text = std::fs::read_to_string(p)
                    .map_err(|e| Error::RegisterKey { from: from.clone(), problem: KeyProblem::Unreadable(e) })?;
                RegisterKey::from_hex(&text).map_err(|problem| Error::RegisterKey { from, problem })
            }
        }
    }

    /// Stores a new key (file sources only; owner-only permissions, never overwriting).
    pub fn store_new(&self, key: &RegisterKey) -> Result<Option<PathBuf>> {
        let KeySource::File(p) = self else { return Ok(None) };
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options.open(p).map_err(|e| Error::io(p, e))?;
        writeln!(f, "{}", key.to_hex()).and_then(|()| f.sync_all()).map_err(|e| Error::io(p, e))?;
        Ok(Some(p.clone()))
    }
}

pub fn default_key_path(register: &Path) -> PathBuf {
    let mut name = register.file_name().unwrap_or_default().to_os_string();
    name.push(".key");
    register.with_file_name(name)
}

pub fn seal(register: &Register, key: &RegisterKey) -> Vec<u8> {
    let plain = serde_json::to_vec(register).expect("register serialises");
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let mut out = Vec::with_capacity(HEADER_LEN + plain.len() + 16);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    out.extend_from_slice(&CIPHER_XCHACHA20POLY1305.to_be_bytes());
    out.extend_from_slice(&nonce);
    let cipher = XChaCha20Poly1305::new((&key.0).into());
    let sealed = cipher.encrypt(&nonce, Payload { msg: &plain, aad: &out }).expect("encryption of an in-memory buffer");
    out.extend_from_slice(&sealed);
    out
}

pub fn open(bytes: &[u8], key: &RegisterKey) -> std::result::Result<Register, RegisterProblem> {
    if bytes.len() < HEADER_LEN + 16 || &bytes[..8] != MAGIC {
        return Err(RegisterProblem::NotARegister);
    }
    let version = u16::from_be_bytes([bytes[8], bytes[9]]);
    let cipher_id = u16::from_be_bytes([bytes[10], bytes[11]]);
    if version != FORMAT_VERSION || cipher_id != CIPHER_XCHACHA20POLY1305 {
        return Err(RegisterProblem::UnsupportedFormat { version, cipher: cipher_id });
    }
    let (header, sealed) = bytes.split_at(HEADER_LEN);
    let nonce = XNonce::from_slice(&header[12..]);
    let cipher = XChaCha20Poly1305::new((&key.0).into());
    let plain =
        cipher.decrypt(nonce, Payload { msg: sealed, aad: header }).map_err(|_| RegisterProblem::WrongKeyOrAltered)?;
    serde_json::from_slice(&plain).map_err(RegisterProblem::InvalidContent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_flipped_byte_is_refused() {
        let key = RegisterKey::generate();
        let reg = Register::default();
        let sealed = seal(&reg, &key);
        assert!(open(&sealed, &key).is_ok());
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(open(&bad, &key).is_err(), "flipped byte {i} accepted");
        }
        assert!(matches!(open(&sealed, &RegisterKey::generate()), Err(RegisterProblem::WrongKeyOrAltered)));
        assert!(open(&sealed[..sealed.len() - 1], &key).is_err());
    }

    #[test]
    fn keys_parse_from_hex_only() {
        let k = RegisterKey::generate();
        assert_eq!(RegisterKey::from_hex(&format!(" {}\n", k.to_hex())).unwrap().0, k.0);
        assert!(RegisterKey::from_hex("abc").is_err());
        assert!(RegisterKey::from_hex(&"zz".repeat(32)).is_err());
        assert_eq!(format!("{k:?}"), "RegisterKey(<hidden>)");
    }
}
