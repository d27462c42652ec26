//! Text on redacted people: access badges, lanyard cards and table name cards name the person
//! whose face was just hidden. PP-OCRv4's text detection network (a DB probability map) looks
//! for text in each redacted face's badge area only, all areas of a photo batched, so a photo
//! without redacted faces pays nothing.

use std::path::Path;

use image::RgbImage;
use ndarray::Array4;
use ort::environment::Environment;
use ort::value::TensorRef;
use serde::{Deserialize, Serialize};

use crate::detect::{self, Detection, DetectionWork, FaceBox, Rect};
use crate::error::{Error, Result};
use crate::models::{Device, SessionPool};

/// Whether text in the badge areas of redacted faces is redacted with them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Badges {
    #[default]
    Redact,
    Keep,
}

impl Badges {
    pub fn name(self) -> &'static str {
        match self {
            Badges::Redact => "redact",
            Badges::Keep => "keep",
        }
    }
}

// Where a badge can be, in face sizes from the detected box (measured on the three lanyard
// badges of openmpf_video_01_event.mp4 and the cards of scripts/eval_badges.sh): badge centres
// lay 0–0.7 face widths beside the face's centre and 1.1–3.0 face heights below the chin, cards
// up to 0.7 face widths wide. The area reaches a little further on each side.
/// Half the area's width, in face widths, for a frontal face.
const AREA_HALF_WIDTH: f32 = 1.4;
/// Extra half-width per unit of yaw (the nose's offset from the eyes' middle, in face widths):
/// a turned head's body is seen further to one side.
const AREA_YAW_WIDEN: f32 = 2.0;
/// The area starts this many face heights above the chin (a card held high, a lanyard clip)...
const AREA_ABOVE_CHIN: f32 = 0.1;
/// ...and ends this many below it (table name cards stand lower than badges).
const AREA_BELOW_CHIN: f32 = 3.5;
/// Letters this many network pixels tall are the smallest the network finds whole (measured
/// on rendered name cards at native scale: 4 px found 2 of 8 names, 5 px and up all 8)...
const NETWORK_LETTER: f32 = 6.0;
/// ...and letters this tall in the photo the smallest a person reads from it: the badge area
/// is scaled down to keep them at [`NETWORK_LETTER`] (never enlarged)...
const READABLE_LETTER: f32 = 8.0;
/// ...or, for large faces, badge letters this share of the face's height (a name on an ID-1
/// badge, 54 mm tall, has capitals of 6 mm and more; a face box is about 200 mm).
const BADGE_LETTER_PER_FACE: f32 = 0.03;

// Post-processing as the network was trained for (PaddleOCR's DB defaults, which rapidocr
// ships): pixels over BINARY_THRESHOLD make regions, regions whose mean probability is under
// BOX_THRESHOLD are dropped, and the kept ones grow by UNCLIP_RATIO · area / perimeter (the
// network's map covers a shrunk text core).
const BINARY_THRESHOLD: f32 = 0.3;
const BOX_THRESHOLD: f32 = 0.5;
const UNCLIP_RATIO: f32 = 1.6;
/// Regions thinner than this (network pixels) are noise.
const MIN_SIDE: usize = 3;

const INPUT: &str = "x";
const OUTPUT: &str = "sigmoid_0.tmp_0";

/// Text found in a redacted face's badge area.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TextRegion {
    /// Index of the face (in the slice given to [`TextDetector::find`]) whose area it is in.
    pub face: usize,
    /// In the photo's pixels, grown around the text, clipped to the area.
    pub bbox: FaceBox,
    /// Mean text probability over the region.
    pub score: f32,
}

/// Times text cut by an area's side is followed further sideways.
const MAX_FOLLOWS: usize = 3;
/// A strip that follows text reaches this many text heights past the cut...
const FOLLOW_REACH: f32 = 12.0;
/// ...and starts this many text heights back inside what was seen, so that a letter cut at the
/// side is seen whole.
const FOLLOW_OVERLAP: f32 = 2.0;

