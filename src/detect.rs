//! Face detection with CenterFace through ONNX Runtime.
//!
//! Two passes: the whole photo scaled so its long side fits `max_side` (finds every face of
//! ordinary size), then, for photos larger than that, overlapping tiles at native resolution
//! (finds the small faces at the back of a group photo that the scaled pass loses).

use std::path::Path;

use image::RgbImage;
use ndarray::Array4;
use ort::environment::Environment;
use ort::value::TensorRef;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::models::{Device, SessionPool};

/// Axis-aligned face box in image pixels, `x2`/`y2` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FaceBox {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

impl FaceBox {
    pub fn width(&self) -> f32 {
        (self.x2 - self.x1).max(0.0)
    }
    pub fn height(&self) -> f32 {
        (self.y2 - self.y1).max(0.0)
    }
    pub fn area(&self) -> f32 {
        self.width() * self.height()
    }
    pub fn intersection(&self, o: &FaceBox) -> f32 {
        let w = (self.x2.min(o.x2) - self.x1.max(o.x1)).max(0.0);
        let h = (self.y2.min(o.y2) - self.y1.max(o.y1)).max(0.0);
        w * h
    }
    pub fn iou(&self, o: &FaceBox) -> f32 {
        let inter = self.intersection(o);
        let union = self.area() + o.area() - inter;
        if union > 0.0 { inter / union } else { 0.0 }
    }
    /// Scaled about its centre (the redaction mask is larger than the detected box).
    pub fn scaled(&self, factor: f32) -> FaceBox {
        let (cx, cy) = ((self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0);
        let (hw, hh) = (self.width() * factor / 2.0, self.height() * factor / 2.0);
        FaceBox { x1: cx - hw, y1: cy - hh, x2: cx + hw, y2: cy + hh }
    }
    pub fn clipped(&self, width: u32, height: u32) -> FaceBox {
        let (w, h) = (width as f32, height as f32);
        FaceBox {
            x1: self.x1.clamp(0.0, w),
            y1: self.y1.clamp(0.0, h),
            x2: self.x2.clamp(0.0, w),
            y2: self.y2.clamp(0.0, h),
        }
    }
    pub(crate) fn mapped(&self, sx: f32, sy: f32, dx: f32, dy: f32) -> FaceBox {
        FaceBox { x1: self.x1 * sx + dx, y1: self.y1 * sy + dy, x2: self.x2 * sx + dx, y2: self.y2 * sy + dy }
    }
}

/// The detector's five points: left eye, right eye, nose, left and right mouth corner.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Landmarks(pub [[f32; 2]; 5]);

impl Landmarks {
    fn mapped(&self, sx: f32, sy: f32, dx: f32, dy: f32) -> Landmarks {
        Landmarks(self.0.map(|[x, y]| [x * sx + dx, y * sy + dy]))
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    pub bbox: FaceBox,
    pub score: f32,
    pub landmarks: Landmarks,
}

impl Detection {
    fn mapped(&self, sx: f32, sy: f32, dx: f32, dy: f32) -> Detection {
        Detection {
            bbox: self.bbox.mapped(sx, sy, dx, dy),
            score: self.score,
            landmarks: self.landmarks.mapped(sx, sy, dx, dy),
        }
    }
}

/// What the first pass over a preview found.
#[derive(Debug, Clone)]
pub enum FirstPass {
    /// Every face: the tiled pass is not needed.
    Done(Vec<Detection>),
    /// The faces found so far; the photo also needs the tiled pass at full resolution.
    NeedsTiles(Vec<Detection>),
}

/// The tiled native-resolution pass.
#[derive(Debug, Clone, Copy)]
pub struct Tiling {
    /// Tile side in pixels (a multiple of 32).
    pub size: u32,
    /// Overlap between neighbouring tiles: faces up to this size always lie whole inside a tile.
    pub overlap: u32,
    pub when: TileWhen,
}

/// When the tiled pass runs on a photo larger than `max_side`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TileWhen {
    /// Always: every large photo costs about one full-resolution inference more.
    Always,
    /// Unless the first pass found faces and every one of them is large: a close-up has no
    /// crowd too small to see. Photos with no face or with small faces get the tiles.
    Auto,
}

impl Default for Tiling {
    fn default() -> Self {
        Tiling { size: 1024, overlap: 160, when: TileWhen::Auto }
    }
}

/// In `TileWhen::Auto`, a face shorter than this in the first pass's scaled photo suggests
/// that smaller ones, below what that pass can see (about 10 px), may be there too.
pub const SMALL_FACE_AT_FIRST_PASS: f32 = 40.0;

#[derive(Debug, Clone)]
pub struct DetectorOptions {
    /// Minimum heatmap score for a face.
    pub threshold: f32,
    /// The whole-image pass scales the photo down so its long side is at most this.
    pub max_side: u32,
    /// `None` disables the second, tiled pass.
    pub tiling: Option<Tiling>,
    /// Sessions that can run at once (one per pipeline worker).
    pub sessions: usize,
    /// ONNX Runtime intra-op threads per session.
    pub threads_per_session: usize,
    pub device: Device,
}

impl Default for DetectorOptions {
    fn default() -> Self {
        DetectorOptions {
            threshold: DEFAULT_THRESHOLD,
            max_side: 1280,
            tiling: Some(Tiling::default()),
            sessions: 1,
            threads_per_session: 1,
            device: Device::Cpu,
        }
    }
}

pub const DEFAULT_THRESHOLD: f32 = 0.3;
/// The reference decoder's NMS overlap.
const NMS_IOU: f32 = 0.3;
/// When merging passes, a box mostly inside a stronger one is the same face.
const MERGE_CONTAINMENT: f32 = 0.6;
const STRIDE: usize = 4;
const INPUT: &str = "input.1";
const OUTPUTS: [&str; 4] = ["537", "538", "539", "540"];

pub struct Detector {
    sessions: SessionPool,
    options: DetectorOptions,
}

impl Detector {
    pub fn try_new(env: &Environment, model: &Path, options: DetectorOptions) -> Result<Self> {
        if options.tiling.is_some_and(|t| t.size % 32 != 0 || t.overlap >= t.size) {
            return Err(Error::Usage("tile size must be a multiple of 32 and larger than the overlap".into()));
        }
        let sessions =
            SessionPool::new(env, model, options.sessions, options.threads_per_session, options.device, &[])?;
        Ok(Detector { sessions, options })
    }

