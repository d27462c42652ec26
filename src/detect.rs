//! Face detection with CenterFace through ONNX Runtime.
//!
//! Several passes, fused: the whole photo scaled so its long side fits `max_side` (faces of
//! ordinary size), native-resolution tiles for photos larger than that, and, unless the
//! `fast` preset is chosen, a mirrored copy, a half-size copy (very large faces) and ×2 / ×3
//! zoomed tiles (faces of a few pixels, which CenterFace finds far more often when they are
//! larger in its input). See [`Speed`] and [`Detector::plan`].

use std::path::Path;

use image::RgbImage;
use ndarray::Array4;
use ort::environment::Environment;
use ort::value::TensorRef;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::models::{Device, ModelKind, SessionPool};

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
        if union > 0.0 {
            inter / union
        } else {
            0.0
        }
    }
    /// Scaled about its centre (the redaction mask is larger than the detected box).
    pub fn scaled(&self, factor: f32) -> FaceBox {
        let (cx, cy) = ((self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0);
        let (hw, hh) = (self.width() * factor / 2.0, self.height() * factor / 2.0);
        FaceBox { x1: cx - hw, y1: cy - hh, x2: cx + hw, y2: cy + hh }
    }
    /// Whether any of it lies in a `width`×`height` frame (a track predicted wholly outside has
    /// left it).
    pub fn touches(&self, width: u32, height: u32) -> bool {
        self.x2 > 0.0 && self.y2 > 0.0 && self.x1 < width as f32 && self.y1 < height as f32
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
    /// Scaled by (sx, sy) about the origin, then moved by (dx, dy).
    pub fn mapped(&self, sx: f32, sy: f32, dx: f32, dy: f32) -> FaceBox {
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
    /// Box and points scaled by (sx, sy) about the origin, then moved by (dx, dy): from a
    /// reduced picture's pixels to the frame's, for one.
    pub fn mapped(&self, sx: f32, sy: f32, dx: f32, dy: f32) -> Detection {
        Detection {
            bbox: self.bbox.mapped(sx, sy, dx, dy),
            score: self.score,
            landmarks: self.landmarks.mapped(sx, sy, dx, dy),
        }
    }
}

/// How hard the detector looks. Every preset runs every pass it lists on every photo: no pass
/// is skipped because of what another happened to find, and a zoomed pass skips only tiles in
/// which the finest whole-photo pass saw no candidate at all (score 0.05: on the WIDER FACE dev
/// set, 99.7% of the faces that zooming adds had such a candidate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Speed {
    /// The whole photo at `max_side`, plus native-resolution tiles for larger photos: one look
    /// at each scale, faces under about 16 px are often missed.
    Fast,
    /// `fast`, plus a mirrored copy, a half-size copy for very large faces, and ×2 and ×3 zoomed
    /// tiles for small faces, fused by averaging each face's score over the passes that could
    /// see it.
    #[default]
    Balanced,
    /// `balanced`, plus mirrored zoomed tiles and the photo turned by 90°, 180° and 270° (faces
    /// upside down or sideways in the pixels, with no EXIF tag to say so).
    Thorough,
}

impl Speed {
    /// The fused score a face needs at this preset with this model (`--threshold` overrides
    /// it). The int8 model's fused scores run a little higher on shadows: at 0.16 it has fewer
    /// false positives than fp32 at 0.15 on the WIDER dev set (28.5 against 31.7 a photo) at
    /// recall within 0.005 (see README, Detection).
    pub fn default_threshold(self, precision: Precision) -> f32 {
        match (self, precision) {
            (Speed::Fast, _) => SINGLE_PASS_THRESHOLD,
            (Speed::Balanced | Speed::Thorough, Precision::Fp32) => FUSED_THRESHOLD,
            (Speed::Balanced | Speed::Thorough, Precision::Int8) => FUSED_THRESHOLD_INT8,
        }
    }
}

/// Which CenterFace the detector runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// The original model.
    Fp32,
    /// Quantised (uint8 activations, int8 weights, the first 10 Conv layers in fp32): ~1.5x
    /// faster; on the WIDER dev set as good as fp32 at `balanced` (recall within 0.005 on every
    /// level), 0.010 less hard recall at `fast`.
    #[default]
    Int8,
}

impl Precision {
    /// The model this precision runs.
    pub fn model(self) -> ModelKind {
        match self {
            Precision::Fp32 => ModelKind::CenterFace,
            Precision::Int8 => ModelKind::CenterFaceInt8,
        }
    }
}

/// Native-resolution tiles for photos larger than `max_side`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiling {
    /// Tile side in network input pixels (a multiple of 32).
    pub size: u32,
    /// Overlap between neighbouring tiles: faces up to this size always lie whole inside a tile.
    pub overlap: u32,
}

impl Default for Tiling {
    fn default() -> Self {
        Tiling { size: 1024, overlap: 160 }
    }
}

#[derive(Debug, Clone)]
pub struct DetectorOptions {
    pub speed: Speed,
    /// Minimum fused score for a face; `None`: the preset's.
    pub threshold: Option<f32>,
    /// Which model to load.
    pub precision: Precision,
    /// The whole-photo pass scales the photo down so its long side is at most this.
    pub max_side: u32,
    /// `None` disables the native-resolution pass over photos larger than `max_side` (and the
    /// zoomed passes then zoom the scaled photo).
    pub tiling: Option<Tiling>,
    /// Sessions that can run at once (one per pipeline worker).
    pub sessions: usize,
    /// ONNX Runtime intra-op threads per session.
    pub threads_per_session: usize,
    pub device: Device,
    /// How the zoomed passes choose where to look.
    pub zoom_looks: ZoomLooks,
    /// Which of `balanced`'s extra passes run (all by default; for ablation studies).
    pub extras: Extras,
}

/// The passes `balanced` and `thorough` add to `fast`, each of which can be left out to
/// measure what it adds (`examples/detect_ablation.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extras {
    /// A mirrored copy of the overview.
    pub mirror: bool,
    /// A half-size copy of the overview, for very large faces.
    pub half: bool,
    /// The ×2 and ×3 zoomed looks at small faces.
    pub zooms: [bool; 2],
}

