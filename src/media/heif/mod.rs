//! HEIF: HEIC (HEVC) and AVIF (AV1) through the system's libheif (`shim.c`). The primary image
//! is decoded upright (its irot/imir transforms applied, as EXIF orientation is for other
//! formats) and written back in its own codec and bit depth. Only that image is written:
//! thumbnails, depth maps, gain maps and other auxiliary images, which can show the unredacted
//! face, never reach the output.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr};

use image::{GrayImage, ImageBuffer, Luma, Rgb, RgbImage};

use super::metadata::{icc_for_output, kept_exif};
use super::{DecodeError, DecodeLimits, Deep, EncodeError, EncodeOptions, Format, Photo};

/// The quality of HEIF/AVIF files written (libheif's lossy quality, 0-100).
pub const QUALITY: u8 = 90;

const ERR_LEN: usize = 200;

#[repr(C)]
#[derive(Default)]
struct RawInfo {
    width: c_uint,
    height: c_uint,
    has_alpha: c_int,
    bits: c_int,
    av1: c_int,
    images: c_int,
}

extern "C" {
    fn bgh_info_read(src: *const u8, len: usize, info: *mut RawInfo, err: *mut c_char) -> c_int;
    fn bgh_decode(
        src: *const u8,
        len: usize,
        deep: c_int,
        pixels: *mut *mut u8,
        stride: *mut usize,
        icc: *mut *mut u8,
        icc_len: *mut usize,
        exif: *mut *mut u8,
        exif_len: *mut usize,
        err: *mut c_char,
    ) -> c_int;
    #[allow(clippy::too_many_arguments)]
    fn bgh_encode(
        pixels: *const u8,
        w: c_uint,
        h: c_uint,
        stride: usize,
        has_alpha: c_int,
        bits: c_int,
        av1: c_int,
        quality: c_int,
        icc: *const u8,
        icc_len: usize,
        exif: *const u8,
        exif_len: usize,
        out: *mut *mut u8,
        out_len: *mut usize,
        err: *mut c_char,
    ) -> c_int;
    fn bgh_free(p: *mut c_void);
}

/// The codec inside a HEIF file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// HEIC.
    Hevc,
    /// AVIF.
    Av1,
}

/// What libheif said went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LibheifError(String);

fn failed(err: &[c_char; ERR_LEN]) -> LibheifError {
    // SAFETY: the shim writes a NUL-terminated message (snprintf) before failing.
    let text = unsafe { CStr::from_ptr(err.as_ptr()) }.to_string_lossy().into_owned();
    LibheifError(if text.is_empty() { "libheif failed".into() } else { text })
}

/// A buffer libheif's shim allocated; freed on drop.
struct Owned(*mut u8, usize);

impl Owned {
    fn bytes(&self) -> &[u8] {
        if self.0.is_null() {
            &[]
        } else {
            // SAFETY: the shim allocated `self.1` bytes at `self.0`.
            unsafe { std::slice::from_raw_parts(self.0, self.1) }
        }
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        // SAFETY: allocated by the shim with malloc (or NULL).
        unsafe { bgh_free(self.0.cast()) }
    }
}