/// A rectangle of the photo looked at for one face's text, at a scale.
#[derive(Debug, Clone, Copy)]
struct Look {
    face: usize,
    rect: Rect,
    scale: f32,
}

impl Look {
    /// A strip further along text `b` when it touches this look's left or right side (and the
    /// photo goes on there).
    fn follow(&self, b: &FaceBox, (w, h): (u32, u32)) -> Option<Look> {
        let (x, _, rw, _) = self.rect;
        let th = b.height().max(1.0);
        let (x0, x1) = if b.x1 <= x as f32 + 1.0 && x > 0 {
            (b.x1 - FOLLOW_REACH * th, b.x1 + FOLLOW_OVERLAP * th)
        } else if b.x2 >= (x + rw) as f32 - 1.0 && x + rw < w {
            (b.x2 - FOLLOW_OVERLAP * th, b.x2 + FOLLOW_REACH * th)
        } else {
            return None;
        };
        let clip = |v: f32, len: u32| v.round().clamp(0.0, len as f32) as u32;
        let (x0, x1, y0, y1) = (clip(x0, w), clip(x1, w), clip(b.y1 - th, h), clip(b.y2 + th, h));
        (x1 > x0 && y1 > y0).then_some(Look { rect: (x0, y0, x1 - x0, y1 - y0), ..*self })
    }
}

pub struct TextDetector {
    sessions: SessionPool,
}

impl TextDetector {
    pub fn try_new(env: &Environment, model: &Path, sessions: usize, threads: usize, device: Device) -> Result<Self> {
        Ok(TextDetector { sessions: SessionPool::new(env, model, sessions, threads, device, &[])? })
    }

    /// Text in the badge areas of `faces` in `img`; the network's runs are added to `work`.
    /// Text cut by an area's side (a card wider than the area) is followed sideways, in a strip
    /// along it, until its end is seen.
    pub fn find(&self, img: &RgbImage, faces: &[Detection], work: &mut DetectionWork) -> Result<Vec<TextRegion>> {
        let size = img.dimensions();
        let mut looks: Vec<Look> = faces
            .iter()
            .enumerate()
            .filter_map(|(face, d)| {
                let smallest = READABLE_LETTER.max(BADGE_LETTER_PER_FACE * d.bbox.height());
                Some(Look { face, rect: area(d, size)?, scale: (NETWORK_LETTER / smallest).min(1.0) })
            })
            .collect();
        let mut found = Vec::new();
        for _ in 0..=MAX_FOLLOWS {
            if looks.is_empty() {
                break;
            }
            let seen = self.look(img, &looks, work)?;
            looks = seen.iter().filter_map(|(look, t)| look.follow(&t.bbox, size)).collect();
            found.extend(seen.into_iter().map(|(_, t)| t));
        }
        Ok(found)
    }

    /// The text in each of `looks`, each region with the look it was found in; copies of one
    /// padded size go through the network together.
    fn look(&self, img: &RgbImage, looks: &[Look], work: &mut DetectionWork) -> Result<Vec<(Look, TextRegion)>> {
        let size = img.dimensions();
        let mut copies: Vec<(Look, RgbImage)> = looks
            .iter()
            .map(|l| {
                let (_, _, w, h) = l.rect;
                let out = (((w as f32 * l.scale).round() as u32).max(1), ((h as f32 * l.scale).round() as u32).max(1));
                (*l, detect::crop_scaled(img, size, l.rect, out))
            })
            .collect();
        copies.sort_by_key(|(_, c)| detect::padded(c.dimensions()));
        let mut found = Vec::new();
        for group in copies.chunk_by(|a, b| detect::padded(a.1.dimensions()) == detect::padded(b.1.dimensions())) {
            for batch in group.chunks(detect::batch_size(group[0].1.dimensions())) {
                let images: Vec<&RgbImage> = batch.iter().map(|(_, c)| c).collect();
                for ((look, copy), boxes) in batch.iter().zip(self.run(&images, work)?) {
                    let (x, y, w, h) = look.rect;
                    let (sx, sy) = (w as f32 / copy.width() as f32, h as f32 / copy.height() as f32);
                    found.extend(boxes.into_iter().map(|(b, score)| {
                        let bbox = b.mapped(sx, sy, x as f32, y as f32).clipped(x + w, y + h);
                        (*look, TextRegion { face: look.face, bbox, score })
                    }));
                }
            }
        }
        Ok(found)
    }

