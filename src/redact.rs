//! Redaction: masks (ellipse or box) around each face and what fills them.

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::detect::FaceBox;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Style {
    /// Gaussian blur whose strength follows the face size.
    #[default]
    Blur,
    /// Coarse blocks, about seven across the face.
    Pixelate,
    /// Solid black.
    Fill,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    #[default]
    Ellipse,
    Box,
}

#[derive(Debug, Clone, Copy)]
pub struct RedactOptions {
    pub style: Style,
    pub shape: Shape,
    /// The mask is the detected box scaled about its centre by this factor.
    pub mask_scale: f32,
}

impl Default for RedactOptions {
    fn default() -> Self {
        RedactOptions { style: Style::Blur, shape: Shape::Ellipse, mask_scale: 1.3 }
    }
}

/// Extra mask scale for the smallest faces: a detector's box for a face of a few pixels is off
/// by a larger share of its size, and on the WIDER FACE dev set a 1.3x ellipse left 35% of the
/// found faces under 64 px less than 90% covered (0.5 more at 16 px and below: 10%).
pub const SMALL_FACE_EXTRA_SCALE: f32 = 0.5;
/// Faces this tall (photo pixels) and taller get `mask_scale` alone; the extra grows linearly
/// to its full value at `SMALL_FACE_FULL_EXTRA` and below.
const SMALL_FACE_FROM: f32 = 64.0;
const SMALL_FACE_FULL_EXTRA: f32 = 16.0;

impl RedactOptions {
    /// The mask's scale for a face of this box (photo pixels): `mask_scale`, more for small faces.
    pub fn mask_factor(&self, face: &FaceBox) -> f32 {
        let t = ((SMALL_FACE_FROM - face.height()) / (SMALL_FACE_FROM - SMALL_FACE_FULL_EXTRA)).clamp(0.0, 1.0);
        self.mask_scale + SMALL_FACE_EXTRA_SCALE * t
    }

    /// The face's box scaled to its mask (before clipping to the photo).
    pub fn mask_box(&self, face: &FaceBox) -> FaceBox {
        face.scaled(self.mask_factor(face))
    }

    /// How text found on a redacted person (a badge, a name card) is redacted: in the same
    /// style, over its box as found. Boxes of text under 64 px tall grow as small faces' masks
    /// do: the network's box is least sure there.
    pub fn for_text(&self) -> RedactOptions {
        RedactOptions { shape: Shape::Box, mask_scale: 1.0, ..*self }
    }
}

/// Boxes redacted alike, in turn: a photo's faces with the run's options, then the text on
/// redacted people with [`RedactOptions::for_text`].
#[derive(Debug, Clone, Copy)]
pub struct Layer<'a> {
    pub boxes: &'a [FaceBox],
    pub options: RedactOptions,
}

/// Blur sigma as a fraction of the face's larger side: strong enough that SFace no longer
/// matches the blurred face to the original (tested in tests/redact.rs).
pub const BLUR_SIGMA_PER_FACE: f32 = 0.15;
/// Pixelation blocks across the face's larger side. At 7 a pixelated face was borderline for
/// recognition (SFace similarity 0.32 to another photo of the person, over its 1% false-accept
/// threshold, depending on where the detector put the box): 5 is clearly below it (tested in
/// tests/redact.rs).
const PIXEL_BLOCKS_PER_FACE: f32 = 5.0;

/// The region one face's redaction covers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mask {
    pub area: FaceBox,
    pub shape: Shape,
}

impl Mask {
    pub fn for_face(face: &FaceBox, options: &RedactOptions, width: u32, height: u32) -> Mask {
        Mask::scaled(face, options.mask_factor(face), options.shape, width, height)
    }

    /// The mask of `face` scaled by `factor`: a face drawn at another size keeps the factor of
    /// its size in the photo.
    fn scaled(face: &FaceBox, factor: f32, shape: Shape, width: u32, height: u32) -> Mask {
        Mask { area: face.scaled(factor).clipped(width, height), shape }
    }

