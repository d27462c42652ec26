//! Untrusted bytes through the photo path up to the detector's input: format sniffing, the
//! truncated-JPEG check, decoding under limits, orientation, alpha split, RGB conversion and
//! the zero-padded CHW tensor. None of it may panic, abort or run out of memory.
#![no_main]

use blurgate::media_in::{decode, jpeg_is_complete, DecodeLimits};
use libfuzzer_sys::fuzz_target;

const LIMITS: DecodeLimits = DecodeLimits { max_side: 4096, max_alloc: 64 << 20 };

fuzz_target!(|data: &[u8]| {
    let complete = jpeg_is_complete(data);
    match decode(data, LIMITS) {
        Ok(photo) => {
            let (w, h) = photo.rgb.dimensions();
            assert!(w <= LIMITS.max_side && h <= LIMITS.max_side, "decoded {w}x{h} past the limits");
            if let Some(alpha) = &photo.alpha {
                assert_eq!(alpha.dimensions(), (w, h), "alpha plane and RGB differ in size");
            }
            if photo.format == image::ImageFormat::Jpeg {
                assert!(complete, "a JPEG without end-of-image marker decoded");
            }
            let t = blurgate::detect::to_chw(&photo.rgb, 0, 0, w, h);
            let shape = t.shape();
            assert_eq!(shape[..2], [1, 3]);
            assert!(shape[2] >= h as usize && shape[2] % 32 == 0 && shape[3] >= w as usize && shape[3] % 32 == 0);
        }
        Err(e) => assert!(!e.is_empty(), "empty error message"),
    }
});
