//! Whether a tag's confidence means what it says: of the proposals made with confidence near 0.8,
//! about 80% should be right. The confidence is a softmax over the shortlist's scores divided by
//! a temperature; [`Calibration`] collects proposals against gold tags, measures the expected
//! calibration error, and finds the temperature that would have fitted them best.
//!
//! Changing the temperature never changes which tag is proposed (it scales every score alike); it
//! only moves the confidences, so it can be chosen on cross-validated rows without touching
//! accuracy.

/// Proposals' shortlist scores (before the temperature, best first) and whether the best was right.
#[derive(Debug, Clone, Default)]
pub struct Calibration {
    rows: Vec<(Vec<f64>, bool)>,
}

/// Equal-width confidence bins of the expected calibration error.
const N_BINS: usize = 10;

impl Calibration {
    /// Adds one proposal: `scores` its shortlist's scores, best first, and whether the best tag
    /// was the gold one.
    pub fn add(&mut self, scores: &[f64], correct: bool) {
        if !scores.is_empty() {
            self.rows.push((scores.to_vec(), correct));
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Expected calibration error at `temperature`: over 10 equal-width confidence bins, the
    /// row-weighted mean of |accuracy - mean confidence|.
    pub fn expected_error(&self, temperature: f64) -> f64 {
        if self.rows.is_empty() {
            return 0.0;
        }
        let mut bins = [(0usize, 0.0f64, 0usize); N_BINS];
        for (scores, correct) in &self.rows {
            let confidence = top_confidence(scores, temperature);
            let bin = ((confidence * N_BINS as f64) as usize).min(N_BINS - 1);
            bins[bin].0 += 1;
            bins[bin].1 += confidence;
            bins[bin].2 += usize::from(*correct);
        }
        let total: f64 = bins
            .iter()
            .filter(|(n, _, _)| *n > 0)
            .map(|&(_, confidence_sum, n_correct)| (n_correct as f64 - confidence_sum).abs())
            .sum();
        total / self.rows.len() as f64
    }

    /// Mean squared difference between the best tag's confidence and whether it was right.
    pub fn brier(&self, temperature: f64) -> f64 {
        if self.rows.is_empty() {
            return 0.0;
        }
        let sum: f64 = self
            .rows
            .iter()
            .map(|(scores, correct)| {
                (top_confidence(scores, temperature) - f64::from(u8::from(*correct))).powi(2)
            })
            .sum();
        sum / self.rows.len() as f64
    }

    /// The temperature in 0.25..=8 (steps of 0.01) with the lowest Brier score; `None` without rows.
    pub fn best_temperature(&self) -> Option<f64> {
        if self.rows.is_empty() {
            return None;
        }
        (25..=800)
            .map(|step| f64::from(step) / 100.0)
            .map(|temperature| (temperature, self.brier(temperature)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(temperature, _)| temperature)
    }
}

/// Softmax of `scores / temperature` at the best score.
pub fn top_confidence(scores: &[f64], temperature: f64) -> f64 {
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = scores.iter().map(|&score| ((score - max) / temperature).exp()).sum();
    1.0 / sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_calibrated_set_has_no_error_and_overconfidence_asks_for_a_higher_temperature() {
        // Two candidates 1 apart: confidence e/(1+e) = 0.731 at temperature 1.
        let mut calibration = Calibration::default();
        assert_eq!(calibration.best_temperature(), None);
        let scores = [0.0, -1.0];
        let confidence = top_confidence(&scores, 1.0);
        assert!((confidence - 0.731_058_6).abs() < 1e-6);
        // 3 of 4 right at confidence 0.731: nearly calibrated.
        for correct in [true, true, true, false] {
            calibration.add(&scores, correct);
        }
        assert!((calibration.expected_error(1.0) - (0.75 - confidence)).abs() < 1e-9);
        // Half right at 0.731 is overconfident: the best temperature flattens the scores.
        let mut overconfident = Calibration::default();
        for correct in [true, false, true, false] {
            overconfident.add(&scores, correct);
        }
        let best = overconfident.best_temperature().expect("rows");
        assert!(best > 4.0, "{best}");
        assert!(overconfident.expected_error(best) < overconfident.expected_error(1.0));
        assert!((top_confidence(&scores, 2.0) - 1.0 / (1.0 + (-0.5f64).exp())).abs() < 1e-12);
    }
}