    /// Does the mask cover the pixel whose top-left corner is (x, y)? Ellipses are those
    /// inscribed in the unclipped scaled box, tested at pixel centres.
    pub fn covers(&self, x: u32, y: u32, full: &FaceBox) -> bool {
        let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
        let a = &self.area;
        if px < a.x1 || px >= a.x2 || py < a.y1 || py >= a.y2 {
            return false;
        }
        match self.shape {
            Shape::Box => true,
            Shape::Ellipse => {
                let (cx, cy) = ((full.x1 + full.x2) / 2.0, (full.y1 + full.y2) / 2.0);
                let (rx, ry) = (full.width() / 2.0, full.height() / 2.0);
                let (dx, dy) = ((px - cx) / rx, (py - cy) / ry);
                dx * dx + dy * dy <= 1.0
            }
        }
    }

    /// The pixels of row `y` that the mask covers (one run: masks are convex), exactly those
    /// for which [`Mask::covers`] holds.
    pub fn row_span(&self, y: u32, full: &FaceBox) -> std::ops::Range<u32> {
        let (bx0, by0, bx1, by1) = self.bounds();
        if y < by0 || y >= by1 {
            return 0..0;
        }
        let a = &self.area;
        let (lo, hi) = match self.shape {
            Shape::Box => (a.x1, a.x2),
            Shape::Ellipse => {
                let (cx, cy) = ((full.x1 + full.x2) / 2.0, (full.y1 + full.y2) / 2.0);
                let dy = (y as f32 + 0.5 - cy) / (full.height() / 2.0);
                let half = full.width() / 2.0 * (1.0 - dy * dy).max(0.0).sqrt();
                (cx - half, cx + half)
            }
        };
        // The closed form gives the run to within rounding; `covers` settles its ends.
        let mut x0 = ((lo - 0.5).ceil().max(bx0 as f32) as u32).min(bx1);
        let mut x1 = (((hi - 0.5).floor() + 1.0).max(x0 as f32) as u32).min(bx1);
        while x0 < x1 && !self.covers(x0, y, full) {
            x0 += 1;
        }
        while x0 > bx0 && self.covers(x0 - 1, y, full) {
            x0 -= 1;
        }
        while x1 > x0 && !self.covers(x1 - 1, y, full) {
            x1 -= 1;
        }
        while x1 < bx1 && self.covers(x1, y, full) {
            x1 += 1;
        }
        if x0 == x1 {
            0..0
        } else {
            x0..x1
        }
    }

    /// Pixel bounds (x0, y0, x1, y1), exclusive end.
    pub fn bounds(&self) -> (u32, u32, u32, u32) {
        let a = &self.area;
        (a.x1.floor() as u32, a.y1.floor() as u32, a.x2.ceil() as u32, a.y2.ceil() as u32)
    }
}

/// Redacts every face in `faces` (detected boxes, before mask scaling) in place.
pub fn redact(img: &mut RgbImage, faces: &[FaceBox], options: &RedactOptions) {
    for face in faces {
        let mask = Mask::for_face(face, options, img.width(), img.height());
        replacement(img, face, &mask, options).paste(img, &mask, &options.mask_box(face));
    }
}

/// What covers one face's mask in `img`.
fn replacement(img: &RgbImage, face: &FaceBox, mask: &Mask, options: &RedactOptions) -> Region {
    let size = face.width().max(face.height());
    match options.style {
        Style::Blur => blurred(img, mask, (size * BLUR_SIGMA_PER_FACE).max(1.0)),
        Style::Pixelate => pixelated(img, mask, (size / PIXEL_BLOCKS_PER_FACE).max(2.0).round() as u32),
        Style::Fill => Region::filled(mask, [0, 0, 0]),
    }
}