    pub fn options(&self) -> &DetectorOptions {
        &self.options
    }

    /// All faces in the photo, strongest first, in the photo's pixel coordinates.
    pub fn detect(&self, img: &RgbImage) -> Result<Vec<Detection>> {
        self.detect_traced(img, &mut Vec::new())
    }

    /// [`Detector::detect`], also listing the (height, width) of every network input it ran,
    /// so benchmarks can time the inference alone on the same shapes.
    pub fn detect_traced(&self, img: &RgbImage, shapes: &mut Vec<(usize, usize)>) -> Result<Vec<Detection>> {
        let (w, h) = img.dimensions();
        let found = self.first_pass(img, w, h, shapes)?;
        match self.tiling_for(&found, w, h) {
            Some(tiling) => self.tiled_pass(img, found, tiling, shapes),
            None => Ok(clipped(found, w, h)),
        }
    }

    /// The first pass on `preview`, a reduced copy of a `w`×`h` photo whose long side is at
    /// least `max_side` (or the photo itself); detections in the photo's coordinates.
    pub fn detect_preview(&self, preview: &RgbImage, w: u32, h: u32) -> Result<FirstPass> {
        let found = self.first_pass(preview, w, h, &mut Vec::new())?;
        Ok(match self.tiling_for(&found, w, h) {
            Some(_) => FirstPass::NeedsTiles(found),
            None => FirstPass::Done(clipped(found, w, h)),
        })
    }

    /// Completes [`Detector::detect_preview`]'s `NeedsTiles` with the tiled pass over the photo
    /// at full resolution.
    pub fn detect_tiles(&self, img: &RgbImage, first: Vec<Detection>) -> Result<Vec<Detection>> {
        let tiling = self.options.tiling.ok_or_else(|| Error::Usage("tiling is off".into()))?;
        self.tiled_pass(img, first, tiling, &mut Vec::new())
    }

