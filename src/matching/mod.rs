//! What to redact: per face, the closest register entry ([`Match`]) becomes a [`Decision`]
//! (three bands set by two [`Thresholds`]) and the [`Policy`] turns the decision into an
//! [`Action`]. [`tail`] says where the thresholds lie for a register of a given size.

pub mod tail;

use serde::{Deserialize, Serialize};

use crate::embed::{FaceQuality, QualityGate};
pub use tail::ImpostorTail;

/// What happens to a face.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Redacted,
    Kept,
}

/// The closest register entry for a face.
#[derive(Debug, Clone, Copy)]
pub struct Match<'a> {
    /// The person's register id.
    pub id: &'a str,
    pub similarity: f32,
    /// The person refused the purpose the photos are for.
    pub refuses: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Redact every face.
    All,
    /// Redact the people in the register who refused the purpose; keep everyone else.
    OptOuts,
    /// The register lists people who consented: redact everyone else.
    ConsentedOnly,
}

impl Policy {
    /// The name the report, the audit log and the command line use.
    pub fn name(self) -> &'static str {
        match self {
            Policy::All => "all",
            Policy::OptOuts => "opt-outs",
            Policy::ConsentedOnly => "consented-only",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Similarity at or above the match threshold.
    Matched,
    /// Between the two thresholds: treated as a match for redaction and flagged for review.
    Uncertain,
    /// Below the uncertain threshold, or no register.
    Unknown,
}

/// Similarity thresholds (SFace cosine) and why they are what they are; recorded in the
/// report and the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    pub matched: f32,
    pub uncertain: f32,
    /// Where the two edges come from.
    #[serde(default)]
    pub source: ThresholdSource,
    /// Unexpired people in the register the edges were chosen for.
    #[serde(default)]
    pub people: usize,
    /// Per-face false-redaction rate the edges were chosen for (absent with flags).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_far: Option<f64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThresholdSource {
    /// The impostor tail shipped with blurgate ([`ImpostorTail::SHIPPED`]).
    #[default]
    Model,
    /// The tail `blurgate calibrate` fitted on the organisation's photos, stored in the register.
    Calibration,
    /// `--match-threshold` / `--uncertain-threshold`.
    Flags,
}

/// Default share of strangers' faces that may be redacted because they resemble someone in
/// the register.
pub const DEFAULT_TARGET_FAR: f64 = 0.005;
/// The matched edge is set for a false-redaction rate this many times lower than the uncertain
/// edge: the band between spans `scale × ln 4` (0.043 with the shipped tail), so it stays
/// narrow at every register size.
const MATCH_MARGIN: f64 = 4.0;

impl Thresholds {
    /// The edges at which a stranger's face is redacted with chance `target` (uncertain) or
    /// `target / 4` (matched) when compared with `people` people. A face is compared with every
    /// person, so the per-comparison rate is `1 - (1 - target)^(1/people)`: the edges rise as
    /// the register grows.
    pub fn for_people(tail: &ImpostorTail, people: usize, target: f64, source: ThresholdSource) -> Thresholds {
        let edge = |per_face: f64| {
            let per_comparison = 1.0 - (1.0 - per_face).powf(1.0 / people.max(1) as f64);
            tail.threshold_for(per_comparison).min(1.0)
        };
        Thresholds {
            matched: edge(target / MATCH_MARGIN),
            uncertain: edge(target),
            source,
            people,
            target_far: Some(target),
        }
    }

    /// `--match-threshold` / `--uncertain-threshold` replace the edges they name.
    pub fn overridden(self, matched: Option<f32>, uncertain: Option<f32>) -> Thresholds {
        if matched.is_none() && uncertain.is_none() {
            return self;
        }
        Thresholds {
            matched: matched.unwrap_or(self.matched),
            uncertain: uncertain.unwrap_or(self.uncertain),
            source: ThresholdSource::Flags,
            target_far: None,
            ..self
        }
    }
}

/// The outcome for one face.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceDecision {
    pub decision: Decision,
    pub person: Option<String>,
    pub similarity: Option<f32>,
    pub action: Action,
}

impl FaceDecision {
    pub fn needs_review(&self) -> bool {
        self.decision == Decision::Uncertain
    }
}