/// [`redact`] for a photo of `size` of which only `patch` (at `origin`) is held at full
/// resolution, next to `preview`, the whole photo at a reduced size. The replacement is
/// computed on the preview and scaled up into the patch, which must hold every face's mask:
/// a blur or pixel blocks are far coarser than the preview's pixels for faces of 10 of them and
/// more, so the result is what [`redact`] gives; a smaller face (the native and zoomed passes
/// find them) is replaced by the preview's coarser pixels, a stronger redaction, never a weaker
/// one. The
/// preview is redacted too, so overlapping faces compose as they do there.
pub fn redact_from_preview(
    patch: &mut RgbImage,
    origin: (u32, u32),
    preview: &mut RgbImage,
    size: (u32, u32),
    faces: &[FaceBox],
    options: &RedactOptions,
) {
    let (pw, ph) = preview.dimensions();
    let (sx, sy) = (pw as f32 / size.0 as f32, ph as f32 / size.1 as f32);
    for face in faces {
        let small = face.mapped(sx, sy, 0.0, 0.0);
        let factor = options.mask_factor(face);
        let small_mask = Mask::scaled(&small, factor, options.shape, pw, ph);
        let region = replacement(preview, &small, &small_mask, options);
        region.paste(preview, &small_mask, &small.scaled(factor));
        let mask = Mask::for_face(face, options, size.0, size.1);
        let smooth = options.style == Style::Blur;
        region.paste_scaled(patch, origin, &mask, &options.mask_box(face), (sx, sy), smooth);
    }
}

/// Replacement pixels for a mask's bounding rectangle.
struct Region {
    x0: u32,
    y0: u32,
    w: u32,
    rgb: Vec<u8>,
}

impl Region {
    fn filled(mask: &Mask, colour: [u8; 3]) -> Region {
        let (x0, y0, x1, y1) = mask.bounds();
        let n = ((x1 - x0) * (y1 - y0)) as usize;
        Region { x0, y0, w: x1 - x0, rgb: colour.repeat(n) }
    }

    fn height(&self) -> u32 {
        (self.rgb.len() / 3) as u32 / self.w.max(1)
    }

    fn paste(&self, img: &mut RgbImage, mask: &Mask, full: &FaceBox) {
        let (_, y0, _, y1) = mask.bounds();
        let width = img.width() as usize;
        let raw: &mut [u8] = img;
        for y in y0..y1 {
            let span = mask.row_span(y, full);
            if span.is_empty() {
                continue;
            }
            let from = (((y - self.y0) * self.w + (span.start - self.x0)) * 3) as usize;
            let to = (y as usize * width + span.start as usize) * 3;
            let n = span.len() * 3;
            raw[to..to + n].copy_from_slice(&self.rgb[from..from + n]);
        }
    }

    /// Pastes the region, which lies on an image `1/scale` times the size of `patch`'s, into
    /// `patch` (at `origin` of that larger image) under `mask`, scaled up: full-size pixel x
    /// takes the region's colour at (x + 0.5) * scale - 0.5, bilinear when `smooth`, else the
    /// nearest (keeps pixel blocks sharp).
    #[allow(clippy::too_many_arguments)]
    fn paste_scaled(
        &self,
        patch: &mut RgbImage,
        origin: (u32, u32),
        mask: &Mask,
        full: &FaceBox,
        scale: (f32, f32),
        smooth: bool,
    ) {
        let (w, h) = (self.w, self.height());
        if w == 0 || h == 0 {
            return;
        }
        let (bx0, by0, bx1, by1) = mask.bounds();
        let (x0, x1) = (bx0.max(origin.0), bx1.min(origin.0 + patch.width()));
        let (y0, y1) = (by0.max(origin.1), by1.min(origin.1 + patch.height()));
        let columns: Vec<Tap> = (x0..x1).map(|x| Tap::at(x, scale.0, self.x0 as f32, w, smooth)).collect();
        let mut resampler = Resampler::new(&self.rgb, w as usize * 3, columns);
        let pw = patch.width() as usize;
        let raw: &mut [u8] = patch;
        for y in y0..y1 {
            let span = mask.row_span(y, full);
            let (sx0, sx1) = (span.start.max(x0), span.end.min(x1));
            if sx0 >= sx1 {
                continue;
            }
            let out =
                &mut raw[((y - origin.1) as usize * pw + (sx0 - origin.0) as usize) * 3..][..(sx1 - sx0) as usize * 3];
            resampler.row(Tap::at(y, scale.1, self.y0 as f32, h, smooth), (sx0 - x0) as usize, out);
        }
    }
}