    fn tiled_pass(&self, img: &RgbImage, mut found: Vec<Detection>, tiling: Tiling, shapes: &mut Vec<(usize, usize)>) -> Result<Vec<Detection>> {
        let (w, h) = img.dimensions();
        for (tx, ty, tw, th) in tiles(w, h, tiling) {
            let inner = |d: &Detection| {
                // A box cut by an inner tile edge is a partial face; the overlap guarantees
                // that a neighbouring tile holds it whole.
                let b = &d.bbox;
                (tx == 0 || b.x1 > 1.0)
                    && (ty == 0 || b.y1 > 1.0)
                    && (tx + tw == w || b.x2 < tw as f32 - 1.0)
                    && (ty + th == h || b.y2 < th as f32 - 1.0)
            };
            let tile_dets = self.run(img, tx, ty, tw, th, shapes)?;
            found.extend(tile_dets.iter().filter(|d| inner(d)).map(|d| d.mapped(1.0, 1.0, tx as f32, ty as f32)));
        }
        Ok(clipped(merge(found), w, h))
    }

    /// The whole-photo pass: `img` (the `w`×`h` photo, or a copy of it at another size) scaled
    /// so its long side is at most `max_side`; detections in the photo's coordinates.
    fn first_pass(&self, img: &RgbImage, w: u32, h: u32, shapes: &mut Vec<(usize, usize)>) -> Result<Vec<Detection>> {
        let s = (self.options.max_side as f32 / w.max(h) as f32).min(1.0);
        let (sw, sh) = (((w as f32 * s).round() as u32).max(1), ((h as f32 * s).round() as u32).max(1));
        let small;
        let input = if img.dimensions() == (sw, sh) {
            img
        } else {
            small = downscale(img, sw, sh);
            &small
        };
        let (sx, sy) = (w as f32 / sw as f32, h as f32 / sh as f32);
        Ok(self.run(input, 0, 0, sw, sh, shapes)?.into_iter().map(|d| d.mapped(sx, sy, 0.0, 0.0)).collect())
    }

    /// The tiling to run after a first pass that `found` these faces, if any.
    fn tiling_for(&self, found: &[Detection], w: u32, h: u32) -> Option<Tiling> {
        let long = w.max(h);
        let first_pass_scale = self.options.max_side as f32 / long as f32;
        let needs_tiles = |t: &Tiling| match t.when {
            TileWhen::Always => true,
            TileWhen::Auto => {
                found.is_empty() || found.iter().any(|d| d.bbox.height() * first_pass_scale < SMALL_FACE_AT_FIRST_PASS)
            }
        };
        self.options.tiling.filter(|t| long > self.options.max_side && needs_tiles(t))
    }

    /// One inference over a region of `img`, padded to multiples of 32; detections in region
    /// coordinates.
    fn run(&self, img: &RgbImage, x0: u32, y0: u32, w: u32, h: u32, shapes: &mut Vec<(usize, usize)>) -> Result<Vec<Detection>> {
        let input = to_chw(img, x0, y0, w, h);
        shapes.push((input.shape()[2], input.shape()[3]));
        let mut session = self.sessions.get();
        let outputs = session.run(ort::inputs![INPUT => TensorRef::from_array_view(input.view())?])?;
        let mut maps = Vec::with_capacity(4);
        for name in OUTPUTS {
            let (shape, data) = outputs[name].try_extract_tensor::<f32>()?;
            maps.push((shape.to_vec(), data));
        }
        let (gh, gw) = (maps[0].0[2] as usize, maps[0].0[3] as usize);
        if maps.iter().any(|(s, _)| s.len() != 4 || s[2] as usize != gh || s[3] as usize != gw) {
            return Err(Error::Ort("unexpected CenterFace output shapes".into()));
        }
        let grid = Grid { w: gw, h: gh, heat: maps[0].1, scale: maps[1].1, offset: maps[2].1, landmarks: maps[3].1 };
        Ok(decode(&grid, self.options.threshold, w as f32, h as f32))
    }
}

/// Boxes clipped to the photo; boxes left with no area dropped.
fn clipped(mut found: Vec<Detection>, w: u32, h: u32) -> Vec<Detection> {
    for d in &mut found {
        d.bbox = d.bbox.clipped(w, h);
    }
    found.retain(|d| d.bbox.area() > 0.0);
    found
}

/// Runs the network once on a zero input of the given padded size: inference alone, for
/// benchmarks that separate it from the pipeline around it.
pub fn infer_only(detector: &Detector, height: usize, width: usize) -> Result<()> {
    let input = Array4::<f32>::zeros((1, 3, height, width));
    let mut session = detector.sessions.get();
    session.run(ort::inputs![INPUT => TensorRef::from_array_view(input.view())?])?;
    Ok(())
}

/// SIMD bilinear downscale (the detector's input needs no finer filter).
fn downscale(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
    let mut out = RgbImage::new(w, h);
    Resizer::new()
        .resize(img, &mut out, &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear)))
        .expect("source and destination are both RGB8");
    out
}

