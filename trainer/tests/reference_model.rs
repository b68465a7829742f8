//! The GGUF model against transformers: logits at the first and last prompt positions, and greedy
//! continuations (ids and text) of the reference cases.

mod common;

use candle_core::{Device, Tensor};
use trainer::generate::{generate_greedy, GreedyConfig};
use trainer::model::LogitsPositions;

/// Max |a - b| over two equally shaped f32 tensors.
fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    let diff = (a - b).and_then(|d| d.abs()).and_then(|d| d.flatten_all()).and_then(|d| d.max(0));
    diff.and_then(|d| d.to_scalar::<f32>()).unwrap_or_else(|e| panic!("comparing logits: {e}"))
}

#[test]
fn logits_match_transformers_at_first_and_last_positions() {
    let (Some((model, _)), Some(cases), Some(dir)) =
        (common::gguf_model(), common::reference_cases(), common::reference_dir())
    else {
        return;
    };
    let reference = candle_core::safetensors::load(dir.join("reference_logits.safetensors"), &Device::Cpu)
        .unwrap_or_else(|e| panic!("reference logits: {e}"));
    for (case_idx, case) in cases.iter().enumerate() {
        let logits = model
            .forward_ids(&case.ids, 0, None, LogitsPositions::All)
            .unwrap_or_else(|e| panic!("case {case_idx}: {e}"));
        let n_positions = case.ids.len();
        assert_eq!(logits.dims(), [n_positions, model.config().vocab_size]);
        for (which, position) in [("first", 0), ("last", n_positions - 1)] {
            let expected = &reference[&format!("logits_{which}_{case_idx}")];
            let actual = logits.get(position).unwrap_or_else(|e| panic!("{e}"));
            let diff = max_abs_diff(&actual, expected);
            eprintln!("case {case_idx} {which} position: max abs diff {diff:.2e}");
            assert!(diff < 1e-3, "case {case_idx} {which} logits differ by {diff}");
        }
    }
}

#[test]
fn greedy_continuations_match_transformers() {
    let (Some((model, tokenizer)), Some(cases)) = (common::gguf_model(), common::reference_cases()) else {
        return;
    };
    let config = GreedyConfig { max_new_tokens: 12, stop_ids: tokenizer.eos_ids().to_vec() };
    for (case_idx, case) in cases.iter().enumerate() {
        let generated = generate_greedy(model, &case.ids, &config).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(generated, case.greedy_next_12, "case {case_idx} ids");
        let text = tokenizer.decode(&generated).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(text, case.greedy_text, "case {case_idx} text");
    }
}

#[test]
fn cached_decoding_matches_full_forward() {
    let (Some((model, _)), Some(cases)) = (common::gguf_model(), common::reference_cases()) else {
        return;
    };
    let ids = &cases[2].ids;
    let full = model.forward_ids(ids, 0, None, LogitsPositions::All).unwrap_or_else(|e| panic!("{e}"));
    let mut cache = model.new_cache();
    let split = ids.len() / 2;
    model
        .forward_ids(&ids[..split], 0, Some(&mut cache), LogitsPositions::Last)
        .unwrap_or_else(|e| panic!("{e}"));
    for (position, &id) in ids.iter().enumerate().skip(split) {
        let step = model
            .forward_ids(&[id], position, Some(&mut cache), LogitsPositions::Last)
            .unwrap_or_else(|e| panic!("{e}"));
        let expected = full.get(position).unwrap_or_else(|e| panic!("{e}"));
        let diff = max_abs_diff(&step.get(0).unwrap_or_else(|e| panic!("{e}")), &expected);
        assert!(diff < 1e-3, "position {position}: cached step differs by {diff}");
    }
    assert_eq!(cache.seq_len(), ids.len());
    let stale = model.forward_ids(&[1], 0, Some(&mut cache), LogitsPositions::Last);
    assert!(stale.is_err(), "a start_pos that disagrees with the cache must be rejected");
}
