//! SHA-256 digests as lowercase hex: what the report, the audit log, the run journal and the
//! model manifest use to name file contents.

use std::io::Read;

use sha2::{Digest, Sha256};

/// Lowercase hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The digest of everything `reader` yields, read in pieces (model files are tens of MB).
pub fn sha256_reader(mut reader: impl Read) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    std::io::copy(&mut reader, &mut hasher)?;
    Ok(hex(&hasher.finalize()))
}