/// The network's four output maps, each channel-major over a `h`×`w` grid (stride 4).
pub struct Grid<'a> {
    pub w: usize,
    pub h: usize,
    pub heat: &'a [f32],
    pub scale: &'a [f32],
    pub offset: &'a [f32],
    pub landmarks: &'a [f32],
}

/// CenterFace decoding as the reference does it: every heatmap cell above the threshold is a
/// candidate centre, `exp(scale)*4` its size, landmarks relative to the box; then NMS.
pub fn decode(g: &Grid, threshold: f32, width: f32, height: f32) -> Vec<Detection> {
    let plane = g.w * g.h;
    let mut dets = Vec::new();
    for (i, &score) in g.heat[..plane].iter().enumerate() {
        if score <= threshold {
            continue;
        }
        let (r, c) = ((i / g.w) as f32, (i % g.w) as f32);
        let s = STRIDE as f32;
        let bh = g.scale[i].exp() * s;
        let bw = g.scale[plane + i].exp() * s;
        let (oy, ox) = (g.offset[i], g.offset[plane + i]);
        let x1 = ((c + ox + 0.5) * s - bw / 2.0).max(0.0).min(width);
        let y1 = ((r + oy + 0.5) * s - bh / 2.0).max(0.0).min(height);
        let bbox = FaceBox { x1, y1, x2: (x1 + bw).min(width), y2: (y1 + bh).min(height) };
        let mut lm = [[0.0f32; 2]; 5];
        for (j, p) in lm.iter_mut().enumerate() {
            p[0] = g.landmarks[(2 * j + 1) * plane + i] * bw + x1;
            p[1] = g.landmarks[2 * j * plane + i] * bh + y1;
        }
        dets.push(Detection { bbox, score, landmarks: Landmarks(lm) });
    }
    nms(dets, |a, b| a.iou(b) >= NMS_IOU, false)
}

/// Greedy non-maximum suppression: strongest first, drop what `same` says duplicates it. With
/// `absorb`, the kept box grows to cover what it suppressed, so no part of a face seen by either
/// pass is left outside the mask.
fn nms(mut dets: Vec<Detection>, same: impl Fn(&FaceBox, &FaceBox) -> bool, absorb: bool) -> Vec<Detection> {
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut keep: Vec<Detection> = Vec::with_capacity(dets.len());
    for d in dets {
        match keep.iter_mut().find(|k| same(&k.bbox, &d.bbox)) {
            Some(k) if absorb => {
                let b = &mut k.bbox;
                (b.x1, b.y1, b.x2, b.y2) =
                    (b.x1.min(d.bbox.x1), b.y1.min(d.bbox.y1), b.x2.max(d.bbox.x2), b.y2.max(d.bbox.y2));
            }
            Some(_) => {}
            None => keep.push(d),
        }
    }
    keep
}

/// Joins the passes: the same face seen twice overlaps, or one box sits inside the other.
fn merge(dets: Vec<Detection>) -> Vec<Detection> {
    let same = |a: &FaceBox, b: &FaceBox| {
        a.iou(b) >= NMS_IOU || a.intersection(b) >= MERGE_CONTAINMENT * a.area().min(b.area())
    };
    nms(dets, same, true)
}

