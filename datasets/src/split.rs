//! Deterministic train / validation splits carved from a task's train file, by group so that
//! one headline's questions or one sentence's entities never straddle the two.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::example::Example;
use crate::prng::SplitMix64;

/// Which part of a task to load. Test files are used as they are; train and validation
/// partition the train file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    Train,
    Validation,
    Test,
    /// FinLoRA's early XBRL test files with the filing's facts inside the prompt
    /// (`xbrl_extraction/with_xml_context`; xbrl_tags, xbrl_values, xbrl_formula_calculation).
    TestWithContext,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Validation => "validation",
            Split::Test => "test",
            Split::TestWithContext => "test_with_context",
        }
    }
}

/// The share of a train file held out for validation, and the seed that picks it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ValidationSplit {
    /// Share of groups (not rows) held out, in `[0, 1)`.
    pub fraction: f64,
    pub seed: u64,
}

impl Default for ValidationSplit {
    /// FinLoRA v1 holds out 5 % for evaluation during training.
    fn default() -> Self {
        ValidationSplit { fraction: 0.05, seed: 42 }
    }
}

/// Splits `examples` into (train, validation): the distinct groups in first-seen order are
/// shuffled with SplitMix64(`seed`) and the first `round(fraction * n_groups)` go to validation.
/// Row order inside each part follows the file.
pub fn split_by_group(
    examples: Vec<Example>,
    split: ValidationSplit,
) -> Result<(Vec<Example>, Vec<Example>)> {
    if !(0.0..1.0).contains(&split.fraction) {
        return Err(Error::Config(format!("validation fraction {} is not in [0, 1)", split.fraction)));
    }
    let mut group_order: Vec<&str> = Vec::new();
    let mut group_idx: HashMap<&str, usize> = HashMap::new();
    for example in &examples {
        if !group_idx.contains_key(example.group.as_str()) {
            group_idx.insert(&example.group, group_order.len());
            group_order.push(&example.group);
        }
    }
    let mut shuffled: Vec<usize> = (0..group_order.len()).collect();
    SplitMix64::new(split.seed).shuffle(&mut shuffled);
    let n_validation = (split.fraction * group_order.len() as f64).round() as usize;
    let mut in_validation = vec![false; group_order.len()];
    for &idx in &shuffled[..n_validation.min(shuffled.len())] {
        in_validation[idx] = true;
    }
    let is_validation: Vec<bool> =
        examples.iter().map(|example| in_validation[group_idx[example.group.as_str()]]).collect();
    let (mut train, mut validation) = (Vec::new(), Vec::new());
    for (example, validation_row) in examples.into_iter().zip(is_validation) {
        if validation_row {
            validation.push(example);
        } else {
            train.push(example);
        }
    }
    Ok((train, validation))
}