impl Default for Extras {
    fn default() -> Self {
        Extras { mirror: true, half: true, zooms: [true; 2] }
    }
}

/// How a zoomed pass chooses where to look. Either way it looks only where the base pass saw a
/// candidate: the zoomed passes confirm and sharpen faces the network already half-sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ZoomLooks {
    /// A small zoomed crop around each candidate, many crops of one shape per network run: the
    /// work grows with the number of candidates, not with the photo's area.
    Crops,
    /// Zoomed tiles covering the photo, each run when a candidate lies in it.
    #[default]
    Tiles,
    /// Crops or tiles, whichever reads fewer network pixels on this photo.
    Fewest,
}

impl Default for DetectorOptions {
    fn default() -> Self {
        DetectorOptions {
            speed: Speed::default(),
            threshold: None,
            precision: Precision::default(),
            max_side: 1280,
            tiling: Some(Tiling::default()),
            sessions: 1,
            threads_per_session: 1,
            device: Device::Cpu,
            zoom_looks: ZoomLooks::default(),
            extras: Extras::default(),
        }
    }
}

/// What a run's detection was set to, as its report records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectionSettings {
    pub speed: Speed,
    /// The score a face needed.
    pub threshold: f32,
    /// Absent in reports of older versions, which all ran fp32.
    #[serde(default = "older_precision")]
    pub precision: Precision,
    pub max_side: u32,
    /// Whether photos larger than `max_side` were also read in native-resolution tiles.
    pub tiles: bool,
}

fn older_precision() -> Precision {
    Precision::Fp32
}

impl DetectorOptions {
    pub fn settings(&self) -> DetectionSettings {
        DetectionSettings {
            speed: self.speed,
            threshold: self.threshold(),
            precision: self.precision,
            max_side: self.max_side,
            tiles: self.tiling.is_some(),
        }
    }

    pub fn with_speed(mut self, speed: Speed) -> Self {
        self.speed = speed;
        self
    }

    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }

    /// The threshold in force.
    pub fn threshold(&self) -> f32 {
        self.threshold.unwrap_or(self.speed.default_threshold(self.precision))
    }
}

/// One look at the photo: a copy at `scale`, maybe mirrored or turned, trusted for faces
/// whose height in the copy lies in `faces`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Pass {
    /// Network input pixels per photo pixel.
    pub scale: f32,
    pub flip: bool,
    /// Clockwise quarter turns of the copy.
    pub quarter_turns: u8,
    /// Face heights (in the copy's pixels) this pass finds reliably: smaller faces are left to
    /// finer passes, larger ones to coarser passes or are cut by tile edges.
    pub faces: (f32, f32),
    /// Runs only on the tiles where the base pass saw a candidate.
    pub gated: bool,
}

impl Pass {
    fn whole(scale: f32) -> Pass {
        Pass { scale, flip: false, quarter_turns: 0, faces: (0.0, f32::INFINITY), gated: false }
    }

    /// Does this pass see a face `height` photo pixels tall? A margin either side: the size
    /// windows are soft.
    fn sees(&self, height: f32) -> bool {
        let h = height * self.scale;
        h >= self.faces.0 * 0.8 && h <= self.faces.1 * 1.25
    }
}

/// The fused score a face needs by default with several passes. On the WIDER FACE dev set
/// (55 crowd photos) `balanced` at 0.15 found 0.87 of the hard faces; 0.2 would find 0.85
/// with a third fewer false positives, most of them unannotated real faces.
pub const FUSED_THRESHOLD: f32 = 0.15;
/// [`FUSED_THRESHOLD`] with the int8 model.
pub const FUSED_THRESHOLD_INT8: f32 = 0.16;
/// The heatmap score a face needs with one pass (`fast`; the reference decoder uses 0.2).
pub const SINGLE_PASS_THRESHOLD: f32 = 0.3;
/// Heatmap score of a candidate that opens a zoomed tile.
const PROPOSAL_SCORE: f32 = 0.05;
/// Heatmap score below which a pass's detection takes no part in fusion.
const CANDIDATE_SCORE: f32 = 0.1;
/// A face found only in a turned copy needs this score there (it has no other pass to
/// confirm it).
const TURNED_SCORE: f32 = 0.5;
/// Detections of different passes overlapping this much are the same face.
const CLUSTER_IOU: f32 = 0.4;
/// Smallest face, in the copy's pixels, that the half-size and overview copies are trusted
/// for when a finer pass covers the photo.
const COARSE_MIN_FACE: f32 = 24.0;
/// The zoomed passes and the largest face (in the zoomed copy's pixels) each is trusted for.
const ZOOMS: [(f32, f32); 2] = [(2.0, 160.0), (3.0, 120.0)];
/// The reference decoder's NMS overlap.
const NMS_IOU: f32 = 0.3;
/// When merging passes, a box mostly inside a stronger one is the same face.
const MERGE_CONTAINMENT: f32 = 0.6;
const STRIDE: usize = 4;
/// Copy pixels from an inner edge of a tile or crop within which a face counts as cut by it.
const EDGE_MARGIN: f32 = 2.0;
const INPUT: &str = "input.1";
const OUTPUTS: [&str; 4] = ["537", "538", "539", "540"];

/// What one pass found and where it looked.
struct View {
    pass: Pass,
    /// Photo rectangles the pass ran over.
    covered: Vec<FaceBox>,
    /// Its detections in photo coordinates, in its size window.
    found: Vec<Detection>,
}

pub struct Detector {
    sessions: SessionPool,
    options: DetectorOptions,
}

impl Detector {
    pub fn try_new(env: &Environment, model: &Path, options: DetectorOptions) -> Result<Self> {
        if options.tiling.is_some_and(|t| t.size % 32 != 0 || t.overlap >= t.size) {
            return Err(Error::InvalidSetting {
                name: "tile size",
                problem: "must be a multiple of 32 and larger than the overlap",
            });
        }
        let sessions =
            SessionPool::new(env, model, options.sessions, options.threads_per_session, options.device, &[])?;
        Ok(Detector { sessions, options })
    }

