//! Untrusted bytes through the photo path up to the detector's input: format sniffing, the
//! truncated-JPEG check, decoding under limits, orientation, alpha split, RGB conversion and
//! the zero-padded CHW tensor. None of it may panic, abort or run out of memory.
#![no_main]

use blurgate::media::jpeg::markers::is_complete as jpeg_is_complete;
use blurgate::media::{decode, DecodeLimits};
use libfuzzer_sys::{fuzz_mutator, fuzz_target, fuzzer_mutate};

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
            if photo.format == blurgate::media::Format::Image(image::ImageFormat::Jpeg) {
                assert!(complete, "a JPEG without end-of-image marker decoded");
            }
            let t = blurgate::detect::to_chw(&photo.rgb, 0, 0, w, h);
            let shape = t.shape();
            assert_eq!(shape[..2], [1, 3]);
            assert!(shape[2] >= h as usize && shape[2] % 32 == 0 && shape[3] >= w as usize && shape[3] % 32 == 0);
        }
        Err(e) => assert!(!e.to_string().is_empty(), "empty error message"),
    }
});

// libFuzzer's own mutations, then (seven times in eight) every PNG chunk's CRC made right
// again: without it nearly every mutated PNG stops at the first CRC check and the chunk
// parsers and filters behind it are never reached.
fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    let size = fuzzer_mutate(data, size, max_size);
    if seed % 8 != 0 {
        fix_png_crcs(&mut data[..size]);
    }
    size
});

fn fix_png_crcs(png: &mut [u8]) {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if !png.starts_with(SIGNATURE) {
        return;
    }
    let mut at = SIGNATURE.len();
    while let Some(len) = png.get(at..at + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize) {
        let Some(end) = (at + 8).checked_add(len).filter(|&e| e + 4 <= png.len()) else { return };
        let crc = crc32fast::hash(&png[at + 4..end]);
        png[end..end + 4].copy_from_slice(&crc.to_be_bytes());
        at = end + 4;
    }
}
