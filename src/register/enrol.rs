//! Enrolment quality gates: one clear face per reference photo, large and confident enough to
//! embed reliably, and photos of one person that agree with each other.

use std::path::PathBuf;

use crate::detect::Detection;
use crate::embed::Embedding;
use crate::pipeline::Engine;
use crate::error::{Error, Result};
use crate::media_in::{self, DecodeLimits};

#[derive(Debug, Clone, Copy)]
pub struct EnrolOptions {
    /// With several faces in a photo, take the largest instead of refusing the photo.
    pub pick_largest: bool,
    /// Smaller faces (shorter box side, pixels) are refused.
    pub min_face: f32,
    /// Less confident detections are refused.
    pub min_score: f32,
    /// Two photos of the person less similar than this draw a warning.
    pub agreement: f32,
}

impl Default for EnrolOptions {
    fn default() -> Self {
        EnrolOptions { pick_largest: false, min_face: 48.0, min_score: 0.5, agreement: 0.3 }
    }
}

/// The embeddings of one person from their reference photos, with warnings for people to read.
#[derive(Debug)]
pub struct Enrolment {
    pub embeddings: Vec<Embedding>,
    pub warnings: Vec<String>,
}

pub fn embed_reference_photos(engine: &Engine, photos: &[PathBuf], options: &EnrolOptions) -> Result<Enrolment> {
    let mut embeddings = Vec::with_capacity(photos.len());
    for path in photos {
        let refuse = |reason: String| Error::Usage(format!("{}: {reason}", path.display()));
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let photo = media_in::decode(&bytes, DecodeLimits::default()).map_err(|e| refuse(format!("cannot decode: {e}")))?;
        let faces = engine.detector().detect(&photo.rgb)?;
        let face = pick(&faces, options).map_err(refuse)?;
        embeddings.extend(engine.embed(&photo.rgb, &[face.landmarks])?);
    }
    let mut warnings = Vec::new();
    for i in 0..embeddings.len() {
        for j in i + 1..embeddings.len() {
            let s = embeddings[i].similarity(&embeddings[j]);
            if s < options.agreement {
                warnings.push(format!(
                    "{} and {} look like different people (similarity {s:.2} < {:.2}): check that both show the same person",
                    photos[i].display(),
                    photos[j].display(),
                    options.agreement
                ));
            }
        }
    }
    Ok(Enrolment { embeddings, warnings })
}

fn pick<'a>(faces: &'a [Detection], o: &EnrolOptions) -> std::result::Result<&'a Detection, String> {
    let side = |d: &Detection| d.bbox.width().min(d.bbox.height());
    let usable: Vec<&Detection> = faces.iter().filter(|d| d.score >= o.min_score && side(d) >= o.min_face).collect();
    match (usable.len(), faces.len()) {
        (1, _) => Ok(usable[0]),
        (0, 0) => Err("no face found: use a clear, front-facing photo of the person".into()),
        (0, n) => Err(format!(
            "{n} face(s) found but none is usable (needs a detector score of at least {:.2} and a face of at least {} px)",
            o.min_score, o.min_face
        )),
        (_, _) if o.pick_largest => Ok(usable
            .into_iter()
            .max_by(|a, b| a.bbox.area().total_cmp(&b.bbox.area()))
            .expect("several usable faces")),
        (n, _) => Err(format!(
            "{n} faces found: enrol from a photo that shows only this person, or pass --pick largest"
        )),
    }
}