    pub fn options(&self) -> &DetectorOptions {
        &self.options
    }

    /// The passes run over a `w`×`h` photo. The first is the overview (the whole photo at
    /// `max_side`); the base pass, whose candidates open the zoomed tiles, is the finest
    /// ungated one.
    pub fn plan(&self, w: u32, h: u32) -> Vec<Pass> {
        plan(&self.options, w, h)
    }

    /// All faces in the photo, strongest first, in the photo's pixel coordinates.
    pub fn detect(&self, img: &RgbImage) -> Result<Vec<Detection>> {
        self.detect_traced(img, None, &mut DetectionWork::default())
    }

    /// [`Detector::detect`] with `preview`, a reduced copy of `img` (a JPEG's DCT-scaled
    /// decode) that the coarse passes read instead of scaling `img` down again.
    pub fn detect_with_preview(&self, img: &RgbImage, preview: Option<&RgbImage>) -> Result<Vec<Detection>> {
        self.detect_traced(img, preview, &mut DetectionWork::default())
    }

    /// [`Detector::detect_with_preview`], adding to `work` what the network ran: passes, the
    /// shape of every run, input pixels and inference time.
    pub fn detect_traced(
        &self,
        img: &RgbImage,
        preview: Option<&RgbImage>,
        work: &mut DetectionWork,
    ) -> Result<Vec<Detection>> {
        self.detect_with(img, preview, work, self.options.zoom_looks, &[])
    }

    fn detect_with(
        &self,
        img: &RgbImage,
        preview: Option<&RgbImage>,
        work: &mut DetectionWork,
        zoom_looks: ZoomLooks,
        known: &[FaceBox],
    ) -> Result<Vec<Detection>> {
        let (w, h) = img.dimensions();
        let passes = self.plan(w, h);
        // The finest upright pass over the whole photo: its candidates open the zoomed looks.
        let base = (0..passes.len())
            .filter(|&i| !passes[i].gated && !passes[i].flip && passes[i].quarter_turns == 0)
            .max_by(|&a, &b| passes[a].scale.total_cmp(&passes[b].scale))
            .unwrap_or(0);
        let mut views: Vec<View> = Vec::with_capacity(passes.len());
        let mut proposals = Vec::new();
        for (i, pass) in passes.iter().enumerate() {
            let source = preview.filter(|p| p.width() as f32 >= w as f32 * pass.scale - 0.5).unwrap_or(img);
            let view = self.look(source, (w, h), *pass, &proposals, zoom_looks, work)?;
            if i == base {
                let unknown = |p: &FaceBox| !known.iter().any(|k| k.iou(p) >= KNOWN_IOU);
                proposals = view.found.iter().map(|d| d.bbox).filter(unknown).collect();
            }
            work.passes += 1;
            views.push(view);
        }
        let threshold = self.options.threshold();
        let mut found = fuse(views);
        found.retain(|d| d.score >= threshold);
        Ok(clipped(merge(found), w, h))
    }

    /// [`Detector::detect_traced`] for a video frame searched whole: the same plan, with each
    /// zoomed look in crops or tiles, whichever reads fewer pixels ([`ZoomLooks::Fewest`]): a
    /// frame's faces are few, and its zoomed tiles would mostly read empty background.
    pub fn detect_frame(&self, img: &RgbImage, work: &mut DetectionWork) -> Result<Vec<Detection>> {
        self.detect_with(img, None, work, ZoomLooks::Fewest, &[])
    }

    /// [`Detector::detect_frame`] for a frame whose tracked faces are expected at `known`:
    /// each is looked at as [`Detector::detect_around`] looks (a small crop scaled to where
    /// CenterFace is surest, kept from [`TRACK_SCORE`]), and only the other candidates open
    /// the zoomed looks, which would otherwise re-read every known face at ×2 and ×3.
    pub fn detect_frame_tracked(
        &self,
        img: &RgbImage,
        known: &[FaceBox],
        work: &mut DetectionWork,
    ) -> Result<Vec<Detection>> {
        let mut found = self.detect_with(img, None, work, ZoomLooks::Fewest, known)?;
        if known.is_empty() {
            return Ok(found);
        }
        found.extend(self.detect_around(img, known, TRACK_SCORE, work)?);
        Ok(clipped(merge(found), img.width(), img.height()))
    }

    /// Faces near `boxes`, where faces are expected (a track's predicted box in a video
    /// frame): a crop around each box, scaled so that the face is about [`AROUND_FACE`] pixels
    /// tall, many crops of one shape per network run. Detections scoring at least `threshold`,
    /// merged, in the photo's pixels.
    pub fn detect_around(
        &self,
        img: &RgbImage,
        boxes: &[FaceBox],
        threshold: f32,
        work: &mut DetectionWork,
    ) -> Result<Vec<Detection>> {
        let size = img.dimensions();
        let mut copies: Vec<(Pass, Rect, RgbImage)> = boxes
            .iter()
            .map(|b| {
                let (pass, rect) = around(b, size);
                let out = (
                    ((rect.2 as f32 * pass.scale).round() as u32).max(1),
                    ((rect.3 as f32 * pass.scale).round() as u32).max(1),
                );
                (pass, rect, crop_scaled(img, size, rect, out))
            })
            .collect();
        copies.sort_by_key(|(_, _, c)| padded(c.dimensions()));
        let mut found = Vec::new();
        for group in copies.chunk_by(|a, b| padded(a.2.dimensions()) == padded(b.2.dimensions())) {
            for batch in group.chunks(batch_size(group[0].2.dimensions())) {
                let images: Vec<&RgbImage> = batch.iter().map(|(_, _, c)| c).collect();
                for ((pass, rect, copy), dets) in batch.iter().zip(self.run(&images, threshold, work)?) {
                    found.extend(self.placed(dets, *rect, copy.dimensions(), size, *pass));
                }
            }
        }
        work.passes += 1;
        Ok(clipped(merge(found), size.0, size.1))
    }

