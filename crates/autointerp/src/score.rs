//! Detection scores: the tutorial's accuracy and the confusion-matrix scores beside it.

use serde::{Deserialize, Serialize};

/// Scores of one set of predictions against the truth.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DetectionScores {
    /// Active examples predicted active.
    pub tp: usize,
    /// Inactive examples predicted active.
    pub fp: usize,
    /// Inactive examples predicted inactive.
    pub tn: usize,
    /// Active examples predicted inactive.
    pub fn_: usize,
    /// The tutorial's score: correct classifications / examples.
    pub accuracy: f64,
    /// tp / (tp + fp); `None` when nothing was predicted active.
    pub precision: Option<f64>,
    /// tp / (tp + fn); `None` when no example is active.
    pub recall: Option<f64>,
    /// Harmonic mean of precision and recall (0 when either is 0; `None` when either is
    /// undefined).
    pub f1: Option<f64>,
    /// Mean of the true-positive and true-negative rates (the rate of a class with no examples
    /// is left out).
    pub balanced_accuracy: f64,
    /// The accuracy a scorer that always answers "None" gets on the same examples: the floor.
    pub none_floor: f64,
}

/// Scores 1-based `predictions` against `truth` (whether each example is active).
pub fn score_predictions(predictions: &[usize], truth: &[bool]) -> DetectionScores {
    let n = truth.len();
    let (mut tp, mut fp, mut tn, mut fn_) = (0, 0, 0, 0);
    for (i, &t) in truth.iter().enumerate() {
        let p = predictions.contains(&(i + 1));
        match (p, t) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, false) => tn += 1,
            (false, true) => fn_ += 1,
        }
    }
    let ratio = |a: usize, b: usize| (b > 0).then(|| a as f64 / b as f64);
    let precision = ratio(tp, tp + fp);
    let recall = ratio(tp, tp + fn_);
    let f1 = match (precision, recall) {
        (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
        (Some(_), Some(_)) => Some(0.0),
        _ => None,
    };
    let rates: Vec<f64> = [ratio(tp, tp + fn_), ratio(tn, tn + fp)]
        .into_iter()
        .flatten()
        .collect();
    let balanced_accuracy = if rates.is_empty() {
        0.0
    } else {
        rates.iter().sum::<f64>() / rates.len() as f64
    };
    let accuracy = if n == 0 {
        0.0
    } else {
        (tp + tn) as f64 / n as f64
    };
    let none_floor = if n == 0 {
        0.0
    } else {
        (tn + fp) as f64 / n as f64
    };
    DetectionScores {
        tp,
        fp,
        tn,
        fn_,
        accuracy,
        precision,
        recall,
        f1,
        balanced_accuracy,
        none_floor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tutorial_example() {
        // 5 random + 3 top (#1, #3, #7), predicted #1, #3, #6: 6/8.
        let truth = [true, false, true, false, false, false, true, false];
        let s = score_predictions(&[1, 3, 6], &truth);
        assert_eq!(s.accuracy, 0.75);
        assert_eq!((s.tp, s.fp, s.tn, s.fn_), (2, 1, 4, 1));
        assert_eq!(s.precision, Some(2.0 / 3.0));
        assert_eq!(s.recall, Some(2.0 / 3.0));
        assert!((s.balanced_accuracy - (2.0 / 3.0 + 0.8) / 2.0).abs() < 1e-12);
        assert_eq!(s.none_floor, 5.0 / 8.0);
    }

    #[test]
    fn always_none_gets_the_floor_and_half_balanced() {
        let truth = [
            true, true, true, true, false, false, false, false, false, false, false, false,
        ];
        let s = score_predictions(&[], &truth);
        assert!((s.accuracy - 8.0 / 12.0).abs() < 1e-12);
        assert_eq!(s.balanced_accuracy, 0.5);
        assert_eq!(s.precision, None);
        assert_eq!(s.f1, None);
    }

    proptest! {
        #![proptest_config(ProptestConfig { rng_seed: proptest::test_runner::RngSeed::Fixed(20261125), ..ProptestConfig::default() })]
        #[test]
        fn counts_add_up(truth in proptest::collection::vec(any::<bool>(), 1..30), picks in proptest::collection::vec(1usize..30, 0..30)) {
            let s = score_predictions(&picks, &truth);
            prop_assert_eq!(s.tp + s.fp + s.tn + s.fn_, truth.len());
            prop_assert!((0.0..=1.0).contains(&s.accuracy));
            prop_assert!((0.0..=1.0).contains(&s.balanced_accuracy));
            // The accuracy of the tutorial's formula.
            let direct = truth.iter().enumerate().filter(|(i, t)| picks.contains(&(i + 1)) == **t).count();
            prop_assert!((s.accuracy - direct as f64 / truth.len() as f64).abs() < 1e-12);
        }
    }
}
