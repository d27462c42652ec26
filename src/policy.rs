//! What to redact: per face, the register match becomes a [`Decision`] (three bands set by two
//! thresholds) and the policy turns the decision into an [`Action`].

use serde::{Deserialize, Serialize};

use crate::register::Match;
use crate::report::Action;

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

/// Similarity thresholds (SFace cosine). Defaults from `blurgate calibrate` on public
/// identity sets; see README "Thresholds".
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    pub matched: f32,
    pub uncertain: f32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds { matched: DEFAULT_MATCH_THRESHOLD, uncertain: DEFAULT_UNCERTAIN_THRESHOLD }
    }
}

/// Near FAR 0.1% on the calibration pairs: a match here is very unlikely to be someone else.
pub const DEFAULT_MATCH_THRESHOLD: f32 = 0.40;
/// Below FAR 1% (0.31): the band between catches hard photos of registered people (profile,
/// blur, small faces) at the price of some review work.
pub const DEFAULT_UNCERTAIN_THRESHOLD: f32 = 0.27;

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

pub fn decide(policy: Policy, purpose: &str, t: &Thresholds, best: Option<Match<'_>>) -> FaceDecision {
    let decision = match best {
        Some(m) if m.similarity >= t.matched => Decision::Matched,
        Some(m) if m.similarity >= t.uncertain => Decision::Uncertain,
        _ => Decision::Unknown,
    };
    let refuses = best.is_some_and(|m| m.person.refuses(purpose));
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
        person: best.filter(|_| named).map(|m| m.person.id.clone()),
        similarity: best.map(|m| (m.similarity * 1000.0).round() / 1000.0),
        action,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::Embedding;
    use crate::register::Person;

    fn person(refuses: &[&str]) -> Person {
        Person {
            id: "p1".into(),
            label: None,
            refuses: refuses.iter().map(|s| s.to_string()).collect(),
            enrolled_at: time::OffsetDateTime::UNIX_EPOCH,
            expires_at: None,
            embeddings: vec![Embedding::from_raw(vec![1.0]).unwrap()],
        }
    }

    #[test]
    fn three_bands_and_policies() {
        let t = Thresholds { matched: 0.4, uncertain: 0.27 };
        let opted_out = person(&["promotion"]);
        let consented = person(&[]);
        let m = |p, s| Some(Match { person: p, similarity: s });
        use Action::*;
        use Policy::*;
        let cases = [
            (OptOuts, m(&opted_out, 0.5), Decision::Matched, Redacted),
            (OptOuts, m(&opted_out, 0.3), Decision::Uncertain, Redacted),
            (OptOuts, m(&opted_out, 0.1), Decision::Unknown, Kept),
            (OptOuts, None, Decision::Unknown, Kept),
            (OptOuts, m(&consented, 0.9), Decision::Matched, Kept),
            (ConsentedOnly, m(&consented, 0.9), Decision::Matched, Kept),
            (ConsentedOnly, m(&consented, 0.3), Decision::Uncertain, Redacted),
            (ConsentedOnly, m(&consented, 0.1), Decision::Unknown, Redacted),
            (ConsentedOnly, m(&opted_out, 0.9), Decision::Matched, Redacted),
            (All, m(&consented, 0.9), Decision::Matched, Redacted),
        ];
        for (policy, best, decision, action) in cases {
            let d = decide(policy, "promotion", &t, best);
            assert_eq!((d.decision, d.action), (decision, action), "{policy:?} {:?}", best.map(|b| b.similarity));
            assert_eq!(d.person.is_some(), decision != Decision::Unknown);
        }
    }
}