/// Bilinear (or nearest) resampling of an interleaved RGB buffer, row by row. Each source row
/// is resampled along x once, at the source's resolution, and kept while output rows blend it
/// with its neighbour: when scaling up, that blend (contiguous, vectorised) is the only work
/// per output pixel.
struct Resampler<'a, T> {
    src: &'a [T],
    stride: usize,
    /// Where each output column samples a source row.
    columns: Vec<Tap>,
    /// Source rows resampled along x, with their row numbers.
    rows: [(usize, Vec<f32>); 2],
}

impl<'a, T: Copy + Into<f32>> Resampler<'a, T> {
    fn new(src: &'a [T], stride: usize, columns: Vec<Tap>) -> Self {
        let n = columns.len() * 3;
        Resampler { src, stride, columns, rows: [(usize::MAX, vec![0f32; n]), (usize::MAX, vec![0f32; n])] }
    }

    /// Source row `r` resampled along x, in slot `slot`.
    fn load(&mut self, slot: usize, r: usize) {
        let line = &self.src[r * self.stride..][..self.stride];
        let (_, out) = &mut self.rows[slot];
        for (px, tap) in out.chunks_exact_mut(3).zip(&self.columns) {
            let (left, right) = (&line[tap.a * 3..][..3], &line[tap.b * 3..][..3]);
            for c in 0..3 {
                let (l, r): (f32, f32) = (left[c].into(), right[c].into());
                px[c] = l + (r - l) * tap.t;
            }
        }
        self.rows[slot].0 = r;
    }

    /// The output row that samples the source rows as `v` says, from column `first` on, into
    /// `out` (RGB; its length sets how many columns).
    fn row(&mut self, v: Tap, first: usize, out: &mut [u8]) {
        if self.rows[0].0 != v.a {
            if self.rows[1].0 == v.a {
                self.rows.swap(0, 1);
            } else {
                self.load(0, v.a);
            }
        }
        if self.rows[1].0 != v.b {
            self.load(1, v.b);
        }
        let n = out.len();
        let (top, bottom) = (&self.rows[0].1[first * 3..][..n], &self.rows[1].1[first * 3..][..n]);
        for ((o, &t), &b) in out.iter_mut().zip(top).zip(bottom) {
            *o = to_u8(t + (b - t) * v.t);
        }
    }
}

/// Where one output pixel samples a line of `len` source samples: the lower and upper sample
/// and the upper one's weight. Output pixel i sits at source position (i + 0.5) * scale - 0.5
/// - start (pixel centres); `smooth` interpolates, otherwise the nearest sample is taken.
#[derive(Clone, Copy)]
struct Tap {
    a: usize,
    b: usize,
    t: f32,
}

impl Tap {
    fn at(i: u32, scale: f32, start: f32, len: u32, smooth: bool) -> Tap {
        let f = ((i as f32 + 0.5) * scale - 0.5 - start).clamp(0.0, (len - 1) as f32);
        // Casts, not floor() and round(): those are library calls on baseline x86-64.
        if smooth {
            let a = f as usize;
            Tap { a, b: (a + 1).min(len as usize - 1), t: f - a as f32 }
        } else {
            let a = (f + 0.5) as usize;
            Tap { a, b: a, t: 0.0 }
        }
    }
}

/// Nearest 8-bit value of a colour in [0, 255] (the cast saturates rounding error).
fn to_u8(v: f32) -> u8 {
    (v + 0.5) as u8
}