/// An ISO BMFF `ftyp` box naming a HEIF or AVIF brand.
pub fn is_heif(bytes: &[u8]) -> bool {
    const BRANDS: &[&[u8; 4]] =
        &[b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1", b"avif", b"avis"];
    bytes.get(4..8) == Some(b"ftyp") && bytes.get(8..12).is_some_and(|b| BRANDS.iter().any(|brand| b == *brand))
}

struct Info {
    width: u32,
    height: u32,
    has_alpha: bool,
    bits: u8,
    codec: Codec,
    images: usize,
}

fn info(bytes: &[u8]) -> Result<Info, LibheifError> {
    let mut raw = RawInfo::default();
    let mut err = [0 as c_char; ERR_LEN];
    // SAFETY: `bytes` outlives the call; `raw` and `err` are valid for writes.
    if unsafe { bgh_info_read(bytes.as_ptr(), bytes.len(), &mut raw, err.as_mut_ptr()) } != 0 {
        return Err(failed(&err));
    }
    Ok(Info {
        width: raw.width,
        height: raw.height,
        has_alpha: raw.has_alpha != 0,
        bits: raw.bits.clamp(8, 16) as u8,
        codec: if raw.av1 != 0 { Codec::Av1 } else { Codec::Hevc },
        images: raw.images.max(0) as usize,
    })
}

/// Top-level images besides the primary one (bursts, image collections).
pub fn other_images(bytes: &[u8]) -> usize {
    info(bytes).map_or(0, |i| i.images.saturating_sub(1))
}

pub fn decode(bytes: &[u8], limits: DecodeLimits) -> Result<Photo, DecodeError> {
    let info = info(bytes)?;
    let deep = info.bits > 8;
    let channels: u64 = if info.has_alpha { 4 } else { 3 };
    let need = info.width as u64 * info.height as u64 * channels * if deep { 2 } else { 1 };
    if info.width.max(info.height) > limits.max_side || need > limits.max_alloc {
        return Err(DecodeError::PastLimits { width: info.width, height: info.height });
    }
    let (mut pixels, mut icc, mut exif) = (std::ptr::null_mut(), std::ptr::null_mut(), std::ptr::null_mut());
    let (mut stride, mut icc_len, mut exif_len) = (0, 0, 0);
    let mut err = [0 as c_char; ERR_LEN];
    // SAFETY: `bytes` outlives the call; every out-pointer is valid for writes; the shim
    // allocates what it hands back (owned below).
    let rc = unsafe {
        bgh_decode(
            bytes.as_ptr(),
            bytes.len(),
            c_int::from(deep),
            &mut pixels,
            &mut stride,
            &mut icc,
            &mut icc_len,
            &mut exif,
            &mut exif_len,
            err.as_mut_ptr(),
        )
    };
    let (icc, exif) = (Owned(icc, icc_len), Owned(exif, exif_len));
    if rc != 0 {
        return Err(failed(&err).into());
    }
    let (w, h) = (info.width, info.height);
    let pixels = Owned(pixels, stride * h as usize);
    let raw = pixels.bytes();
    let c = channels as usize;
    let (rgb, alpha, deep) = if deep {
        let sample = |i: usize| u16::from_le_bytes([raw[i], raw[i + 1]]);
        let at = |x: u32, y: u32, k: usize| sample(y as usize * stride + (x as usize * c + k) * 2);
        let max = (1u32 << info.bits) - 1;
        let rgb16 = ImageBuffer::from_fn(w, h, |x, y| Rgb([at(x, y, 0), at(x, y, 1), at(x, y, 2)]));
        let alpha16 = info.has_alpha.then(|| ImageBuffer::from_fn(w, h, |x, y| Luma([at(x, y, 3)])));
        let to8 = |v: u16| ((v as u32 * 255 + max / 2) / max) as u8;
        let rgb = RgbImage::from_fn(w, h, |x, y| Rgb(rgb16.get_pixel(x, y).0.map(to8)));
        let alpha = alpha16.as_ref().map(|a| GrayImage::from_fn(w, h, |x, y| Luma([to8(a.get_pixel(x, y)[0])])));
        (rgb, alpha, Some(Deep { rgb: rgb16, alpha: alpha16, bits: info.bits }))
    } else {
        let at = |x: u32, y: u32, k: usize| raw[y as usize * stride + x as usize * c + k];
        let rgb = RgbImage::from_fn(w, h, |x, y| Rgb([at(x, y, 0), at(x, y, 1), at(x, y, 2)]));
        let alpha = info.has_alpha.then(|| GrayImage::from_fn(w, h, |x, y| Luma([at(x, y, 3)])));
        (rgb, alpha, None)
    };
    Ok(Photo {
        rgb,
        alpha,
        grey: false,
        format: Format::Heif(info.codec),
        icc: (!icc.bytes().is_empty()).then(|| icc.bytes().to_vec()),
        // irot/imir are applied by the decoder; the EXIF orientation is reset when it is kept.
        exif: (!exif.bytes().is_empty()).then(|| exif.bytes().to_vec()),
        deep,
        animation: None,
    })
}

/// The photo in its own codec (HEVC unless it was read as AVIF) and bit depth (8, or the deep
/// samples' bits), with the colour profile and the EXIF the policy keeps.
pub fn encode(photo: Photo, options: &EncodeOptions) -> Result<Vec<u8>, EncodeError> {
    let codec = match photo.format {
        Format::Heif(codec) => codec,
        Format::Image(_) => Codec::Hevc,
    };
    let exif = photo.exif.as_deref().and_then(|e| kept_exif(e, options.metadata));
    let (w, h) = photo.rgb.dimensions();
    let has_alpha = photo.alpha.is_some();
    let c = if has_alpha { 4 } else { 3 };
    let (bytes, bits) = match &photo.deep {
        Some(deep) => {
            let mut out = Vec::with_capacity(w as usize * h as usize * c * 2);
            for (x, y, p) in deep.rgb.enumerate_pixels() {
                for v in p.0 {
                    out.extend_from_slice(&v.to_le_bytes());
                }
                if let Some(a) = &deep.alpha {
                    out.extend_from_slice(&a.get_pixel(x, y)[0].to_le_bytes());
                }
            }
            (out, deep.bits)
        }
        None => {
            let mut out = Vec::with_capacity(w as usize * h as usize * c);
            for (x, y, p) in photo.rgb.enumerate_pixels() {
                out.extend_from_slice(&p.0);
                if let Some(a) = &photo.alpha {
                    out.push(a.get_pixel(x, y)[0]);
                }
            }
            (out, 8)
        }
    };
    let stride = w as usize * c * if bits > 8 { 2 } else { 1 };
    let (icc, exif) = (icc_for_output(photo.icc, false).unwrap_or_default(), exif.unwrap_or_default());
    let (mut out, mut out_len) = (std::ptr::null_mut(), 0);
    let mut err = [0 as c_char; ERR_LEN];
    // SAFETY: every buffer is valid for the length passed; the shim allocates `out`.
    let rc = unsafe {
        bgh_encode(
            bytes.as_ptr(),
            w,
            h,
            stride,
            c_int::from(has_alpha),
            c_int::from(bits),
            c_int::from(codec == Codec::Av1),
            c_int::from(QUALITY),
            icc.as_ptr(),
            icc.len(),
            exif.as_ptr(),
            exif.len(),
            &mut out,
            &mut out_len,
            err.as_mut_ptr(),
        )
    };
    let out = Owned(out, out_len);
    if rc != 0 {
        return Err(failed(&err).into());
    }
    Ok(out.bytes().to_vec())
}
