//! JPEG through the system's libjpeg-turbo, for what the pure-Rust codecs cannot do: decoding
//! at a reduced size straight from the DCT (the detector needs no more), decoding regions from
//! the coefficients read once, and rewriting a photo block by block so that only the redacted
//! regions are re-encoded and every other block keeps its original coefficients (no generation
//! loss, no full encode).

use std::ffi::{c_char, c_int, c_uint, c_ulong, c_void, CStr};
use std::marker::PhantomData;
use std::ptr::NonNull;

use image::RgbImage;

const ERR_LEN: usize = 200;

#[repr(C)]
#[derive(Default)]
struct RawHeader {
    width: c_uint,
    height: c_uint,
    supported: c_int,
    mcu_w: c_uint,
    mcu_h: c_uint,
}

#[repr(C)]
struct RawCoefs {
    _opaque: [u8; 0],
}

extern "C" {
    fn bgj_read_header(src: *const u8, len: c_ulong, h: *mut RawHeader, err: *mut c_char) -> c_int;
    fn bgj_decode(
        src: *const u8,
        len: c_ulong,
        max_memory: c_ulong,
        out: *mut u8,
        out_cap: c_ulong,
        out_w: *mut c_uint,
        out_h: *mut c_uint,
        err: *mut c_char,
    ) -> c_int;
    fn bgj_coefs_open(
        src: *const u8,
        len: c_ulong,
        max_memory: c_ulong,
        scale_num: c_int,
        out: *mut u8,
        out_cap: c_ulong,
        out_w: *mut c_uint,
        out_h: *mut c_uint,
        err: *mut c_char,
    ) -> *mut RawCoefs;
    fn bgj_coefs_close(c: *mut RawCoefs);
    fn bgj_coefs_decode(
        c: *mut RawCoefs,
        x0: c_uint,
        y0: c_uint,
        w: c_uint,
        h: c_uint,
        out: *mut u8,
        stride: c_ulong,
        err: *mut c_char,
    ) -> c_int;
    fn bgj_coefs_replace(
        c: *mut RawCoefs,
        x0: c_uint,
        y0: c_uint,
        w: c_uint,
        h: c_uint,
        rgb: *const u8,
        stride: c_ulong,
        keep: *const u8,
        err: *mut c_char,
    ) -> c_int;
    fn bgj_coefs_write(
        c: *mut RawCoefs,
        transpose: c_int,
        flip_x: c_int,
        flip_y: c_int,
        out: *mut *mut u8,
        out_len: *mut c_ulong,
        err: *mut c_char,
    ) -> c_int;
    fn bgj_free(p: *mut c_void);
}

/// What went wrong in a libjpeg call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LibjpegError {
    /// libjpeg's own message.
    #[error("{0}")]
    Library(String),
    #[error("libjpeg decoded {got:?} pixels, expected {want:?}")]
    WrongSize { got: (u32, u32), want: (u32, u32) },
    #[error("the region lies outside the canvas")]
    OutsideCanvas,
    #[error("the changed-block map does not match the region")]
    BlockMap,
}

/// libjpeg's message for a failed call.
fn failed(err: &[c_char; ERR_LEN]) -> LibjpegError {
    // SAFETY: the shim always writes a NUL-terminated message (snprintf) before failing.
    let text = unsafe { CStr::from_ptr(err.as_ptr()) }.to_string_lossy().into_owned();
    LibjpegError::Library(if text.is_empty() { "libjpeg failed".into() } else { text })
}

/// A pixel rectangle; `x`, `y` on the iMCU grid, right and bottom edges too unless they are the
/// image's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl Rect {
    pub fn intersects(&self, o: &Rect) -> bool {
        self.x < o.x + o.w && o.x < self.x + self.w && self.y < o.y + o.h && o.y < self.y + self.h
    }
    pub fn union(&self, o: &Rect) -> Rect {
        let (x, y) = (self.x.min(o.x), self.y.min(o.y));
        Rect { x, y, w: (self.x + self.w).max(o.x + o.w) - x, h: (self.y + self.h).max(o.y + o.h) - y }
    }
}

/// How a stored photo turns upright (its EXIF orientation): transposed, then mirrored along
/// the stored x and y axes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Turn {
    pub transpose: bool,
    pub flip_x: bool,
    pub flip_y: bool,
}