    /// One network run over `images` (all of one padded size): the text boxes of each, in its
    /// own pixels, with their scores.
    fn run(&self, images: &[&RgbImage], work: &mut DetectionWork) -> Result<Vec<Vec<(FaceBox, f32)>>> {
        let (pw, ph) = detect::padded(images[0].dimensions());
        let (pw, ph) = (pw as usize, ph as usize);
        let mut input = Array4::<f32>::zeros((images.len(), 3, ph, pw));
        for (img, mut slot) in images.iter().zip(input.outer_iter_mut()) {
            let planes = slot.as_slice_mut().expect("a fresh array's slices are contiguous");
            let (w, h) = img.dimensions();
            detect::fill_chw(img, 0, 0, w, h, planes);
            // The network reads BGR scaled to -1..1 (padding becomes -1, black).
            let (r, rest) = planes.split_at_mut(ph * pw);
            r.swap_with_slice(&mut rest[ph * pw..]);
            planes.iter_mut().for_each(|v| *v = *v / 127.5 - 1.0);
        }
        let started = std::time::Instant::now();
        let mut session = self.sessions.get();
        let outputs = session.run(ort::inputs![INPUT => TensorRef::from_array_view(input.view())?])?;
        let (shape, map) = outputs[OUTPUT].try_extract_tensor::<f32>()?;
        if shape.len() != 4 || shape[0] as usize != images.len() || shape[2] as usize != ph || shape[3] as usize != pw {
            return Err(Error::ModelOutput { model: "PP-OCRv4 text detector", what: "an unexpected output shape" });
        }
        let found = images
            .iter()
            .enumerate()
            .map(|(b, img)| {
                let (w, h) = img.dimensions();
                boxes(&map[b * ph * pw..(b + 1) * ph * pw], pw, (w as usize, h as usize))
            })
            .collect();
        work.record(images.len(), ph, pw, started.elapsed());
        Ok(found)
    }
}

/// The badge area of face `d` in a photo of `size`, clipped to it; `None` when nothing of it
/// is in the photo.
pub fn area(d: &Detection, (w, h): (u32, u32)) -> Option<Rect> {
    let b = &d.bbox;
    let [left_eye, right_eye, nose, ..] = d.landmarks.0;
    let yaw = ((nose[0] - (left_eye[0] + right_eye[0]) / 2.0) / b.width().max(1.0)).abs();
    let half = (AREA_HALF_WIDTH + AREA_YAW_WIDEN * yaw) * b.width();
    let cx = (b.x1 + b.x2) / 2.0;
    let clip = |v: f32, len: u32| v.round().clamp(0.0, len as f32) as u32;
    let (x0, x1) = (clip(cx - half, w), clip(cx + half, w));
    let (y0, y1) = (clip(b.y2 - AREA_ABOVE_CHIN * b.height(), h), clip(b.y2 + AREA_BELOW_CHIN * b.height(), h));
    (x1 > x0 && y1 > y0).then_some((x0, y0, x1 - x0, y1 - y0))
}

