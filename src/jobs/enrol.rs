//! `blurgate enroll`: one person's embeddings from reference photos, through quality gates:
//! one clear face per photo, large, sharp, confident and frontal enough to embed reliably
//! ([`QualityGate::ENROL`]), and photos of one person that agree with each other.

use std::path::PathBuf;

use super::engine::Engine;
use crate::embed::{Embedding, Probe, QualityGate};
use crate::error::{Error, Refusal, Result};
use crate::media::{self, DecodeLimits};
use crate::storage::Location;

#[derive(Debug, Clone, Copy)]
pub struct EnrolOptions {
    /// With several faces in a photo, take the largest instead of refusing the photo.
    pub pick_largest: bool,
    /// What a reference face must offer.
    pub gate: QualityGate,
    /// Two photos of the person less similar than this are refused as showing different
    /// people (about 0.5% of different-person pairs reach 0.3).
    pub agreement: f32,
    /// Enrol photos that disagree anyway (with a warning).
    pub force: bool,
}

impl Default for EnrolOptions {
    fn default() -> Self {
        EnrolOptions { pick_largest: false, gate: QualityGate::ENROL, agreement: 0.3, force: false }
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
        let refuse = |refusal: Refusal| Error::ReferencePhoto { photo: path.clone(), refusal };
        let bytes = Location::from(path.as_path()).read().map_err(|e| Error::io(path, e))?;
        let photo =
            media::decode(&bytes, DecodeLimits::default()).map_err(|e| refuse(Refusal::Unreadable(e.to_string())))?;
        let faces = engine.detector().detect(&photo.rgb)?;
        let probes = engine.embedder()?.probes(&photo.rgb, &faces)?;
        embeddings.push(pick(probes, options).map_err(refuse)?);
    }
    let mut disagreements = Vec::new();
    for i in 0..embeddings.len() {
        for j in i + 1..embeddings.len() {
            let s = embeddings[i].similarity(&embeddings[j]);
            if s < options.agreement {
                disagreements.push(format!(
                    "{} and {} look like different people (similarity {s:.2} < {:.2})",
                    photos[i].display(),
                    photos[j].display(),
                    options.agreement
                ));
            }
        }
    }
    if !disagreements.is_empty() && !options.force {
        return Err(Error::PhotosDisagree(disagreements));
    }
    Ok(Enrolment { embeddings, warnings: disagreements })
}

/// The one usable face of a reference photo, or why there is none.
fn pick(probes: Vec<Probe>, o: &EnrolOptions) -> std::result::Result<Embedding, Refusal> {
    let found = probes.len();
    let (mut usable, refused): (Vec<Probe>, Vec<Probe>) =
        probes.into_iter().partition(|p| o.gate.refusal(&p.quality).is_none());
    let size = |p: &Probe| p.quality.size;
    match usable.len() {
        1 => Ok(usable.remove(0).embedding),
        0 if found == 0 => Err(Refusal::NoFace),
        0 => {
            let largest = refused.iter().max_by(|a, b| size(a).total_cmp(&size(b))).expect("a face was found");
            let reason = o.gate.refusal(&largest.quality).expect("refused");
            Err(Refusal::NoneUsable { found, reason })
        }
        _ if o.pick_largest => {
            Ok(usable.into_iter().max_by(|a, b| size(a).total_cmp(&size(b))).expect("several").embedding)
        }
        n => Err(Refusal::SeveralFaces(n)),
    }
}
