//! Untrusted bytes through the register file parser. The first byte picks the mode:
//! even: the bytes are a register file, opened with a fixed key (header checks and AEAD);
//! odd: the rest is the register's plaintext JSON, which is parsed, sealed with the fixed key
//! and opened again (the JSON schema, embedding normalisation, date formats and the seal/open
//! round trip, which the AEAD hides from the first mode).
#![no_main]

use std::sync::OnceLock;

use blurgate::register::{store, Register, RegisterKey};
use libfuzzer_sys::fuzz_target;

fn key() -> &'static RegisterKey {
    static KEY: OnceLock<RegisterKey> = OnceLock::new();
    KEY.get_or_init(|| RegisterKey::from_hex(&"11".repeat(32)).unwrap())
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode & 1 == 0 {
        if let Err(e) = store::open(rest, key()) {
            assert!(!e.to_string().is_empty());
        }
        return;
    }
    let Ok(reg) = serde_json::from_slice::<Register>(rest) else { return };
    let sealed = store::seal(&reg, key());
    let back = store::open(&sealed, key()).expect("a register just sealed opens with its key");
    assert_eq!(back.people.len(), reg.people.len());
    for (a, b) in reg.people.iter().zip(&back.people) {
        assert_eq!(a.id, b.id);
        assert_eq!(a.embeddings.len(), b.embeddings.len());
        assert_eq!(a.enrolled_at, b.enrolled_at);
        assert_eq!(a.expires_at, b.expires_at);
    }
});