impl Turn {
    /// The turn EXIF orientation `o` (1..=8) asks for.
    pub fn from_exif(o: u32) -> Option<Turn> {
        let (transpose, flip_x, flip_y) = match o {
            1 => (false, false, false),
            2 => (false, true, false),
            3 => (false, true, true),
            4 => (false, false, true),
            5 => (true, false, false),
            6 => (true, false, true),
            7 => (true, true, true),
            8 => (true, true, false),
            _ => return None,
        };
        Some(Turn { transpose, flip_x, flip_y })
    }

    /// Its EXIF orientation.
    fn exif(&self) -> u8 {
        match (self.transpose, self.flip_x, self.flip_y) {
            (false, false, false) => 1,
            (false, true, false) => 2,
            (false, true, true) => 3,
            (false, false, true) => 4,
            (true, false, false) => 5,
            (true, false, true) => 6,
            (true, true, true) => 7,
            (true, true, false) => 8,
        }
    }

    /// The turn back: from upright to stored.
    pub fn inverse(&self) -> Turn {
        if self.transpose {
            Turn { flip_x: self.flip_y, flip_y: self.flip_x, ..*self }
        } else {
            *self
        }
    }

    /// `img` turned.
    pub fn apply(&self, img: RgbImage) -> RgbImage {
        if *self == Turn::default() {
            return img;
        }
        let mut img = image::DynamicImage::ImageRgb8(img);
        img.apply_orientation(image::metadata::Orientation::from_exif(self.exif()).expect("1..=8"));
        img.into_rgb8()
    }

    /// Can the photo's blocks turn whole? A mirrored side must hold whole iMCUs.
    pub fn fits(&self, header: &Header) -> bool {
        (!self.flip_x || header.width.is_multiple_of(header.mcu.0))
            && (!self.flip_y || header.height.is_multiple_of(header.mcu.1))
    }

    /// The upright size of a photo stored as `w` x `h`.
    pub fn upright(&self, w: u32, h: u32) -> (u32, u32) {
        if self.transpose {
            (h, w)
        } else {
            (w, h)
        }
    }

