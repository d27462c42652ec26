//! The fuzz targets' checks (fuzz/fuzz_targets/) replayed on fixed inputs, so what fuzzing
//! found stays fixed without cargo-fuzz or a nightly toolchain.
//!
//! Inputs: `tests/fuzz_inputs/TARGET/*` (minimised findings of `scripts/fuzz.sh`) and the
//! fuzz seeds `fuzz/seeds/TARGET/*` (small valid files of every format; they also prove the
//! harness reaches the code past the parsers). Every input also goes through cheap derived
//! cases: truncations and single-byte corruptions.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use blurgate::detect::FaceBox;
use blurgate::media::jpeg::markers::is_complete as jpeg_is_complete;
use blurgate::media::jpeg::{preview as jpeg_preview, rewrite as rewrite_jpeg};
use blurgate::media::{decode, DecodeLimits, EncodeOptions};
use blurgate::redact::{Layer, RedactOptions};
use blurgate::register::{store, Register, RegisterKey};

const LIMITS: DecodeLimits = DecodeLimits { max_side: 4096, max_alloc: 64 << 20 };

fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in [root.join("tests/fuzz_inputs").join(target), root.join("fuzz/seeds").join(target)] {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries {
            let path = e.unwrap().path();
            if path.is_file() {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn seeds(target: &str) -> Vec<PathBuf> {
    inputs(target).into_iter().filter(|p| p.components().any(|c| c.as_os_str() == "seeds")).collect()
}

/// Cut-offs and single-byte corruptions of `data`, `data` itself first.
fn variants(data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![data.to_vec()];
    let step = (data.len() / 24).max(1);
    for cut in (0..data.len()).step_by(step) {
        out.push(data[..cut].to_vec());
    }
    for (i, flip) in (0..data.len()).step_by(step).zip([0xFF, 0x80, 0x01, 0x7F].into_iter().cycle()) {
        let mut bad = data.to_vec();
        bad[i] ^= flip;
        out.push(bad);
    }
    out
}

/// The decode_preprocess target's body; Ok(true) when the input decoded.
fn decode_preprocess(data: &[u8]) -> Result<bool, String> {
    let complete = jpeg_is_complete(data);
    match decode(data, LIMITS) {
        Ok(photo) => {
            let (w, h) = photo.rgb.dimensions();
            if w > LIMITS.max_side || h > LIMITS.max_side {
                return Err(format!("decoded {w}x{h} past the limits"));
            }
            if photo.alpha.as_ref().is_some_and(|a| a.dimensions() != (w, h)) {
                return Err("alpha plane and RGB differ in size".into());
            }
            if photo.format == blurgate::media::Format::Image(image::ImageFormat::Jpeg) && !complete {
                return Err("a JPEG without end-of-image marker decoded".into());
            }
            let t = blurgate::detect::to_chw(&photo.rgb, 0, 0, w, h);
            let s = t.shape();
            let padded = |n: usize, side: u32| n >= side as usize && n.is_multiple_of(32) && n < side as usize + 32;
            if s[..2] != [1, 3] || !padded(s[2], h) || !padded(s[3], w) {
                return Err(format!("tensor of shape {s:?} for a {w}x{h} photo"));
            }
            Ok(true)
        }
        Err(e) if e.to_string().trim().is_empty() => Err("decode failed with an empty message".into()),
        Err(_) => Ok(false),
    }
}

/// The jpeg_rewrite target's body: a JPEG that gets a preview is rewritten block by block with
/// a face over its middle; a rewrite that succeeds is a complete JPEG of the same size.
/// Ok(true) when it was rewritten.
fn jpeg_rewrite(data: &[u8]) -> Result<bool, String> {
    let Some(preview) = jpeg_preview(data, LIMITS, 64) else { return Ok(false) };
    let (w, h) = preview.size();
    let (fw, fh) = (w as f32, h as f32);
    let face = FaceBox { x1: fw * 0.3, y1: fh * 0.2, x2: fw * 0.7, y2: fh * 0.8 };
    match rewrite_jpeg(
        data,
        preview,
        &[Layer { boxes: &[face], options: RedactOptions::default() }],
        &EncodeOptions::default(),
    ) {
        Ok(out) => {
            let photo = decode(&out, LIMITS).map_err(|e| format!("the rewritten JPEG does not decode: {e}"))?;
            if photo.rgb.dimensions() != (w, h) {
                return Err(format!("rewritten as {:?}, was {w}x{h}", photo.rgb.dimensions()));
            }
            Ok(true)
        }
        Err(e) if e.to_string().trim().is_empty() => Err("rewrite failed with an empty message".into()),
        Err(_) => Ok(false),
    }
}

fn key() -> RegisterKey {
    RegisterKey::from_hex(&"11".repeat(32)).unwrap()
}

/// The register_open target's body; Ok(Some(people)) when a register was read.
fn register_open(data: &[u8], key: &RegisterKey) -> Result<Option<usize>, String> {
    let Some((&mode, rest)) = data.split_first() else { return Ok(None) };
    if mode & 1 == 0 {
        return match store::open(rest, key) {
            Ok(reg) => Ok(Some(reg.people.len())),
            Err(e) if e.to_string().trim().is_empty() => Err("open failed with an empty message".into()),
            Err(_) => Ok(None),
        };
    }
    let Ok(reg) = serde_json::from_slice::<Register>(rest) else { return Ok(None) };
    let sealed = store::seal(&reg, key);
    let back = store::open(&sealed, key).map_err(|e| format!("a register just sealed does not open: {e}"))?;
    if back.people.len() != reg.people.len() {
        return Err(format!("{} people sealed, {} opened", reg.people.len(), back.people.len()));
    }
    for (a, b) in reg.people.iter().zip(&back.people) {
        if a.id != b.id || a.embeddings.len() != b.embeddings.len() {
            return Err(format!("person `{}` changed in the round trip", a.id));
        }
        if a.enrolled_at != b.enrolled_at || a.expires_at != b.expires_at {
            return Err(format!("dates of `{}` changed in the round trip", a.id));
        }
    }
    Ok(Some(back.people.len()))
}

/// Runs `check` on every input and its variants; panics and failed checks are collected and
/// reported together with the file they came from.
fn replay<T>(target: &str, mut check: impl FnMut(&[u8]) -> Result<T, String>) -> usize {
    let files = inputs(target);
    assert!(!files.is_empty(), "no inputs for {target}");
    let mut failures = Vec::new();
    let mut cases = 0;
    for path in &files {
        let data = std::fs::read(path).unwrap();
        for (n, v) in variants(&data).iter().enumerate() {
            cases += 1;
            let outcome = catch_unwind(AssertUnwindSafe(|| check(v)));
            let what = if n == 0 { String::from("as is") } else { format!("variant {n}") };
            match outcome {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => failures.push(format!("{} ({what}): {e}", path.display())),
                Err(_) => failures.push(format!("{} ({what}): panicked", path.display())),
            }
        }
    }
    assert!(failures.is_empty(), "{} of {cases} {target} cases failed:\n{}", failures.len(), failures.join("\n"));
    cases
}

#[test]
fn jpeg_rewrite_of_decode_inputs_never_panics_and_stays_decodable() {
    let mut rewritten = 0;
    let mut check = |data: &[u8]| {
        let done = jpeg_rewrite(data)?;
        rewritten += usize::from(done);
        Ok(done)
    };
    let cases = replay("decode_preprocess", &mut check) + replay("jpeg_rewrite", &mut check);
    assert!(cases > 100);
    assert!(rewritten >= 5, "only {rewritten} inputs reached the rewrite");
}

#[test]
fn decode_preprocess_inputs_never_panic() {
    let cases = replay("decode_preprocess", decode_preprocess);
    assert!(cases > 100);
}

#[test]
fn register_open_inputs_never_panic() {
    let key = key();
    let cases = replay("register_open", |d| register_open(d, &key));
    assert!(cases > 10);
}

/// The seeds are valid files: if they stopped decoding, fuzzing would no longer reach the
/// orientation, alpha and tensor code behind the decoders.
#[test]
fn decode_seeds_reach_the_tensor() {
    let mut refused = Vec::new();
    let files = seeds("decode_preprocess");
    assert!(files.len() >= 30, "{} seeds", files.len());
    for path in &files {
        let data = std::fs::read(path).unwrap();
        if !decode_preprocess(&data).unwrap() {
            refused.push(format!("{}: {}", path.display(), decode(&data, LIMITS).err().unwrap()));
        }
    }
    // A layout the image crate does not convert (32-bit float grey TIFF): a clear error is all
    // that is asked of it.
    let unsupported = ["float.tif"];
    refused.retain(|r| !unsupported.iter().any(|u| r.contains(&format!("/{u}:"))));
    assert!(refused.is_empty(), "valid seeds refused:\n{}", refused.join("\n"));
}

#[test]
fn register_seeds_open_with_the_fuzz_key() {
    let key = key();
    let mut opened = 0;
    for path in seeds("register_open") {
        let data = std::fs::read(&path).unwrap();
        let people = register_open(&data, &key).unwrap();
        assert!(people.is_some(), "{} did not open", path.display());
        opened += 1;
    }
    assert!(opened >= 4);
}
