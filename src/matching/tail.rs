//! How often strangers look alike: similarity statistics of same-person and different-person
//! pairs (ROC AUC, the threshold for a chosen false-accept rate with the true-accept rate it
//! keeps) and the impostor tail ([`ImpostorTail`]) from which the thresholds for a register of
//! any size are chosen.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize)]
pub struct OperatingPoint {
    pub far: f64,
    /// Similarity at or above which two faces are called the same person.
    pub threshold: f32,
    pub tar: f64,
}

/// The upper tail of different-person (impostor) similarities, as the chance that one
/// comparison with someone else reaches `t`: `FAR(t) = rate × exp(-(t - from) / scale)` for
/// `t ≥ from` (an exponential tail, fitted by maximum likelihood to the similarities above
/// `from`). Holds three numbers, never face data, so it may be stored with a register.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ImpostorTail {
    /// Where the fitted tail starts (the similarity reached by `rate` of the pairs).
    pub from: f32,
    /// Share of different-person pairs at or above `from`.
    pub rate: f64,
    /// Mean excess over `from` of the pairs above it.
    pub scale: f32,
    /// Different-person pairs it was fitted on.
    pub pairs: usize,
}

/// Fewer different-person pairs than this leave the tail unknown.
pub const MIN_TAIL_PAIRS: usize = 500;
/// The tail starts where this share of pairs lie above, or higher up where there are enough.
const TAIL_SHARE: f64 = 0.001;
/// ... but holds at least this many pairs, so that its slope is measured.
const TAIL_MIN_COUNT: usize = 50;

impl ImpostorTail {
    /// Fitted by `scripts/eval_matching.sh` to 626,320 different-person SFace similarities:
    /// the faces of 55 WIDER FACE val crowd photos and 7 group photos against 71 portraits of
    /// 18 people and 96 enrolable crowd faces, and the portraits among themselves (README
    /// "Thresholds").
    pub const SHIPPED: ImpostorTail = ImpostorTail { from: 0.347, rate: 0.001, scale: 0.0313, pairs: 626_320 };

    /// Fits the tail to different-person similarities; `None` with fewer than
    /// [`MIN_TAIL_PAIRS`].
    pub fn fit(different: &[f32]) -> Option<ImpostorTail> {
        if different.len() < MIN_TAIL_PAIRS {
            return None;
        }
        let mut desc = different.to_vec();
        desc.sort_by(|a, b| b.total_cmp(a));
        let count = ((TAIL_SHARE * desc.len() as f64).ceil() as usize).max(TAIL_MIN_COUNT);
        let from = desc[count - 1];
        let above = &desc[..count];
        let scale = above.iter().map(|s| s - from).sum::<f32>() / count as f32;
        Some(ImpostorTail { from, rate: count as f64 / desc.len() as f64, scale: scale.max(1e-3), pairs: desc.len() })
    }

    /// The chance that one comparison with a different person reaches `t` (for `t ≥ from`).
    pub fn far(&self, t: f32) -> f64 {
        self.rate * (-((t - self.from) as f64) / self.scale as f64).exp()
    }