    /// Runs one pass over `src` (the `size` photo, or a reduced copy of it): over the whole
    /// photo when its copy fits `max_side`, else over tiles; a gated pass only where the base
    /// pass proposed a face it is trusted for (see [`ZoomLooks`]).
    fn look(
        &self,
        src: &RgbImage,
        size: (u32, u32),
        pass: Pass,
        proposals: &[FaceBox],
        zoom_looks: ZoomLooks,
        work: &mut DetectionWork,
    ) -> Result<View> {
        let (w, h) = size;
        let s = pass.scale;
        let copy_long = (w.max(h) as f32 * s).round() as u32;
        let rects = match self.options.tiling {
            Some(t) if pass.gated || copy_long > self.options.max_side => {
                let overlap = if pass.faces.1.is_finite() { (pass.faces.1 * 1.25) as u32 } else { t.overlap };
                let native =
                    Tiling { size: (t.size as f32 / s).floor() as u32, overlap: (overlap as f32 / s).ceil() as u32 };
                let rects = tiles(w, h, native);
                if pass.gated {
                    let opens = |r: &Rect| {
                        let rect = rect_box(*r);
                        proposals.iter().any(|p| pass.sees(p.height()) && p.intersection(&rect) >= p.area() * 0.99)
                    };
                    let opened: Vec<_> = rects.into_iter().filter(opens).collect();
                    match zoom_looks {
                        ZoomLooks::Tiles => opened,
                        ZoomLooks::Crops => crops(size, pass, proposals),
                        ZoomLooks::Fewest => {
                            let crops = crops(size, pass, proposals);
                            if pixels(&crops, s) < pixels(&opened, s) {
                                crops
                            } else {
                                opened
                            }
                        }
                    }
                } else {
                    rects
                }
            }
            _ => vec![(0, 0, w, h)],
        };
        // Copies of one shape go through the network together.
        let mut copies: Vec<(Rect, RgbImage)> = rects
            .into_iter()
            .map(|r| {
                let out = (((r.2 as f32 * s).round() as u32).max(1), ((r.3 as f32 * s).round() as u32).max(1));
                (r, turned(crop_scaled(src, size, r, out), pass.flip, pass.quarter_turns))
            })
            .collect();
        copies.sort_by_key(|(_, c)| padded(c.dimensions()));
        let mut view = View { pass, covered: Vec::new(), found: Vec::new() };
        for group in copies.chunk_by(|a, b| padded(a.1.dimensions()) == padded(b.1.dimensions())) {
            for batch in group.chunks(batch_size(group[0].1.dimensions())) {
                let images: Vec<&RgbImage> = batch.iter().map(|(_, c)| c).collect();
                let found = self.run(&images, PROPOSAL_SCORE, work)?;
                for ((rect, copy), found) in batch.iter().zip(found) {
                    view.found.extend(self.placed(found, *rect, copy.dimensions(), size, pass));
                    view.covered.push(rect_box(*rect));
                }
            }
        }
        Ok(view)
    }

    /// A copy's detections in photo coordinates: those its pass is trusted for, and not cut
    /// by an inner edge of the copy (the overlap of tiles and the context of crops guarantee
    /// that another copy, or this one, holds such a face whole).
    fn placed(
        &self,
        found: Vec<Detection>,
        (tx, ty, tw, th): Rect,
        copy: (u32, u32),
        (w, h): (u32, u32),
        pass: Pass,
    ) -> impl Iterator<Item = Detection> {
        let whole = (tx, ty, tw, th) == (0, 0, w, h);
        // A face cut by an inner edge ends a pixel or two of the copy short of it, whatever
        // the copy's scale: it is left to the look that holds it whole.
        let m = EDGE_MARGIN.max(EDGE_MARGIN / pass.scale);
        let inner = move |b: &FaceBox| {
            whole
                || ((tx == 0 || b.x1 > tx as f32 + m)
                    && (ty == 0 || b.y1 > ty as f32 + m)
                    && (tx + tw == w || b.x2 < (tx + tw) as f32 - m)
                    && (ty + th == h || b.y2 < (ty + th) as f32 - m))
        };
        let (iw, ih) = copy;
        let (uw, uh) = if pass.quarter_turns % 2 == 1 { (ih, iw) } else { (iw, ih) };
        let (sx, sy) = (tw as f32 / uw as f32, th as f32 / uh as f32);
        found.into_iter().filter_map(move |d| {
            let d = unturned(d, (iw, ih), pass.flip, pass.quarter_turns).mapped(sx, sy, tx as f32, ty as f32);
            let copy_height = d.bbox.height() * pass.scale;
            (inner(&d.bbox) && copy_height >= pass.faces.0 && copy_height <= pass.faces.1).then_some(d)
        })
    }

    /// One network run over `images` (all of one padded size), each zero-padded to
    /// multiples of 32: the detections of each, in its own pixels.
    fn run(&self, images: &[&RgbImage], threshold: f32, work: &mut DetectionWork) -> Result<Vec<Vec<Detection>>> {
        let (pw, ph) = padded(images[0].dimensions());
        let mut input = Array4::<f32>::zeros((images.len(), 3, ph as usize, pw as usize));
        for (img, mut slot) in images.iter().zip(input.outer_iter_mut()) {
            let (w, h) = img.dimensions();
            fill_chw(img, 0, 0, w, h, slot.as_slice_mut().expect("a fresh array's slices are contiguous"));
        }
        let started = std::time::Instant::now();
        let mut session = self.sessions.get();
        let outputs = session.run(ort::inputs![INPUT => TensorRef::from_array_view(input.view())?])?;
        let mut maps = Vec::with_capacity(4);
        for name in OUTPUTS {
            let (shape, data) = outputs[name].try_extract_tensor::<f32>()?;
            maps.push((shape.to_vec(), data));
        }
        let (gh, gw) = (maps[0].0[2] as usize, maps[0].0[3] as usize);
        if maps
            .iter()
            .any(|(s, _)| s.len() != 4 || s[0] as usize != images.len() || s[2] as usize != gh || s[3] as usize != gw)
        {
            return Err(Error::ModelOutput { model: "CenterFace", what: "unexpected output shapes" });
        }
        let found = images
            .iter()
            .enumerate()
            .map(|(b, img)| {
                // Batch item `b` of a map with `c` channels.
                let item = |m: usize, c: usize| &maps[m].1[b * c * gh * gw..(b + 1) * c * gh * gw];
                let grid = Grid {
                    w: gw,
                    h: gh,
                    heat: item(0, 1),
                    scale: item(1, 2),
                    offset: item(2, 2),
                    landmarks: item(3, 10),
                };
                decode(&grid, threshold, img.width() as f32, img.height() as f32)
            })
            .collect();
        work.record(images.len(), ph as usize, pw as usize, started.elapsed());
        Ok(found)
    }
}