    /// Where the upright point (x, y) lies in the photo stored as `w` x `h` (continuous
    /// coordinates: pixel edges map to pixel edges).
    pub fn to_stored(&self, x: f32, y: f32, w: u32, h: u32) -> (f32, f32) {
        let (a, b) = if self.transpose { (y, x) } else { (x, y) };
        (if self.flip_x { w as f32 - a } else { a }, if self.flip_y { h as f32 - b } else { b })
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Header {
    pub width: u32,
    pub height: u32,
    /// 8-bit Huffman-coded YCbCr or greyscale, with common chroma sampling and no zero in its
    /// quantisation tables: what [`Coefficients`] can rewrite.
    pub supported: bool,
    /// The iMCU (minimum coded unit) size in pixels.
    pub mcu: (u32, u32),
}

impl Header {
    pub fn read(bytes: &[u8]) -> Result<Header, LibjpegError> {
        let mut raw = RawHeader::default();
        let mut err = [0 as c_char; ERR_LEN];
        // SAFETY: `bytes` outlives the call; `raw` and `err` are valid for writes.
        let rc = unsafe { bgj_read_header(bytes.as_ptr(), bytes.len() as c_ulong, &mut raw, err.as_mut_ptr()) };
        if rc != 0 {
            return Err(failed(&err));
        }
        Ok(Header {
            width: raw.width,
            height: raw.height,
            supported: raw.supported != 0,
            mcu: (raw.mcu_w.max(1), raw.mcu_h.max(1)),
        })
    }

    /// The smallest rectangle on the iMCU grid that holds pixels `x0..x1`, `y0..y1`.
    pub fn aligned(&self, x0: u32, y0: u32, x1: u32, y1: u32) -> Rect {
        let (mw, mh) = self.mcu;
        let (ax, ay) = (x0 / mw * mw, y0 / mh * mh);
        let (bx, by) =
            (x1.div_ceil(mw).saturating_mul(mw).min(self.width), y1.div_ceil(mh).saturating_mul(mh).min(self.height));
        Rect { x: ax, y: ay, w: bx.saturating_sub(ax), h: by.saturating_sub(ay) }
    }
}

/// The RGB pixels the shim wrote into `out`, sized `want`, once it says it wrote `got`.
fn decoded(out: Vec<u8>, got: (c_uint, c_uint), want: (u32, u32)) -> Result<RgbImage, LibjpegError> {
    if got != want {
        return Err(LibjpegError::WrongSize { got, want });
    }
    Ok(RgbImage::from_raw(want.0, want.1, out).expect("buffer sized for the image"))
}

/// The whole photo at full size.
pub fn decode_full(bytes: &[u8], header: &Header, max_memory: u64) -> Result<RgbImage, LibjpegError> {
    let mut out = vec![0u8; header.width as usize * header.height as usize * 3];
    let (mut ow, mut oh) = (0, 0);
    let mut err = [0 as c_char; ERR_LEN];
    // SAFETY: all buffers are valid for the lengths passed; the shim writes at most `out.len()`.
    let rc = unsafe {
        bgj_decode(
            bytes.as_ptr(),
            bytes.len() as c_ulong,
            max_memory as c_ulong,
            out.as_mut_ptr(),
            out.len() as c_ulong,
            &mut ow,
            &mut oh,
            err.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(failed(&err));
    }
    decoded(out, (ow, oh), (header.width, header.height))
}

/// Where `at` starts in `canvas`, whose top-left pixel lies at `origin` of the photo, and the
/// canvas's row stride, both in bytes; `None` unless the canvas holds all of `at`.
fn within(at: Rect, canvas: &RgbImage, origin: (u32, u32)) -> Option<(usize, usize)> {
    let (cw, ch) = (canvas.width() as u64, canvas.height() as u64);
    let [x, y, w, h, ox, oy] = [at.x, at.y, at.w, at.h, origin.0, origin.1].map(u64::from);
    let inside = x >= ox && y >= oy && x + w <= ox + cw && y + h <= oy + ch;
    inside.then(|| (((y - oy) * cw + x - ox) as usize * 3, cw as usize * 3))
}

/// A photo's quantised DCT coefficients in memory.
pub struct Coefficients<'a> {
    raw: NonNull<RawCoefs>,
    /// The iMCU size in pixels.
    mcu: (u32, u32),
    /// libjpeg reads the source lazily: it must outlive the handle.
    _source: PhantomData<&'a [u8]>,
}

impl<'a> Coefficients<'a> {
    /// Reads the photo's coefficients and, in the same pass over the compressed data, its pixels
    /// at `scale`/8 of its size (1..=8, sides rounded up): libjpeg's DCT scaling.
    pub fn read(
        bytes: &'a [u8],
        header: &Header,
        scale: u32,
        max_memory: u64,
    ) -> Result<(Self, RgbImage), LibjpegError> {
        let scale = scale.clamp(1, 8);
        let (w, h) = ((header.width * scale).div_ceil(8), (header.height * scale).div_ceil(8));
        let mut out = vec![0u8; w as usize * h as usize * 3];
        let (mut ow, mut oh) = (0, 0);
        let mut err = [0 as c_char; ERR_LEN];
        // SAFETY: `bytes` is borrowed for the handle's lifetime; the shim writes at most
        // `out.len()` bytes into `out`.
        let raw = unsafe {
            bgj_coefs_open(
                bytes.as_ptr(),
                bytes.len() as c_ulong,
                max_memory as c_ulong,
                scale as c_int,
                out.as_mut_ptr(),
                out.len() as c_ulong,
                &mut ow,
                &mut oh,
                err.as_mut_ptr(),
            )
        };
        let coefficients = NonNull::new(raw)
            .map(|raw| Coefficients { raw, mcu: header.mcu, _source: PhantomData })
            .ok_or_else(|| failed(&err))?;
        Ok((coefficients, decoded(out, (ow, oh), (w, h))?))
    }

    /// Decodes the pixels of `at` (on the iMCU grid) from the coefficients, as libjpeg decodes
    /// the photo, into `canvas`, whose top-left pixel lies at `origin` of the photo.
    pub fn decode(&mut self, at: Rect, canvas: &mut RgbImage, origin: (u32, u32)) -> Result<(), LibjpegError> {
        let (offset, stride) = within(at, canvas, origin).ok_or(LibjpegError::OutsideCanvas)?;
        let mut err = [0 as c_char; ERR_LEN];
        let raw: &mut [u8] = canvas;
        // SAFETY: the handle is live; the shim writes `at.h` rows of `at.w * 3` bytes, `stride`
        // apart, from `offset`, all inside the canvas (`within`).
        let rc = unsafe {
            bgj_coefs_decode(
                self.raw.as_ptr(),
                at.x,
                at.y,
                at.w,
                at.h,
                raw[offset..].as_mut_ptr(),
                stride as c_ulong,
                err.as_mut_ptr(),
            )
        };
        if rc != 0 {
            Err(failed(&err))
        } else {
            Ok(())
        }
    }

    /// Replaces the blocks under `at` with its pixels in `canvas` (whose top-left pixel lies at
    /// `origin` of the photo), encoded with the photo's own quantisation tables and sampling,
    /// except in the iMCUs that `changed` (one flag per iMCU of `at`, row by row) leaves out:
    /// those keep their coefficients exactly.
    pub fn replace(
        &mut self,
        at: Rect,
        canvas: &RgbImage,
        origin: (u32, u32),
        changed: &[bool],
    ) -> Result<(), LibjpegError> {
        let (offset, stride) = within(at, canvas, origin).ok_or(LibjpegError::OutsideCanvas)?;
        let (mw, mh) = self.mcu;
        if changed.len() != (at.w.div_ceil(mw) * at.h.div_ceil(mh)) as usize {
            return Err(LibjpegError::BlockMap);
        }
        let keep: Vec<u8> = changed.iter().map(|&c| u8::from(!c)).collect();
        let mut err = [0 as c_char; ERR_LEN];
        // SAFETY: the handle is live; the shim reads `at.h` rows of `at.w * 3` bytes, `stride`
        // apart, from `offset`, all inside the canvas (`within`), and a byte per iMCU of `at`
        // from `keep`.
        let rc = unsafe {
            bgj_coefs_replace(
                self.raw.as_ptr(),
                at.x,
                at.y,
                at.w,
                at.h,
                canvas.as_raw()[offset..].as_ptr(),
                stride as c_ulong,
                keep.as_ptr(),
                err.as_mut_ptr(),
            )
        };
        if rc != 0 {
            Err(failed(&err))
        } else {
            Ok(())
        }
    }

    /// The photo encoded again from its coefficients (baseline, standard Huffman tables), with no
    /// APPn segments, turned upright by `turn` in the DCT domain (no block decoded).
    pub fn write(&mut self, turn: Turn) -> Result<Vec<u8>, LibjpegError> {
        let mut out: *mut u8 = std::ptr::null_mut();
        let mut len: c_ulong = 0;
        let mut err = [0 as c_char; ERR_LEN];
        let flags = [turn.transpose, turn.flip_x, turn.flip_y].map(c_int::from);
        // SAFETY: the handle is live; on success `out` is a malloc'd buffer of `len` bytes.
        let rc = unsafe {
            bgj_coefs_write(self.raw.as_ptr(), flags[0], flags[1], flags[2], &mut out, &mut len, err.as_mut_ptr())
        };
        if rc != 0 || out.is_null() {
            return Err(failed(&err));
        }
        // SAFETY: as above; copied, then freed by the allocator that made it.
        let bytes = unsafe { std::slice::from_raw_parts(out, len as usize) }.to_vec();
        unsafe { bgj_free(out.cast()) };
        Ok(bytes)
    }
}

impl Drop for Coefficients<'_> {
    fn drop(&mut self) {
        // SAFETY: the handle came from bgj_coefs_open and is closed once.
        unsafe { bgj_coefs_close(self.raw.as_ptr()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_agree_with_exif_orientation_and_undo() {
        let stored = RgbImage::from_fn(5, 3, |x, y| image::Rgb([x as u8, y as u8, (x * 3 + y) as u8]));
        for o in 1..=8 {
            let turn = Turn::from_exif(o).unwrap();
            let upright = turn.apply(stored.clone());
            assert_eq!(upright.dimensions(), turn.upright(5, 3), "orientation {o}");
            for (x, y, p) in upright.enumerate_pixels() {
                let (sx, sy) = turn.to_stored(x as f32 + 0.5, y as f32 + 0.5, 5, 3);
                assert_eq!(p, stored.get_pixel(sx as u32, sy as u32), "orientation {o} at ({x}, {y})");
            }
            assert_eq!(turn.inverse().apply(upright), stored, "orientation {o} undone");
        }
    }
}