/// Gaussian blur of the mask's rectangle, reading context up to 3σ around it. Large sigmas run
/// on a copy reduced by an integer factor (area average) and are scaled back bilinearly: the same
/// Gaussian, at a cost that does not grow with the face size.
fn blurred(img: &RgbImage, mask: &Mask, sigma: f32) -> Region {
    let (x0, y0, x1, y1) = mask.bounds();
    let reach = (3.0 * sigma).ceil() as u32;
    let (cx0, cy0) = (x0.saturating_sub(reach), y0.saturating_sub(reach));
    let (cx1, cy1) = ((x1 + reach).min(img.width()), (y1 + reach).min(img.height()));
    let factor = ((sigma / 4.0).floor() as u32).max(1);
    let (cw, ch) = (cx1 - cx0, cy1 - cy0);
    let (sw, sh) = (cw.div_ceil(factor), ch.div_ceil(factor));

    // Area-average the context into a small float buffer.
    let mut small = vec![0f32; (sw * sh * 3) as usize];
    let mut counts = vec![0f32; (sw * sh) as usize];
    let width = img.width() as usize;
    let raw: &[u8] = img;
    for y in 0..ch {
        let row = &raw[((cy0 + y) as usize * width + cx0 as usize) * 3..][..cw as usize * 3];
        let cells = (y / factor * sw) as usize;
        for (i, cell) in row.chunks(factor as usize * 3).enumerate() {
            let j = cells + i;
            counts[j] += (cell.len() / 3) as f32;
            let mut sum = [0u32; 3];
            for p in cell.chunks_exact(3) {
                (0..3).for_each(|c| sum[c] += u32::from(p[c]));
            }
            (0..3).for_each(|c| small[j * 3 + c] += sum[c] as f32);
        }
    }
    for (j, n) in counts.iter().enumerate() {
        for c in 0..3 {
            small[j * 3 + c] /= n;
        }
    }
    gaussian(&mut small, sw as usize, sh as usize, sigma / factor as f32);

    // Back to full resolution over the mask's rectangle (bilinear, pixel centres).
    let (w, h) = (x1 - x0, y1 - y0);
    let inv = 1.0 / factor as f32;
    let columns: Vec<Tap> = (x0..x1).map(|x| Tap::at(x - cx0, inv, 0.0, sw, true)).collect();
    let mut resampler = Resampler::new(&small, sw as usize * 3, columns);
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    for (y, out) in (y0..y1).zip(rgb.chunks_exact_mut((w as usize * 3).max(1))) {
        resampler.row(Tap::at(y - cy0, inv, 0.0, sh, true), 0, out);
    }
    Region { x0, y0, w, rgb }
}

/// Separable Gaussian over an interleaved RGB float buffer, edges clamped.
fn gaussian(buf: &mut [f32], w: usize, h: usize, sigma: f32) {
    let radius = (3.0 * sigma).ceil() as isize;
    let mut kernel: Vec<f32> = (-radius..=radius).map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp()).collect();
    let sum: f32 = kernel.iter().sum();
    kernel.iter_mut().for_each(|k| *k /= sum);
    let mut tmp = vec![0f32; buf.len()];
    let pass = |src: &[f32], dst: &mut [f32], along_x: bool| {
        for y in 0..h {
            for x in 0..w {
                let mut acc = [0f32; 3];
                for (k, weight) in kernel.iter().enumerate() {
                    let d = k as isize - radius;
                    let (sx, sy) = if along_x {
                        ((x as isize + d).clamp(0, w as isize - 1) as usize, y)
                    } else {
                        (x, (y as isize + d).clamp(0, h as isize - 1) as usize)
                    };
                    let s = (sy * w + sx) * 3;
                    for c in 0..3 {
                        acc[c] += src[s + c] * weight;
                    }
                }
                dst[(y * w + x) * 3..][..3].copy_from_slice(&acc);
            }
        }
    };
    pass(buf, &mut tmp, true);
    pass(&tmp, buf, false);
}

