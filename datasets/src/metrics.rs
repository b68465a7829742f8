//! Accuracy and weighted F1 over [`Judgement`]s, computed as scikit-learn does
//! (`accuracy_score`, `f1_score(average="weighted")`, zero division -> 0).

use std::collections::BTreeMap;

use crate::normalize::Judgement;

/// Share of correct judgements; 0 for none.
pub fn accuracy(judgements: &[Judgement]) -> f64 {
    if judgements.is_empty() {
        return 0.0;
    }
    judgements.iter().filter(|judgement| judgement.correct).count() as f64 / judgements.len() as f64
}

/// F1 per reference class, averaged with the classes' reference counts as weights. Predictions
/// that are no class (raw FinLoRA answers, `None`) only cost recall, which is why FinLoRA's F1
/// can exceed its accuracy.
pub fn weighted_f1(judgements: &[Judgement]) -> f64 {
    if judgements.is_empty() {
        return 0.0;
    }
    #[derive(Default)]
    struct Counts {
        support: usize,
        true_positive: usize,
        predicted: usize,
    }
    let mut classes: BTreeMap<&str, Counts> = BTreeMap::new();
    for judgement in judgements {
        let reference = judgement.reference.as_str();
        let prediction = judgement.prediction.as_deref();
        classes.entry(reference).or_default().support += 1;
        if let Some(predicted) = prediction {
            classes.entry(predicted).or_default().predicted += 1;
            if predicted == reference {
                classes.entry(reference).or_default().true_positive += 1;
            }
        }
    }
    let total: usize = judgements.len();
    classes
        .values()
        .filter(|counts| counts.support > 0)
        .map(|counts| {
            let precision = ratio(counts.true_positive, counts.predicted);
            let recall = ratio(counts.true_positive, counts.support);
            let f1 =
                if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
            f1 * counts.support as f64 / total as f64
        })
        .sum()
}

fn ratio(numerator: usize, denominator: usize) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}
