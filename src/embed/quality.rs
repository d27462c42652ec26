//! How much a face can be trusted for recognition: size, sharpness, detector confidence and
//! pose from the five landmarks. Tiny, blurred and turned faces give embeddings that sit close
//! to many people at once, so they need stronger evidence to be called a match, and an
//! enrolment photo that shows one is refused.

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::detect::Detection;

/// Measured on the detection and on the face aligned for SFace (112×112).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FaceQuality {
    /// Shorter side of the detected box, pixels.
    pub size: f32,
    /// Detector confidence.
    pub score: f32,
    /// Mean absolute Laplacian of the aligned face's centre, grey levels: low for blurred or
    /// upscaled faces.
    pub sharpness: f32,
    /// Nose offset from the eyes' midpoint along the eye line, in eye distances: 0 frontal,
    /// about ±0.5 and beyond for a profile.
    pub yaw: f32,
}

impl FaceQuality {
    pub fn measure(d: &Detection, aligned: &RgbImage) -> FaceQuality {
        let [le, re, nose, _, _] = d.landmarks.0;
        let eye = [re[0] - le[0], re[1] - le[1]];
        let dist = (eye[0] * eye[0] + eye[1] * eye[1]).sqrt().max(1e-3);
        let mid = [(le[0] + re[0]) / 2.0, (le[1] + re[1]) / 2.0];
        let yaw = ((nose[0] - mid[0]) * eye[0] + (nose[1] - mid[1]) * eye[1]) / (dist * dist);
        FaceQuality { size: d.bbox.width().min(d.bbox.height()), score: d.score, sharpness: sharpness(aligned), yaw }
    }
}

/// Mean absolute 4-neighbour Laplacian of the grey face over the aligned template's centre
/// (eyes to mouth), where hair and background do not count.
fn sharpness(aligned: &RgbImage) -> f32 {
    let grey = |x: u32, y: u32| {
        let p = aligned.get_pixel(x, y);
        0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32
    };
    let (mut sum, mut n) = (0.0f32, 0u32);
    for y in 32..100 {
        for x in 24..88 {
            let lap = 4.0 * grey(x, y) - grey(x - 1, y) - grey(x + 1, y) - grey(x, y - 1) - grey(x, y + 1);
            sum += lap.abs();
            n += 1;
        }
    }
    sum / n as f32
}

/// The least a face must offer: for enrolment (refused below) and for a `matched` decision
/// (below, a face is at most `uncertain`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QualityGate {
    pub min_size: f32,
    pub min_score: f32,
    pub min_sharpness: f32,
    pub max_yaw: f32,
}

impl QualityGate {
    /// Reference photos: every identity photo measured has sharpness above 7 and |yaw| under
    /// 0.3; crowd faces of 48 to 80 px have a median sharpness of 5.2.
    pub const ENROL: QualityGate = QualityGate { min_size: 48.0, min_score: 0.5, min_sharpness: 3.0, max_yaw: 0.5 };
    /// Probes: under 32 px, or upscaled from such (sharpness under 2), or a half profile, an
    /// embedding is too little evidence to name someone.
    pub const MATCH: QualityGate = QualityGate { min_size: 32.0, min_score: 0.5, min_sharpness: 2.0, max_yaw: 0.5 };

    /// Why `q` falls short of the gate, if it does.
    pub fn refusal(&self, q: &FaceQuality) -> Option<String> {
        if q.size < self.min_size {
            Some(format!("the face is too small ({:.0} px, needs at least {:.0} px)", q.size, self.min_size))
        } else if q.score < self.min_score {
            Some(format!("the detector is unsure it is a face (score {:.2}, needs {:.2})", q.score, self.min_score))
        } else if q.sharpness < self.min_sharpness {
            Some(format!("the face is blurred (sharpness {:.1}, needs {:.1})", q.sharpness, self.min_sharpness))
        } else if q.yaw.abs() > self.max_yaw {
            Some(format!("the face is turned away (yaw {:.2}, at most {:.2})", q.yaw, self.max_yaw))
        } else {
            None
        }
    }
}