/// The decision for one face. A face too weak to name someone ([`QualityGate::MATCH`]) is at
/// most `uncertain`: redacted and flagged, never `matched` on weak evidence.
pub fn decide(policy: Policy, t: &Thresholds, best: Option<Match<'_>>, quality: &FaceQuality) -> FaceDecision {
    let weak = QualityGate::MATCH.refusal(quality).is_some();
    let decision = match best {
        Some(m) if m.similarity >= t.matched && !weak => Decision::Matched,
        Some(m) if m.similarity >= t.uncertain => Decision::Uncertain,
        _ => Decision::Unknown,
    };
    let refuses = best.is_some_and(|m| m.refuses);
    let action = match (policy, decision) {
        (Policy::All, _) => Action::Redacted,
        // An uncertain face is redacted under every policy: never pass a doubt.
        (_, Decision::Uncertain) => Action::Redacted,
        (Policy::OptOuts, Decision::Matched) if refuses => Action::Redacted,
        (Policy::OptOuts, _) => Action::Kept,
        (Policy::ConsentedOnly, Decision::Matched) if !refuses => Action::Kept,
        (Policy::ConsentedOnly, _) => Action::Redacted,
    };
    let named = decision != Decision::Unknown;
    FaceDecision {
        decision,
        person: best.filter(|_| named).map(|m| m.id.to_string()),
        similarity: best.map(|m| (m.similarity * 1000.0).round() / 1000.0),
        action,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: FaceQuality = FaceQuality { size: 120.0, score: 0.9, sharpness: 10.0, yaw: 0.05 };

    #[test]
    fn three_bands_and_policies() {
        let t =
            Thresholds { matched: 0.4, uncertain: 0.27, source: ThresholdSource::Flags, people: 1, target_far: None };
        let (opted_out, consented) = (true, false);
        let m = |refuses, similarity| Some(Match { id: "p1", similarity, refuses });
        use Action::*;
        use Policy::*;
        let cases = [
            (OptOuts, m(opted_out, 0.5), Decision::Matched, Redacted),
            (OptOuts, m(opted_out, 0.3), Decision::Uncertain, Redacted),
            (OptOuts, m(opted_out, 0.1), Decision::Unknown, Kept),
            (OptOuts, None, Decision::Unknown, Kept),
            (OptOuts, m(consented, 0.9), Decision::Matched, Kept),
            (ConsentedOnly, m(consented, 0.9), Decision::Matched, Kept),
            (ConsentedOnly, m(consented, 0.3), Decision::Uncertain, Redacted),
            (ConsentedOnly, m(consented, 0.1), Decision::Unknown, Redacted),
            (ConsentedOnly, m(opted_out, 0.9), Decision::Matched, Redacted),
            (All, m(consented, 0.9), Decision::Matched, Redacted),
        ];
        for (policy, best, decision, action) in cases {
            let d = decide(policy, &t, best, &GOOD);
            assert_eq!((d.decision, d.action), (decision, action), "{policy:?} {:?}", best.map(|b| b.similarity));
            assert_eq!(d.person.is_some(), decision != Decision::Unknown);
        }
    }

    #[test]
    fn a_weak_face_is_never_matched_only_uncertain() {
        let t =
            Thresholds { matched: 0.4, uncertain: 0.27, source: ThresholdSource::Flags, people: 1, target_far: None };
        let best = Some(Match { id: "p1", similarity: 0.9, refuses: true });
        for weak in [
            FaceQuality { size: 20.0, ..GOOD },
            FaceQuality { sharpness: 1.0, ..GOOD },
            FaceQuality { yaw: 0.8, ..GOOD },
            FaceQuality { score: 0.35, ..GOOD },
        ] {
            let d = decide(Policy::OptOuts, &t, best, &weak);
            assert_eq!((d.decision, d.action), (Decision::Uncertain, Action::Redacted), "{weak:?}");
        }
    }

    #[test]
    fn thresholds_rise_as_the_register_grows() {
        let tail = ImpostorTail::SHIPPED;
        let sizes = [1, 5, 20, 100, 1000];
        let t: Vec<Thresholds> = sizes
            .iter()
            .map(|&k| Thresholds::for_people(&tail, k, DEFAULT_TARGET_FAR, ThresholdSource::Model))
            .collect();
        // Up to 5 people the uncertain edge stays where the fitted tail starts (it says
        // nothing below); from there on both edges rise.
        for w in t.windows(2) {
            assert!(w[1].matched > w[0].matched && w[1].uncertain >= w[0].uncertain, "{w:?}");
            assert!(w[0].people < 5 || w[1].uncertain > w[0].uncertain, "{w:?}");
        }
        for (k, t) in sizes.iter().zip(&t).filter(|(_, t)| t.uncertain > tail.from) {
            assert!(t.uncertain < t.matched && t.matched - t.uncertain < 0.05, "a narrow band: {t:?}");
            // The edge keeps a stranger's chance of reaching it over k people at the target.
            let per_face = 1.0 - (1.0 - tail.far(t.uncertain)).powi(*k as i32);
            assert!((per_face / DEFAULT_TARGET_FAR - 1.0).abs() < 0.01, "{k}: {per_face}");
        }
        // A stricter target asks for more similarity.
        assert!(Thresholds::for_people(&tail, 20, 0.001, ThresholdSource::Model).uncertain > t[2].uncertain);
        let flags = t[2].overridden(Some(0.5), None);
        assert_eq!(
            (flags.matched, flags.uncertain, flags.source, flags.target_far),
            (0.5, t[2].uncertain, ThresholdSource::Flags, None)
        );
    }
}