/// What detection cost on one photo or frame, as the report records it per file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DetectionWork {
    /// Passes of the plan run over it (a zoomed pass that found nothing to look at counts).
    pub passes: u32,
    /// Network runs (a batch of crops is one run).
    pub runs: u32,
    /// Network input pixels read, zero padding included.
    pub network_pixels: u64,
    /// Milliseconds spent in ONNX Runtime.
    pub inference_ms: f64,
    /// (batch, height, width) of every run, for benchmarks that replay them.
    #[serde(skip)]
    pub shapes: Vec<(usize, usize, usize)>,
}

impl DetectionWork {
    pub(crate) fn record(&mut self, batch: usize, h: usize, w: usize, took: std::time::Duration) {
        self.runs += 1;
        self.network_pixels += (batch * h * w) as u64;
        self.inference_ms += took.as_secs_f64() * 1000.0;
        self.shapes.push((batch, h, w));
    }

    /// Adds another photo's (or frame's) work.
    pub fn add(&mut self, other: &DetectionWork) {
        self.passes += other.passes;
        self.runs += other.runs;
        self.network_pixels += other.network_pixels;
        self.inference_ms += other.inference_ms;
        self.shapes.extend_from_slice(&other.shapes);
    }
}

/// Copies of one shape go through the network together, up to this many network input
/// pixels a run (ONNX Runtime's activations grow with the batch: tiles run one by one, crops
/// by the dozen).
const BATCH_PIXELS: usize = 1 << 20;
/// A crop's side, in the zoomed copy's pixels, is this many times the proposal's longer side
/// (the network sees the face with its surroundings, as in the whole photo)...
const CROP_CONTEXT: f32 = 3.0;
/// ...and at least this.
const MIN_CROP: u32 = 64;

/// Score a face needs in a look around where it is expected (one look, zoomed to where
/// CenterFace is surest: the reference decoder's threshold).
pub const TRACK_SCORE: f32 = 0.2;
/// A whole-frame candidate overlapping a known face this much is that face.
const KNOWN_IOU: f32 = 0.3;
/// Face height, in the crop's pixels, that [`Detector::detect_around`] scales a face to: where
/// CenterFace is surest.
pub const AROUND_FACE: f32 = 48.0;
/// [`Detector::detect_around`]'s crop side in face sizes: room for the face to have moved.
const AROUND_CONTEXT: f32 = 2.0;

/// The crop [`Detector::detect_around`] reads for an expected face `b`, and the pass it is.
fn around(b: &FaceBox, (w, h): (u32, u32)) -> (Pass, Rect) {
    let longer = b.width().max(b.height()).max(1.0);
    let scale = (AROUND_FACE / longer).clamp(0.25, 3.0);
    let side = ((AROUND_CONTEXT * longer * scale).max(MIN_CROP as f32) / 32.0).ceil() * 32.0;
    (Pass::whole(scale), square_around(b, (side / scale).round() as u32, (w, h)))
}

/// A square of `side` photo pixels centred on `b`, moved (or cut) to lie inside the photo.
fn square_around(b: &FaceBox, side: u32, (w, h): (u32, u32)) -> Rect {
    let place = |centre: f32, len: u32| -> (u32, u32) {
        let side = side.min(len);
        ((centre - side as f32 / 2.0).round().clamp(0.0, (len - side) as f32) as u32, side)
    };
    let (x, cw) = place((b.x1 + b.x2) / 2.0, w);
    let (y, ch) = place((b.y1 + b.y2) / 2.0, h);
    (x, y, cw, ch)
}

/// A photo rectangle: x, y, width, height.
pub type Rect = (u32, u32, u32, u32);

/// Photo rectangles that a gated pass looks at in crops: a square around each proposal it is
/// trusted for, unless an earlier crop already holds that proposal with its context.
fn crops((w, h): (u32, u32), pass: Pass, proposals: &[FaceBox]) -> Vec<Rect> {
    let mut rects: Vec<Rect> = Vec::new();
    for p in proposals.iter().filter(|p| pass.sees(p.height())) {
        let longer = p.width().max(p.height());
        let side = (CROP_CONTEXT * longer * pass.scale).max(MIN_CROP as f32);
        let side = ((side / 32.0).ceil() * 32.0 / pass.scale).round() as u32;
        let margin = longer * (CROP_CONTEXT - 1.0) / 4.0;
        let held = rects.iter().any(|&(x, y, rw, rh)| {
            rw >= side.min(w)
                && rh >= side.min(h)
                && p.x1 - margin >= x as f32
                && p.y1 - margin >= y as f32
                && p.x2 + margin <= (x + rw) as f32
                && p.y2 + margin <= (y + rh) as f32
        });
        if held {
            continue;
        }
        rects.push(square_around(p, side, (w, h)));
    }
    rects
}

/// Network input pixels the rectangles of a pass at `scale` read, padding included.
fn pixels(rects: &[Rect], scale: f32) -> u64 {
    let copy = |len: u32| ((len as f32 * scale).round() as u32).max(1);
    rects.iter().map(|r| padded((copy(r.2), copy(r.3)))).map(|(w, h)| w as u64 * h as u64).sum()
}