    /// The similarity that one comparison with a different person reaches with chance `far`.
    /// Below the fitted part (`far > rate`) it stays at `from`: the tail says nothing there.
    pub fn threshold_for(&self, far: f64) -> f32 {
        self.from + self.scale * (self.rate / far).ln().max(0.0) as f32
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Calibration {
    pub photos: usize,
    /// Photos without one usable face, left out of every pair.
    pub skipped: Vec<String>,
    pub same_pairs: usize,
    pub different_pairs: usize,
    pub auc: f64,
    pub points: Vec<OperatingPoint>,
    pub same_mean: f64,
    pub different_mean: f64,
    /// Highest different-person similarity: above it no impostor pair was accepted.
    pub different_max: f32,
    /// The fitted impostor tail; `None` with too few different-person pairs.
    pub tail: Option<ImpostorTail>,
}

pub fn evaluate(photos: usize, skipped: Vec<String>, same: &[f32], different: &[f32], fars: &[f64]) -> Calibration {
    let mut diff_desc = different.to_vec();
    diff_desc.sort_by(|a, b| b.total_cmp(a));
    let mut same_sorted = same.to_vec();
    same_sorted.sort_by(f32::total_cmp);
    // AUC = P(same > different), ties counting half (Mann-Whitney U).
    let mut wins = 0.0f64;
    for s in same {
        let above = diff_desc.partition_point(|d| d > s);
        let at_or_above = diff_desc.partition_point(|d| d >= s);
        wins += (diff_desc.len() - at_or_above) as f64 + 0.5 * (at_or_above - above) as f64;
    }
    let auc = wins / (same.len() as f64 * different.len() as f64);
    let points = fars
        .iter()
        .map(|&far| {
            // The smallest threshold that accepts at most far × N different-person pairs.
            let allowed = (far * diff_desc.len() as f64).floor() as usize;
            let threshold = diff_desc.get(allowed).map_or(f32::NEG_INFINITY, |d| next_up(*d));
            let accepted = same_sorted.len() - same_sorted.partition_point(|s| *s < threshold);
            OperatingPoint { far, threshold, tar: accepted as f64 / same.len() as f64 }
        })
        .collect();
    let mean = |v: &[f32]| v.iter().map(|x| *x as f64).sum::<f64>() / v.len() as f64;
    Calibration {
        photos,
        skipped,
        same_pairs: same.len(),
        different_pairs: different.len(),
        auc,
        points,
        same_mean: mean(same),
        different_mean: mean(different),
        different_max: diff_desc[0],
        tail: ImpostorTail::fit(different),
    }
}

fn next_up(x: f32) -> f32 {
    // Thresholds are printed to three decimals: the next thousandth above keeps them exact.
    ((x * 1000.0).floor() + 1.0) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_separation_and_far_thresholds() {
        let same = [0.8, 0.7, 0.6, 0.2];
        let different: Vec<f32> = (0..100).map(|i| i as f32 / 400.0).collect(); // 0 .. 0.2475
        let c = evaluate(10, vec![], &same, &different, &[0.01, 0.1]);
        // 0.2 beats 80 of the 100 different pairs and ties one (counted half).
        assert!((c.auc - (3.0 * 100.0 + 80.5) / 400.0).abs() < 1e-9, "{}", c.auc);
        // FAR 1%: one different pair (0.2475) may pass, so the threshold sits just above 0.245.
        assert!((c.points[0].threshold - 0.246).abs() < 1e-6, "{:?}", c.points[0]);
        assert_eq!(c.points[0].tar, 0.75);
        assert!((c.points[1].threshold - 0.223).abs() < 1e-6, "{:?}", c.points[1]);
    }

    #[test]
    fn tail_fit_recovers_an_exponential_tail() {
        // Similarities whose upper tail is exactly exponential: FAR(t) = exp(-(t - 0) / 0.05).
        let n = 100_000;
        let different: Vec<f32> = (0..n).map(|i| -0.05 * ((i as f32 + 0.5) / n as f32).ln()).collect();
        let tail = ImpostorTail::fit(&different).unwrap();
        assert_eq!(tail.pairs, n);
        assert!((tail.rate - 0.001).abs() < 1e-9, "{tail:?}");
        assert!((tail.scale - 0.05).abs() < 0.002, "{tail:?}");
        for far in [1e-3, 1e-4, 1e-5] {
            let t = tail.threshold_for(far);
            assert!((t - (-0.05 * (far as f32).ln())).abs() < 0.01, "{far}: {t}");
            assert!((tail.far(t) / far - 1.0).abs() < 1e-3);
        }
        assert!(ImpostorTail::fit(&different[..MIN_TAIL_PAIRS - 1]).is_none());
    }
}