/// Tile rectangles covering a `w`×`h` image with at least `overlap` pixels shared between
/// neighbours.
pub fn tiles(w: u32, h: u32, t: Tiling) -> Vec<(u32, u32, u32, u32)> {
    let starts = |len: u32| -> Vec<u32> {
        if len <= t.size {
            return vec![0];
        }
        let n = (len - t.overlap).div_ceil(t.size - t.overlap);
        let span = (len - t.size) as f64;
        (0..n).map(|i| (span * i as f64 / (n - 1) as f64).round() as u32).collect()
    };
    let (xs, ys) = (starts(w), starts(h));
    ys.iter()
        .flat_map(|&y| xs.iter().map(move |&x| (x, y, t.size.min(w - x), t.size.min(h - y))))
        .collect()
}

/// RGB region → 1×3×H×W float tensor (0..255), zero-padded to multiples of 32.
pub fn to_chw(img: &RgbImage, x0: u32, y0: u32, w: u32, h: u32) -> Array4<f32> {
    let (pw, ph) = (w.div_ceil(32) as usize * 32, h.div_ceil(32) as usize * 32);
    let mut t = Array4::<f32>::zeros((1, 3, ph, pw));
    let stride = img.width() as usize * 3;
    let raw = img.as_raw();
    let plane = ph * pw;
    let out = t.as_slice_mut().expect("fresh array is contiguous");
    for y in 0..h as usize {
        let row = &raw[(y0 as usize + y) * stride + x0 as usize * 3..][..w as usize * 3];
        let o = y * pw;
        for (x, px) in row.chunks_exact(3).enumerate() {
            out[o + x] = px[0] as f32;
            out[plane + o + x] = px[1] as f32;
            out[2 * plane + o + x] = px[2] as f32;
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_the_image_with_overlap() {
        let t = Tiling { size: 1024, overlap: 160, when: TileWhen::Always };
        let rects = tiles(4000, 3000, t);
        assert_eq!(rects.len(), 5 * 4);
        for x in 0..4000 {
            assert!(rects.iter().any(|r| r.0 <= x && x < r.0 + r.2));
        }
        let mut xs: Vec<u32> = rects.iter().map(|r| r.0).collect();
        xs.dedup();
        for pair in xs.windows(2) {
            assert!(pair[0] + 1024 - pair[1] >= 160, "overlap too small: {pair:?}");
        }
        assert_eq!(tiles(800, 600, t), vec![(0, 0, 800, 600)]);
    }

    #[test]
    fn decode_places_box_and_landmarks_like_the_reference() {
        // One hot cell at row 2, col 3 of a 8x8 grid: centre ((3+0.5)*4, (2+0.5)*4) = (14, 10).
        let (w, h) = (8usize, 8usize);
        let plane = w * h;
        let mut heat = vec![0.0; plane];
        heat[2 * w + 3] = 0.9;
        let scale = vec![(2.0f32).ln(); 2 * plane]; // exp(ln 2)*4 = 8 px
        let offset = vec![0.0; 2 * plane];
        let mut landmarks = vec![0.0; 10 * plane];
        landmarks[plane + 2 * w + 3] = 0.25; // left eye x: 0.25 of the width
        landmarks[2 * w + 3] = 0.5; // left eye y: half the height
        let g = Grid { w, h, heat: &heat, scale: &scale, offset: &offset, landmarks: &landmarks };
        let d = decode(&g, 0.5, 32.0, 32.0);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].bbox, FaceBox { x1: 10.0, y1: 6.0, x2: 18.0, y2: 14.0 });
        assert_eq!(d[0].landmarks.0[0], [12.0, 10.0]);
        assert_eq!(d[0].landmarks.0[1], [10.0, 6.0]);
    }

    #[test]
    fn merge_keeps_the_stronger_of_nested_boxes_and_covers_both() {
        let mk = |x1, y1, x2, y2, score| Detection {
            bbox: FaceBox { x1, y1, x2, y2 },
            score,
            landmarks: Landmarks([[0.0; 2]; 5]),
        };
        let out = merge(vec![mk(0.0, 0.0, 100.0, 100.0, 0.6), mk(10.0, 10.0, 40.0, 40.0, 0.9), mk(200.0, 0.0, 220.0, 20.0, 0.5)]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].score, 0.9);
        assert_eq!(out[0].bbox, FaceBox { x1: 0.0, y1: 0.0, x2: 100.0, y2: 100.0 });
    }
}
