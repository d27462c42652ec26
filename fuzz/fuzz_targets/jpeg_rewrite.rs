//! Untrusted JPEG bytes through the block-level rewrite: libjpeg-turbo's reduced decode for
//! the preview, the region decode, the coefficient replacement and the re-write, with a face
//! over the middle of the photo. None of it may crash; a rewrite that succeeds must be a
//! complete JPEG of the photo's size.
#![no_main]

use blurgate::detect::FaceBox;
use blurgate::media::jpeg::{preview as jpeg_preview, rewrite as rewrite_jpeg};
use blurgate::media::{decode, DecodeLimits, EncodeOptions};
use blurgate::redact::{Layer, RedactOptions};
use libfuzzer_sys::fuzz_target;

const LIMITS: DecodeLimits = DecodeLimits { max_side: 4096, max_alloc: 64 << 20 };

fuzz_target!(|data: &[u8]| {
    let Some(preview) = jpeg_preview(data, LIMITS, 64) else { return };
    let (w, h) = preview.size();
    let (fw, fh) = (w as f32, h as f32);
    let face = FaceBox { x1: fw * 0.3, y1: fh * 0.2, x2: fw * 0.7, y2: fh * 0.8 };
    match rewrite_jpeg(data, preview, &[Layer { boxes: &[face], options: RedactOptions::default() }], &EncodeOptions::default()) {
        Ok(out) => {
            let photo = decode(&out, LIMITS).expect("the rewritten JPEG decodes");
            assert_eq!(photo.rgb.dimensions(), (w, h), "the rewrite changed the size");
        }
        Err(e) => assert!(!e.to_string().trim().is_empty(), "empty error message"),
    }
});