/// Mean colour per block, blocks aligned to the mask's rectangle.
fn pixelated(img: &RgbImage, mask: &Mask, block: u32) -> Region {
    let (x0, y0, x1, y1) = mask.bounds();
    let w = x1 - x0;
    let mut region = Region::filled(mask, [0, 0, 0]);
    for by in (y0..y1).step_by(block as usize) {
        for bx in (x0..x1).step_by(block as usize) {
            let (ex, ey) = ((bx + block).min(x1), (by + block).min(y1));
            let mut sum = [0u64; 3];
            for y in by..ey {
                for x in bx..ex {
                    let p = img.get_pixel(x, y).0;
                    (0..3).for_each(|c| sum[c] += p[c] as u64);
                }
            }
            let n = ((ex - bx) * (ey - by)) as u64;
            let mean = sum.map(|s| ((s + n / 2) / n) as u8);
            for y in by..ey {
                for x in bx..ex {
                    let i = (((y - y0) * w + (x - x0)) * 3) as usize;
                    region.rgb[i..i + 3].copy_from_slice(&mean);
                }
            }
        }
    }
    region
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_faces_get_a_wider_mask() {
        let options = RedactOptions::default();
        let face = |h: f32| FaceBox { x1: 0.0, y1: 0.0, x2: h * 0.8, y2: h };
        assert_eq!(options.mask_factor(&face(200.0)), 1.3);
        assert_eq!(options.mask_factor(&face(64.0)), 1.3);
        assert!((options.mask_factor(&face(40.0)) - 1.55).abs() < 1e-6);
        assert_eq!(options.mask_factor(&face(16.0)), 1.8);
        assert_eq!(options.mask_factor(&face(6.0)), 1.8);
        let mask = Mask::for_face(&FaceBox { x1: 100.0, y1: 100.0, x2: 108.0, y2: 110.0 }, &options, 400, 400);
        assert_eq!(mask.area, FaceBox { x1: 96.8, y1: 96.0, x2: 111.2, y2: 114.0 });
    }

    fn noise(w: u32, h: u32) -> RgbImage {
        let mut state = 12345u32;
        RgbImage::from_fn(w, h, |_, _| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let v = (state >> 16) as u8;
            image::Rgb([v, v.wrapping_mul(3), v.wrapping_add(77)])
        })
    }

    fn check_only_mask_changed(style: Style, shape: Shape) {
        let before = noise(200, 160);
        let mut after = before.clone();
        let face = FaceBox { x1: 60.0, y1: 40.0, x2: 120.0, y2: 110.0 };
        let options = RedactOptions { style, shape, mask_scale: 1.3 };
        redact(&mut after, &[face], &options);
        let mask = Mask::for_face(&face, &options, 200, 160);
        let full = face.scaled(1.3);
        let (mut inside, mut changed_inside) = (0, 0);
        for (x, y, p) in after.enumerate_pixels() {
            if mask.covers(x, y, &full) {
                inside += 1;
                changed_inside += usize::from(p != before.get_pixel(x, y));
            } else {
                assert_eq!(p, before.get_pixel(x, y), "{style:?} changed ({x},{y}) outside the mask");
            }
        }
        assert!(changed_inside * 10 > inside * 9, "{style:?}: only {changed_inside} of {inside} changed");
    }

    #[test]
    fn every_style_changes_the_mask_and_nothing_else() {
        for style in [Style::Blur, Style::Pixelate, Style::Fill] {
            check_only_mask_changed(style, Shape::Ellipse);
            check_only_mask_changed(style, Shape::Box);
        }
    }

    #[test]
    fn gaussian_keeps_flat_areas_and_mean() {
        let (w, h) = (40, 30);
        let mut flat = vec![100f32; w * h * 3];
        gaussian(&mut flat, w, h, 3.0);
        assert!(flat.iter().all(|v| (v - 100.0).abs() < 1e-3));
        let mut spike = vec![0f32; w * h * 3];
        spike[(15 * w + 20) * 3] = 1000.0;
        gaussian(&mut spike, w, h, 2.0);
        let total: f32 = spike.iter().step_by(3).sum();
        assert!((total - 1000.0).abs() < 1.0, "blur must preserve energy, got {total}");
        assert!(spike[(15 * w + 20) * 3] < 1000.0 / (2.0 * std::f32::consts::PI * 4.0) * 1.05);
    }

    #[test]
    fn row_spans_are_exactly_the_covered_pixels() {
        let mut state = 7u32;
        let mut next = |m: f32| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (state >> 8) as f32 / (1u32 << 24) as f32 * m
        };
        for i in 0..300 {
            let (x1, y1) = (next(150.0) - 20.0, next(150.0) - 20.0);
            let face = FaceBox { x1, y1, x2: x1 + 1.0 + next(90.0), y2: y1 + 1.0 + next(90.0) };
            let shape = if i % 2 == 0 { Shape::Ellipse } else { Shape::Box };
            let options = RedactOptions { shape, mask_scale: 1.0 + next(0.6), ..Default::default() };
            let mask = Mask::for_face(&face, &options, 160, 140);
            let full = options.mask_box(&face);
            for y in 0..140 {
                let span = mask.row_span(y, &full);
                for x in 0..160 {
                    assert_eq!(
                        span.contains(&x),
                        mask.covers(x, y, &full),
                        "{face:?} {shape:?} at ({x},{y}): {span:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn redacting_from_a_preview_matches_redacting_in_full() {
        // A smooth photo: its half-size preview loses nothing a blur keeps.
        let photo = RgbImage::from_fn(240, 200, |x, y| image::Rgb([(x / 2 + y / 2) as u8, x as u8, (255 - y) as u8]));
        let faces = [
            FaceBox { x1: 60.0, y1: 40.0, x2: 130.0, y2: 130.0 },
            FaceBox { x1: 150.0, y1: 90.0, x2: 200.0, y2: 150.0 },
        ];
        for style in [Style::Blur, Style::Pixelate, Style::Fill] {
            let options = RedactOptions { style, ..Default::default() };
            let mut expected = photo.clone();
            redact(&mut expected, &faces, &options);
            let mut preview = image::imageops::resize(&photo, 120, 100, image::imageops::FilterType::Triangle);
            let (ox, oy) = (32, 16);
            let mut patch = image::imageops::crop_imm(&photo, ox, oy, 208, 184).to_image();
            redact_from_preview(&mut patch, (ox, oy), &mut preview, (240, 200), &faces, &options);
            let (mut changed, mut worst) = (0, 0);
            for (x, y, p) in patch.enumerate_pixels() {
                let (e, o) = (expected.get_pixel(x + ox, y + oy), photo.get_pixel(x + ox, y + oy));
                changed += usize::from(p != o);
                let d = (0..3).map(|c| (p[c] as i32 - e[c] as i32).abs()).max().unwrap();
                worst = worst.max(d);
                let masked = faces
                    .iter()
                    .any(|f| Mask::for_face(f, &options, 240, 200).covers(x + ox, y + oy, &options.mask_box(f)));
                if !masked {
                    assert_eq!(p, o, "{style:?} changed ({x},{y}) outside the masks");
                }
            }
            assert!(changed > 5000, "{style:?}: only {changed} pixels changed");
            // Pixel blocks may start a pixel or two apart: a block's worth of gradient.
            let limit = if style == Style::Pixelate { 30 } else { 4 };
            assert!(worst <= limit, "{style:?}: differs from the full-size redaction by {worst}");
        }
    }

    #[test]
    fn ellipse_is_inscribed_in_the_scaled_box() {
        let face = FaceBox { x1: 0.0, y1: 0.0, x2: 100.0, y2: 100.0 };
        let options = RedactOptions { mask_scale: 1.0, ..Default::default() };
        let mask = Mask::for_face(&face, &options, 100, 100);
        assert!(mask.covers(50, 50, &face));
        assert!(mask.covers(50, 1, &face));
        assert!(!mask.covers(2, 2, &face));
        assert!(!mask.covers(97, 97, &face));
    }
}
