//! Face embeddings with SFace: five-point similarity alignment to 112×112, then the network,
//! then L2 normalisation. Embeddings are biometric data: they never leave the process except
//! encrypted in a register.

pub mod quality;

use std::path::Path;

use image::RgbImage;
use ndarray::Array4;
use ort::environment::Environment;
use ort::value::TensorRef;

use crate::detect::{Detection, Landmarks};
use crate::error::{Error, Result};
use crate::models::{Device, SessionPool};
pub use quality::{FaceQuality, QualityGate};

type StdResult<T, E> = std::result::Result<T, E>;

/// Where SFace expects the five landmarks in its 112×112 input (OpenCV's FaceRecognizerSF).
pub const TEMPLATE: [[f32; 2]; 5] =
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]];
pub const ALIGNED_SIDE: u32 = 112;
const INPUT: &str = "data";
const OUTPUT: &str = "fc1";

/// An L2-normalised face embedding. Serialised only inside the encrypted register.
#[derive(Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "Vec<f32>", into = "Vec<f32>")]
pub struct Embedding(Vec<f32>);

impl TryFrom<Vec<f32>> for Embedding {
    type Error = &'static str;
    fn try_from(v: Vec<f32>) -> StdResult<Self, Self::Error> {
        Embedding::from_raw(v).ok_or("an embedding must be a non-zero vector")
    }
}

impl From<Embedding> for Vec<f32> {
    fn from(e: Embedding) -> Self {
        e.0
    }
}

impl std::fmt::Debug for Embedding {
    // Biometric data stays out of logs and panic messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Embedding(<{} values>)", self.0.len())
    }
}

impl Embedding {
    /// Normalises `raw`; `None` for an all-zero vector.
    pub fn from_raw(mut raw: Vec<f32>) -> Option<Self> {
        let norm = raw.iter().map(|v| v * v).sum::<f32>().sqrt();
        if !norm.is_finite() || norm == 0.0 {
            return None;
        }
        raw.iter_mut().for_each(|v| *v /= norm);
        Some(Embedding(raw))
    }

    /// Cosine similarity, in -1..=1.
    pub fn similarity(&self, other: &Embedding) -> f32 {
        self.0.iter().zip(&other.0).map(|(a, b)| a * b).sum()
    }

    pub fn values(&self) -> &[f32] {
        &self.0
    }

    /// The normalised mean direction: one template for several photos of a face, or a face
    /// and its mirror image.
    pub fn mean(items: &[Embedding]) -> Option<Embedding> {
        let dim = items.first()?.0.len();
        let sum = items.iter().fold(vec![0.0f32; dim], |mut acc, e| {
            acc.iter_mut().zip(&e.0).for_each(|(a, v)| *a += v);
            acc
        });
        Embedding::from_raw(sum)
    }
}

/// A face ready to be matched: its embedding and how far it can be trusted.
#[derive(Debug, Clone)]
pub struct Probe {
    pub embedding: Embedding,
    pub quality: FaceQuality,
}

/// A 2×3 affine matrix `[[a, -b, tx], [b, a, ty]]`: rotation, uniform scale, translation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    pub a: f32,
    pub b: f32,
    pub tx: f32,
    pub ty: f32,
}

impl Similarity {
    /// Least-squares similarity mapping `src` onto `dst` (Umeyama's solution; it has no
    /// reflection by construction).
    pub fn estimate(src: &[[f32; 2]], dst: &[[f32; 2]]) -> Similarity {
        let n = src.len() as f32;
        let mean = |p: &[[f32; 2]]| {
            let s = p.iter().fold([0.0f32; 2], |acc, q| [acc[0] + q[0], acc[1] + q[1]]);
            [s[0] / n, s[1] / n]
        };
        let (ms, md) = (mean(src), mean(dst));
        let (mut num_a, mut num_b, mut den) = (0.0f32, 0.0f32, 0.0f32);
        for (s, d) in src.iter().zip(dst) {
            let (sx, sy, dx, dy) = (s[0] - ms[0], s[1] - ms[1], d[0] - md[0], d[1] - md[1]);
            num_a += sx * dx + sy * dy;
            num_b += sx * dy - sy * dx;
            den += sx * sx + sy * sy;
        }
        let (a, b) = if den > 0.0 { (num_a / den, num_b / den) } else { (1.0, 0.0) };
        Similarity { a, b, tx: md[0] - (a * ms[0] - b * ms[1]), ty: md[1] - (b * ms[0] + a * ms[1]) }
    }