/// Text boxes in one probability map (`stride` wide) of which the top-left `size` is the
/// image: regions of pixels over [`BINARY_THRESHOLD`] (grown by one pixel, joining the gaps
/// between letters), kept when their box's mean probability reaches [`BOX_THRESHOLD`], grown
/// by the unclip distance.
fn boxes(map: &[f32], stride: usize, (w, h): (usize, usize)) -> Vec<(FaceBox, f32)> {
    let at = |x: usize, y: usize| map[y * stride + x];
    // A 2×2 dilation, as the reference post-processing does.
    let on = |x: usize, y: usize| {
        (y.saturating_sub(1)..=y).any(|yy| (x.saturating_sub(1)..=x).any(|xx| at(xx, yy) > BINARY_THRESHOLD))
    };
    let mut seen = vec![false; w * h];
    let mut stack = Vec::new();
    let mut out = Vec::new();
    for start in 0..w * h {
        if seen[start] || !on(start % w, start / w) {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
        while let Some(i) = stack.pop() {
            let (x, y) = (i % w, i / w);
            (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1));
            let neighbours = [(x.wrapping_sub(1), y), (x + 1, y), (x, y.wrapping_sub(1)), (x, y + 1)];
            for (nx, ny) in neighbours {
                if nx < w && ny < h && !seen[ny * w + nx] && on(nx, ny) {
                    seen[ny * w + nx] = true;
                    stack.push(ny * w + nx);
                }
            }
        }
        let (bw, bh) = (x1 - x0, y1 - y0);
        if bw.min(bh) < MIN_SIDE {
            continue;
        }
        let score =
            (y0..y1).flat_map(|y| (x0..x1).map(move |x| (x, y))).map(|(x, y)| at(x, y)).sum::<f32>() / (bw * bh) as f32;
        if score < BOX_THRESHOLD {
            continue;
        }
        let grow = UNCLIP_RATIO * (bw * bh) as f32 / (2 * (bw + bh)) as f32;
        let b = FaceBox { x1: x0 as f32 - grow, y1: y0 as f32 - grow, x2: x1 as f32 + grow, y2: y1 as f32 + grow };
        out.push((b.clipped(w as u32, h as u32), score));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Landmarks;

    fn face(x1: f32, y1: f32, x2: f32, y2: f32) -> Detection {
        let (cx, cy) = ((x1 + x2) / 2.0, (y1 + y2) / 2.0);
        let landmarks = Landmarks([
            [cx - 10.0, cy - 10.0],
            [cx + 10.0, cy - 10.0],
            [cx, cy],
            [cx - 8.0, cy + 10.0],
            [cx + 8.0, cy + 10.0],
        ]);
        Detection { bbox: FaceBox { x1, y1, x2, y2 }, score: 0.9, landmarks }
    }

    #[test]
    fn the_area_lies_below_the_face_in_face_sizes_and_inside_the_photo() {
        let (x, y, w, h) = area(&face(100.0, 100.0, 180.0, 200.0), (1000, 1000)).unwrap();
        assert_eq!((x, y, w, h), (28, 190, 224, 360));
        // Cut by the photo's edges; nothing when the face is at its bottom.
        assert_eq!(area(&face(0.0, 100.0, 80.0, 200.0), (300, 400)), Some((0, 190, 152, 210)));
        assert_eq!(area(&face(0.0, 300.0, 80.0, 400.0), (300, 390)), None);
    }

    #[test]
    fn a_turned_head_widens_the_area() {
        let frontal = area(&face(100.0, 100.0, 180.0, 200.0), (1000, 1000)).unwrap();
        let mut turned = face(100.0, 100.0, 180.0, 200.0);
        turned.landmarks.0[2][0] += 16.0;
        assert!(area(&turned, (1000, 1000)).unwrap().2 > frontal.2 + 50);
    }

    #[test]
    fn boxes_are_grown_regions_of_likely_text() {
        let (w, h) = (64, 32);
        let mut map = vec![0.0; w * h];
        for y in 10..16 {
            for x in 8..40 {
                map[y * w + x] = 0.9;
            }
        }
        map[30 * w + 60] = 0.9; // a lone pixel: noise
        let found = boxes(&map, w, (w, h));
        assert_eq!(found.len(), 1);
        let (b, score) = found[0];
        assert!(score > 0.7, "{score}");
        assert!(b.x1 < 8.0 && b.x2 > 40.0 && b.y1 < 10.0 && b.y2 > 16.0, "{b:?}");
        // A faint region is not text.
        let faint: Vec<f32> = map.iter().map(|v| v * 0.45).collect();
        assert!(boxes(&faint, w, (w, h)).is_empty());
    }
}