fn rect_box((x, y, w, h): Rect) -> FaceBox {
    FaceBox { x1: x as f32, y1: y as f32, x2: (x + w) as f32, y2: (y + h) as f32 }
}

/// Copies of this size that go through the network in one run.
pub(crate) fn batch_size(copy: (u32, u32)) -> usize {
    let (w, h) = padded(copy);
    (BATCH_PIXELS / (w as usize * h as usize)).max(1)
}

/// A network input's size: the copy's, rounded up to multiples of 32.
pub(crate) fn padded((w, h): (u32, u32)) -> (u32, u32) {
    (w.div_ceil(32) * 32, h.div_ceil(32) * 32)
}
/// [`Detector::plan`] for these options.
fn plan(o: &DetectorOptions, w: u32, h: u32) -> Vec<Pass> {
    let overview = (o.max_side as f32 / w.max(h) as f32).min(1.0);
    let native = overview < 1.0 && o.tiling.is_some();
    let coarse = if native { COARSE_MIN_FACE } else { 0.0 };
    let mut passes = vec![Pass { faces: (coarse, f32::INFINITY), ..Pass::whole(overview) }];
    if native {
        let overlap = o.tiling.map_or(f32::INFINITY, |t| t.overlap as f32);
        passes.push(Pass { faces: (0.0, overlap), ..Pass::whole(1.0) });
    }
    if o.speed == Speed::Fast {
        return passes;
    }
    if o.extras.mirror {
        passes.push(Pass { flip: true, ..passes[0] });
    }
    if o.extras.half {
        passes.push(Pass { faces: (COARSE_MIN_FACE, f32::INFINITY), ..Pass::whole(overview * 0.5) });
    }
    let base = if native { 1.0 } else { overview };
    for (&(zoom, largest), _) in ZOOMS.iter().zip(o.extras.zooms).filter(|(_, on)| *on) {
        let pass = Pass { faces: (0.0, largest), gated: true, ..Pass::whole(base * zoom) };
        passes.push(pass);
        if o.speed == Speed::Thorough {
            passes.push(Pass { flip: true, ..pass });
        }
    }
    if o.speed == Speed::Thorough {
        passes.extend((1..4).map(|quarter_turns| Pass { quarter_turns, ..Pass::whole(overview) }));
    }
    passes
}

/// The rectangle `rect` of the `size` photo, resized to `out`, read from `src` (the photo or a
/// reduced copy of it).
pub(crate) fn crop_scaled(src: &RgbImage, size: (u32, u32), rect: Rect, out: (u32, u32)) -> RgbImage {
    use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
    let (fx, fy) = (src.width() as f64 / size.0 as f64, src.height() as f64 / size.1 as f64);
    let (x, y, w, h) = (rect.0 as f64 * fx, rect.1 as f64 * fy, rect.2 as f64 * fx, rect.3 as f64 * fy);
    if (x, y, w.round() as u32, h.round() as u32) == (0.0, 0.0, out.0, out.1) && src.dimensions() == out {
        return src.clone();
    }
    let mut dst = RgbImage::new(out.0, out.1);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear)).crop(x, y, w, h);
    Resizer::new().resize(src, &mut dst, &options).expect("source and destination are both RGB8");
    dst
}

/// The copy a pass looks at: mirrored, then turned clockwise.
fn turned(img: RgbImage, flip: bool, quarter_turns: u8) -> RgbImage {
    use image::imageops;
    let img = if flip { imageops::flip_horizontal(&img) } else { img };
    match quarter_turns % 4 {
        1 => imageops::rotate90(&img),
        2 => imageops::rotate180(&img),
        3 => imageops::rotate270(&img),
        _ => img,
    }
}

/// A detection in a [`turned`] copy of size `copy`, in the unturned copy's coordinates. A
/// mirrored face's left eye is the subject's right: the points swap back so that alignment
/// sees them in the usual order.
fn unturned(d: Detection, copy: (u32, u32), flip: bool, quarter_turns: u8) -> Detection {
    let (cw, ch) = (copy.0 as f32, copy.1 as f32);
    // The unturned copy is `w`×`h`; a point of the turned copy maps back to it.
    let (w, h) = if quarter_turns % 2 == 1 { (ch, cw) } else { (cw, ch) };
    let back = |[x, y]: [f32; 2]| -> [f32; 2] {
        let [x, y] = match quarter_turns % 4 {
            1 => [y, h - x],
            2 => [w - x, h - y],
            3 => [w - y, x],
            _ => [x, y],
        };
        if flip {
            [w - x, y]
        } else {
            [x, y]
        }
    };
    let ([ax, ay], [bx, by]) = (back([d.bbox.x1, d.bbox.y1]), back([d.bbox.x2, d.bbox.y2]));
    let bbox = FaceBox { x1: ax.min(bx), y1: ay.min(by), x2: ax.max(bx), y2: ay.max(by) };
    let mut points = d.landmarks.0.map(back);
    if flip {
        points.swap(0, 1);
        points.swap(3, 4);
    }
    Detection { bbox, score: d.score, landmarks: Landmarks(points) }
}

