//! The register file: a small header, then the register as JSON sealed with
//! XChaCha20-Poly1305. The header is authenticated too, so any changed byte is refused.
//!
//! ```text
//! offset  size  field
//! 0       8     magic "BLURGREG"
//! 8       2     format version, big-endian (2; version 1 had no key id and is still read)
//! 10      2     cipher, big-endian (1 = XChaCha20-Poly1305, 256-bit key)
//! 12      16    key id: the first 16 bytes of SHA-256("blurgate register key id" || key)
//! 28      24    nonce (random, new on every write)
//! 52      ..    ciphertext of the JSON register, with its 16-byte tag
//! ```
//!
//! The key id names the key's file in the key store ([`super::keystore`]), so a register finds
//! its key without carrying it; it is a one-way digest of the key and gives nothing away.

use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

use super::keystore;
use super::Register;
use crate::error::{Error, KeyProblem, RegisterProblem, Result};

const MAGIC: &[u8; 8] = b"BLURGREG";
const FORMAT_VERSION: u16 = 2;
const CIPHER_XCHACHA20POLY1305: u16 = 1;
const V1_HEADER_LEN: usize = 8 + 2 + 2 + 24;
const HEADER_LEN: usize = 8 + 2 + 2 + 16 + 24;
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
        RegisterKey(keystore::random_key())
    }

    /// 64 hexadecimal digits, surrounding whitespace ignored.
    pub fn from_hex(text: &str) -> std::result::Result<Self, KeyProblem> {
        keystore::parse_hex(text).map(RegisterKey)
    }

    pub fn to_hex(&self) -> String {
        crate::digest::hex(&self.0)
    }

    pub(super) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The id the header carries and the key store files the key under.
    pub fn id(&self) -> KeyId {
        let digest = Sha256::new().chain_update(b"blurgate register key id").chain_update(self.0).finalize();
        KeyId(digest[..16].try_into().expect("16 bytes"))
    }
}

/// A register key's id (32 hexadecimal digits when shown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyId([u8; 16]);

impl KeyId {
    /// The key's file name in the key store.
    pub fn file_name(&self) -> String {
        format!("{}.key", crate::digest::hex(&self.0))
    }
}

/// The key id in a register file's header; `None` for a version 1 file or no register at all.
pub fn key_id(bytes: &[u8]) -> Option<KeyId> {
    let version = bytes.get(8..10).map(|v| u16::from_be_bytes([v[0], v[1]]));
    if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC || version != Some(FORMAT_VERSION) {
        return None;
    }
    Some(KeyId(bytes[12..28].try_into().expect("16 bytes")))
}

/// Where a register's key comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// `--key-file`.
    File(PathBuf),
    /// `BLURGATE_REGISTER_KEY`.
    Env,
    /// The key store's file for the key id in the register's header.
    Store(PathBuf),
    /// `<register>.key` beside a register made before keys were kept apart: still read, with a
    /// warning, until `register move-key` moves it to the key store.
    Beside(PathBuf),
}

impl KeySource {
    /// The key's file, unless it comes from the environment.
    pub fn path(&self) -> Option<&Path> {
        match self {
            KeySource::File(p) | KeySource::Store(p) | KeySource::Beside(p) => Some(p),
            KeySource::Env => None,
        }
    }

    pub fn load(&self) -> Result<RegisterKey> {
        match self.path() {
            None => {
                let v = std::env::var(KEY_ENV).unwrap_or_default();
                RegisterKey::from_hex(&v).map_err(|problem| Error::RegisterKey { from: KEY_ENV.into(), problem })
            }
            Some(p) => keystore::read_key(p)
                .map(RegisterKey)
                .map_err(|problem| Error::RegisterKey { from: p.display().to_string(), problem }),
        }
    }
}

/// Where a register made before keys were kept apart has its key.
pub fn beside_key_path(register: &Path) -> PathBuf {
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
    out.extend_from_slice(&key.id().0);
    out.extend_from_slice(&nonce);
    let cipher = XChaCha20Poly1305::new((&key.0).into());
    let sealed = cipher.encrypt(&nonce, Payload { msg: &plain, aad: &out }).expect("encryption of an in-memory buffer");
    out.extend_from_slice(&sealed);
    out
}

pub fn open(bytes: &[u8], key: &RegisterKey) -> std::result::Result<Register, RegisterProblem> {
    if bytes.len() < V1_HEADER_LEN + 16 || &bytes[..8] != MAGIC {
        return Err(RegisterProblem::NotARegister);
    }
    let version = u16::from_be_bytes([bytes[8], bytes[9]]);
    let cipher_id = u16::from_be_bytes([bytes[10], bytes[11]]);
    let header_len = match (version, cipher_id) {
        (1, CIPHER_XCHACHA20POLY1305) => V1_HEADER_LEN,
        (FORMAT_VERSION, CIPHER_XCHACHA20POLY1305) => HEADER_LEN,
        _ => return Err(RegisterProblem::UnsupportedFormat { version, cipher: cipher_id }),
    };
    if bytes.len() < header_len + 16 {
        return Err(RegisterProblem::NotARegister);
    }
    if key_id(bytes).is_some_and(|id| id != key.id()) {
        return Err(RegisterProblem::WrongKeyOrAltered);
    }
    let (header, sealed) = bytes.split_at(header_len);
    let nonce = XNonce::from_slice(&header[header_len - 24..]);
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
    fn version_1_files_still_open_and_carry_no_key_id() {
        let key = RegisterKey::generate();
        let plain = serde_json::to_vec(&Register::default()).unwrap();
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let mut v1 = Vec::new();
        v1.extend_from_slice(MAGIC);
        v1.extend_from_slice(&1u16.to_be_bytes());
        v1.extend_from_slice(&CIPHER_XCHACHA20POLY1305.to_be_bytes());
        v1.extend_from_slice(&nonce);
        let cipher = XChaCha20Poly1305::new((&key.0).into());
        let sealed = cipher.encrypt(&nonce, Payload { msg: &plain, aad: &v1 }).unwrap();
        v1.extend_from_slice(&sealed);
        assert!(open(&v1, &key).is_ok());
        assert!(key_id(&v1).is_none());
        assert!(matches!(open(&v1, &RegisterKey::generate()), Err(RegisterProblem::WrongKeyOrAltered)));
        assert_eq!(key_id(&seal(&Register::default(), &key)), Some(key.id()));
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