    pub fn apply(&self, p: [f32; 2]) -> [f32; 2] {
        [self.a * p[0] - self.b * p[1] + self.tx, self.b * p[0] + self.a * p[1] + self.ty]
    }

    pub fn inverse(&self) -> Similarity {
        let det = self.a * self.a + self.b * self.b;
        let (a, b) = (self.a / det, -self.b / det);
        Similarity { a, b, tx: -(a * self.tx - b * self.ty), ty: -(b * self.tx + a * self.ty) }
    }
}

/// The face warped onto SFace's template: 112×112, bilinear, black outside the photo.
pub fn align(img: &RgbImage, landmarks: &Landmarks) -> RgbImage {
    let to_src = Similarity::estimate(&landmarks.0, &TEMPLATE).inverse();
    let (w, h) = (img.width() as i64, img.height() as i64);
    let px = |x: i64, y: i64, c: usize| -> f32 {
        if x < 0 || y < 0 || x >= w || y >= h {
            0.0
        } else {
            img.get_pixel(x as u32, y as u32)[c] as f32
        }
    };
    RgbImage::from_fn(ALIGNED_SIDE, ALIGNED_SIDE, |u, v| {
        let [sx, sy] = to_src.apply([u as f32, v as f32]);
        let (x0, y0) = (sx.floor() as i64, sy.floor() as i64);
        let (fx, fy) = (sx - x0 as f32, sy - y0 as f32);
        image::Rgb(std::array::from_fn(|c| {
            let top = px(x0, y0, c) * (1.0 - fx) + px(x0 + 1, y0, c) * fx;
            let bottom = px(x0, y0 + 1, c) * (1.0 - fx) + px(x0 + 1, y0 + 1, c) * fx;
            (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8
        }))
    })
}

#[derive(Debug, Clone)]
pub struct EmbedderOptions {
    pub sessions: usize,
    pub threads_per_session: usize,
    pub device: Device,
}

impl Default for EmbedderOptions {
    fn default() -> Self {
        EmbedderOptions { sessions: 1, threads_per_session: 1, device: Device::Cpu }
    }
}

/// Faces embedded in one inference. ONNX Runtime keeps its memory arena at the largest batch
/// it has run: a crowd photo's faces in one batch (scripts/eval_matching.sh: a few hundred with
/// their mirror images, on two sessions) took the process past 24 GB.
pub const EMBED_BATCH: usize = 16;

pub struct Embedder {
    sessions: SessionPool,
}

impl Embedder {
    pub fn try_new(env: &Environment, model: &Path, options: EmbedderOptions) -> Result<Self> {
        // Block-quantised weights run 2-3× faster dequantised once at load.
        let config = [("session.disable_quant_qdq", "1")];
        let sessions =
            SessionPool::new(env, model, options.sessions, options.threads_per_session, options.device, &config)?;
        Ok(Embedder { sessions })
    }

    /// Embeddings of aligned 112×112 faces, in batches of at most [`EMBED_BATCH`].
    pub fn embed_aligned(&self, faces: &[RgbImage]) -> Result<Vec<Embedding>> {
        let mut out = Vec::with_capacity(faces.len());
        for batch in faces.chunks(EMBED_BATCH) {
            out.extend(self.embed_batch(batch)?);
        }
        Ok(out)
    }

    fn embed_batch(&self, faces: &[RgbImage]) -> Result<Vec<Embedding>> {
        if faces.is_empty() {
            return Ok(Vec::new());
        }
        let side = ALIGNED_SIDE as usize;
        let mut input = Array4::<f32>::zeros((faces.len(), 3, side, side));
        for (n, face) in faces.iter().enumerate() {
            for (x, y, p) in face.enumerate_pixels() {
                for c in 0..3 {
                    input[[n, c, y as usize, x as usize]] = p[c] as f32;
                }
            }
        }
        let mut session = self.sessions.get();
        let outputs = session.run(ort::inputs![INPUT => TensorRef::from_array_view(input.view())?])?;
        let (shape, data) = outputs[OUTPUT].try_extract_tensor::<f32>()?;
        let dim = *shape.last().unwrap_or(&0) as usize;
        if shape.len() != 2 || shape[0] as usize != faces.len() || dim == 0 {
            return Err(Error::ModelOutput { model: "SFace", what: "an unexpected output shape" });
        }
        data.chunks_exact(dim)
            .map(|v| {
                Embedding::from_raw(v.to_vec()).ok_or(Error::ModelOutput { model: "SFace", what: "a zero embedding" })
            })
            .collect()
    }

    /// Each detected face aligned, measured ([`FaceQuality`]) and embedded.
    pub fn probes(&self, img: &RgbImage, faces: &[Detection]) -> Result<Vec<Probe>> {
        let aligned: Vec<RgbImage> = faces.iter().map(|d| align(img, &d.landmarks)).collect();
        let quality: Vec<FaceQuality> = faces.iter().zip(&aligned).map(|(d, a)| FaceQuality::measure(d, a)).collect();
        let embedded = self.embed_aligned(&aligned)?;
        Ok(embedded.into_iter().zip(quality).map(|(embedding, quality)| Probe { embedding, quality }).collect())
    }

    /// Aligns and embeds the faces at `landmarks` in `img`.
    pub fn embed(&self, img: &RgbImage, landmarks: &[Landmarks]) -> Result<Vec<Embedding>> {
        let aligned: Vec<RgbImage> = landmarks.iter().map(|l| align(img, l)).collect();
        self.embed_aligned(&aligned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-3
    }

    #[test]
    fn identity_for_the_template_itself() {
        let m = Similarity::estimate(&TEMPLATE, &TEMPLATE);
        assert!(close(m.a, 1.0) && close(m.b, 0.0) && close(m.tx, 0.0) && close(m.ty, 0.0), "{m:?}");
    }

    #[test]
    fn recovers_a_hand_computed_transform() {
        // Scale 2, rotation 90° (a = 0, b = 2), translation (10, -5): (x, y) -> (-2y + 10, 2x - 5).
        let truth = Similarity { a: 0.0, b: 2.0, tx: 10.0, ty: -5.0 };
        let src = [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [3.0, 4.0], [-2.0, 5.0]];
        let dst = src.map(|p| truth.apply(p));
        assert_eq!(dst[1], [10.0, -3.0]);
        assert_eq!(dst[2], [8.0, -5.0]);
        let m = Similarity::estimate(&src, &dst);
        assert!(close(m.a, 0.0) && close(m.b, 2.0) && close(m.tx, 10.0) && close(m.ty, -5.0), "{m:?}");
        let back = m.inverse().apply([8.0, -5.0]);
        assert!(close(back[0], 0.0) && close(back[1], 1.0), "{back:?}");
    }

    #[test]
    fn a_half_size_face_is_scaled_up_two_times() {
        let half = TEMPLATE.map(|[x, y]| [x / 2.0 + 100.0, y / 2.0 + 50.0]);
        let m = Similarity::estimate(&half, &TEMPLATE);
        assert!(close(m.a, 2.0) && close(m.b, 0.0) && close(m.tx, -200.0) && close(m.ty, -100.0), "{m:?}");
    }

    #[test]
    fn embedding_is_normalised_and_hidden_from_debug() {
        let e = Embedding::from_raw(vec![3.0, 4.0]).unwrap();
        assert!(close(e.similarity(&e), 1.0));
        assert_eq!(format!("{e:?}"), "Embedding(<2 values>)");
        assert!(Embedding::from_raw(vec![0.0, 0.0]).is_none());
    }
}