/// Joins the passes' detections into faces. Detections that overlap are one face; its box and
/// points are the score-weighted mean of theirs, and its score the mean, over the upright
/// passes that could have seen it (its size in their window, its centre where they looked),
/// of each pass's best score for it: a face every pass finds keeps its score, one that a
/// single pass of many barely sees fades. A face found only in a turned copy keeps that
/// pass's score when it reaches [`TURNED_SCORE`].
fn fuse(views: Vec<View>) -> Vec<Detection> {
    let mut all: Vec<(usize, Detection)> = views
        .iter()
        .enumerate()
        .flat_map(|(i, v)| v.found.iter().filter(|d| d.score >= CANDIDATE_SCORE).map(move |d| (i, *d)))
        .collect();
    all.sort_by(|a, b| b.1.score.total_cmp(&a.1.score));
    let mut taken = vec![false; all.len()];
    let mut faces = Vec::new();
    for seed in 0..all.len() {
        if taken[seed] {
            continue;
        }
        let anchor = all[seed].1.bbox;
        let mut best = vec![0.0f32; views.len()];
        let (mut weight, mut bbox, mut points) = (0.0f32, [0.0f32; 4], [[0.0f32; 2]; 5]);
        for (j, (view, d)) in all.iter().enumerate().skip(seed) {
            if taken[j] || anchor.iou(&d.bbox) < CLUSTER_IOU {
                continue;
            }
            taken[j] = true;
            best[*view] = best[*view].max(d.score);
            let b = &d.bbox;
            for (acc, v) in bbox.iter_mut().zip([b.x1, b.y1, b.x2, b.y2]) {
                *acc += v * d.score;
            }
            for (acc, p) in points.iter_mut().zip(d.landmarks.0) {
                acc[0] += p[0] * d.score;
                acc[1] += p[1] * d.score;
            }
            weight += d.score;
        }
        let centre = ((anchor.x1 + anchor.x2) / 2.0, (anchor.y1 + anchor.y2) / 2.0);
        let looked = |v: &View| {
            v.pass.sees(anchor.height())
                && v.covered.iter().any(|r| r.x1 <= centre.0 && centre.0 < r.x2 && r.y1 <= centre.1 && centre.1 < r.y2)
        };
        let (mut sum, mut count, mut turned) = (0.0f32, 0usize, 0.0f32);
        for (v, &b) in views.iter().zip(&best) {
            if v.pass.quarter_turns != 0 {
                turned = turned.max(b);
            } else if b > 0.0 || looked(v) {
                sum += b;
                count += 1;
            }
        }
        let upright = if count > 0 { sum / count as f32 } else { 0.0 };
        let score = if turned >= TURNED_SCORE { upright.max(turned) } else { upright };
        let [x1, y1, x2, y2] = bbox.map(|v| v / weight);
        let landmarks = Landmarks(points.map(|[x, y]| [x / weight, y / weight]));
        faces.push(Detection { bbox: FaceBox { x1, y1, x2, y2 }, score, landmarks });
    }
    faces
}

/// Boxes clipped to the photo; boxes left with no area dropped.
fn clipped(mut found: Vec<Detection>, w: u32, h: u32) -> Vec<Detection> {
    for d in &mut found {
        d.bbox = d.bbox.clipped(w, h);
    }
    found.retain(|d| d.bbox.area() > 0.0);
    found
}

/// Runs the network once on a zero input of the given batch and padded size: inference alone,
/// for benchmarks that separate it from the pipeline around it.
pub fn infer_only(detector: &Detector, (batch, height, width): (usize, usize, usize)) -> Result<()> {
    let input = Array4::<f32>::zeros((batch, 3, height, width));
    let mut session = detector.sessions.get();
    session.run(ort::inputs![INPUT => TensorRef::from_array_view(input.view())?])?;
    Ok(())
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
/// neighbours: as few tiles of at most `size` as that takes, each no larger than it must be
/// (the network's time grows with the pixels it reads, overlap included).
pub fn tiles(w: u32, h: u32, t: Tiling) -> Vec<Rect> {
    let spans = |len: u32| -> Vec<(u32, u32)> {
        if len <= t.size {
            return vec![(0, len)];
        }
        let n = (len - t.overlap).div_ceil(t.size - t.overlap);
        let side = (len + (n - 1) * t.overlap).div_ceil(n);
        let room = (len - side) as f64;
        (0..n).map(|i| ((room * i as f64 / (n - 1) as f64).round() as u32, side)).collect()
    };
    let (xs, ys) = (spans(w), spans(h));
    ys.iter().flat_map(|&(y, th)| xs.iter().map(move |&(x, tw)| (x, y, tw, th))).collect()
}

/// RGB region → 1×3×H×W float tensor (0..255), zero-padded to multiples of 32.
pub fn to_chw(img: &RgbImage, x0: u32, y0: u32, w: u32, h: u32) -> Array4<f32> {
    let (pw, ph) = padded((w, h));
    let mut t = Array4::<f32>::zeros((1, 3, ph as usize, pw as usize));
    fill_chw(img, x0, y0, w, h, t.as_slice_mut().expect("fresh array is contiguous"));
    t
}

/// Writes the RGB region into `out`, a zeroed 3×H×W plane set padded to multiples of 32.
pub(crate) fn fill_chw(img: &RgbImage, x0: u32, y0: u32, w: u32, h: u32, out: &mut [f32]) {
    let (pw, ph) = padded((w, h));
    let (pw, plane) = (pw as usize, (pw * ph) as usize);
    let stride = img.width() as usize * 3;
    let raw = img.as_raw();
    for y in 0..h as usize {
        let row = &raw[(y0 as usize + y) * stride + x0 as usize * 3..][..w as usize * 3];
        let o = y * pw;
        for (x, px) in row.chunks_exact(3).enumerate() {
            out[o + x] = px[0] as f32;
            out[plane + o + x] = px[1] as f32;
            out[2 * plane + o + x] = px[2] as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_the_image_with_overlap() {
        let t = Tiling { size: 1024, overlap: 160 };
        let rects = tiles(4000, 3000, t);
        assert_eq!(rects.len(), 5 * 4);
        for x in 0..4000 {
            assert!(rects.iter().any(|r| r.0 <= x && x < r.0 + r.2));
        }
        for y in 0..3000 {
            assert!(rects.iter().any(|r| r.1 <= y && y < r.1 + r.3));
        }
        assert!(rects.iter().all(|r| r.2 <= 1024 && r.3 <= 1024 && r.0 + r.2 <= 4000 && r.1 + r.3 <= 3000));
        // No larger than needed: 5 tiles of 928 cover 4000 with 160 shared, 4 of 870 cover 3000.
        assert_eq!((rects[0].2, rects[0].3), (928, 870));
        let mut xs: Vec<(u32, u32)> = rects.iter().map(|r| (r.0, r.2)).collect();
        xs.dedup();
        for pair in xs.windows(2) {
            assert!(pair[0].0 + pair[0].1 - pair[1].0 >= 160, "overlap too small: {pair:?}");
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

    fn det(bbox: FaceBox) -> Detection {
        let lm = [
            [bbox.x1 + 2.0, bbox.y1 + 3.0],
            [bbox.x2 - 2.0, bbox.y1 + 3.0],
            [bbox.x1 + 5.0, bbox.y2 - 5.0],
            [bbox.x1 + 3.0, bbox.y2 - 2.0],
            [bbox.x2 - 3.0, bbox.y2 - 2.0],
        ];
        Detection { bbox, score: 0.8, landmarks: Landmarks(lm) }
    }

    #[test]
    fn detections_in_turned_and_mirrored_copies_map_back_to_the_photo() {
        // A 40x30 photo with a face box; every copy's mapping of it must come back unchanged.
        let img = RgbImage::from_fn(40, 30, |x, y| image::Rgb([x as u8, y as u8, 0]));
        let face = det(FaceBox { x1: 5.0, y1: 4.0, x2: 17.0, y2: 20.0 });
        for flip in [false, true] {
            for quarter_turns in 0..4 {
                let copy = turned(img.clone(), flip, quarter_turns);
                // Where the face lands in the copy: follow its corners' pixels.
                let find = |px: image::Rgb<u8>| {
                    let (x, y, _) = copy.enumerate_pixels().find(|(_, _, p)| **p == px).unwrap();
                    [x as f32, y as f32]
                };
                let corner_a = find(*img.get_pixel(5, 4));
                let corner_b = find(*img.get_pixel(16, 19));
                // Pixel indices to a continuous box in the copy (covering both corner pixels).
                let bbox = FaceBox {
                    x1: corner_a[0].min(corner_b[0]),
                    y1: corner_a[1].min(corner_b[1]),
                    x2: corner_a[0].max(corner_b[0]) + 1.0,
                    y2: corner_a[1].max(corner_b[1]) + 1.0,
                };
                let back = unturned(Detection { bbox, ..face }, copy.dimensions(), flip, quarter_turns);
                assert_eq!(back.bbox, face.bbox, "flip {flip}, {quarter_turns} quarter turns");
            }
        }
        // Mirroring swaps the subject's sides back: the left eye stays left of the right eye.
        let mirrored = det(FaceBox { x1: 23.0, y1: 4.0, x2: 35.0, y2: 20.0 });
        let back = unturned(mirrored, (40, 30), true, 0);
        assert!(back.landmarks.0[0][0] < back.landmarks.0[1][0]);
        assert!(back.landmarks.0[3][0] < back.landmarks.0[4][0]);
    }

    fn detector_plan(speed: Speed, w: u32, h: u32) -> Vec<Pass> {
        // plan() needs no session: build the options' plan through a detector-less helper.
        plan(&DetectorOptions::default().with_speed(speed), w, h)
    }

    #[test]
    fn every_preset_looks_at_native_resolution_and_balanced_zooms() {
        let fast = detector_plan(Speed::Fast, 4000, 3000);
        assert!(fast.iter().any(|p| p.scale == 1.0 && !p.gated), "large photos always get native tiles");
        assert!(fast.iter().all(|p| p.scale <= 1.0));
        assert_eq!(detector_plan(Speed::Fast, 1024, 700).len(), 1);
        let balanced = detector_plan(Speed::Balanced, 1024, 700);
        for zoom in [2.0, 3.0] {
            assert!(balanced.iter().any(|p| p.scale == zoom && p.gated));
        }
        assert!(balanced.iter().any(|p| p.flip) && balanced.iter().any(|p| p.scale == 0.5));
        assert!(balanced.iter().all(|p| p.quarter_turns == 0));
        let thorough = detector_plan(Speed::Thorough, 1024, 700);
        assert_eq!(thorough.iter().filter(|p| p.quarter_turns != 0).count(), 3);
        assert!(thorough.len() > balanced.len());
    }

    #[test]
    fn fused_score_is_the_mean_over_the_passes_that_could_see_the_face() {
        let whole = |scale, found: Vec<Detection>| View {
            pass: Pass::whole(scale),
            covered: vec![FaceBox { x1: 0.0, y1: 0.0, x2: 100.0, y2: 100.0 }],
            found,
        };
        let face = FaceBox { x1: 10.0, y1: 10.0, x2: 30.0, y2: 34.0 };
        let with = |score| vec![Detection { score, ..det(face) }];
        // Seen at 0.9 by one pass, missed by another that looked there: 0.45.
        let fused = fuse(vec![whole(1.0, with(0.9)), whole(2.0, vec![])]);
        assert_eq!(fused.len(), 1);
        assert!((fused[0].score - 0.45).abs() < 1e-6);
        // A pass that did not look there (a gated tile it skipped) does not count.
        let mut skipped = whole(2.0, vec![]);
        skipped.covered.clear();
        assert!((fuse(vec![whole(1.0, with(0.9)), skipped])[0].score - 0.9).abs() < 1e-6);
        // Nor does one whose size window excludes the face (a 24-px face in a x0.5 copy).
        let mut coarse = whole(0.5, vec![]);
        coarse.pass.faces = (COARSE_MIN_FACE, f32::INFINITY);
        assert!((fuse(vec![whole(1.0, with(0.9)), coarse])[0].score - 0.9).abs() < 1e-6);
    }

    #[test]
    fn merge_keeps_the_stronger_of_nested_boxes_and_covers_both() {
        let mk = |x1, y1, x2, y2, score| Detection {
            bbox: FaceBox { x1, y1, x2, y2 },
            score,
            landmarks: Landmarks([[0.0; 2]; 5]),
        };
        let out = merge(vec![
            mk(0.0, 0.0, 100.0, 100.0, 0.6),
            mk(10.0, 10.0, 40.0, 40.0, 0.9),
            mk(200.0, 0.0, 220.0, 20.0, 0.5),
        ]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].score, 0.9);
        assert_eq!(out[0].bbox, FaceBox { x1: 0.0, y1: 0.0, x2: 100.0, y2: 100.0 });
    }
}
