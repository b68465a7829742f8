//! A tiny random Llama written as a Hugging Face folder (single file, sharded, f16/bf16) and as a
//! llama.cpp-style GGUF (permuted q/k) gives the same logits as the in-memory model; the KV cache
//! and the linear-layer seam behave.

mod common;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use common::tiny;
use trainer::generate::{generate_greedy, generate_greedy_reusing, lookup_draft, GreedyConfig, PromptCache};
use trainer::linear::DenseLinear;
use trainer::model::{Llama, LogitsPositions};

const PROMPT: [u32; 7] = [5, 17, 3, 42, 8, 8, 63];

fn logits(model: &Llama, ids: &[u32]) -> Tensor {
    model.forward_ids(ids, 0, None, LogitsPositions::All).unwrap_or_else(|e| panic!("{e}"))
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    let diff = (a - b).and_then(|d| d.abs()).and_then(|d| d.flatten_all()).and_then(|d| d.max(0));
    diff.and_then(|d| d.to_scalar::<f32>()).unwrap_or_else(|e| panic!("{e}"))
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn hf_folder_matches_in_memory_model() {
    let config = tiny::config();
    let weights = tiny::weights(&config);
    let expected = logits(&tiny::in_memory_model(&config, &weights), &PROMPT);
    for sharded in [false, true] {
        let dir = temp_dir();
        tiny::write_hf_dir(dir.path(), &config, &weights, DType::F32, sharded);
        let model = trainer::loader::load_hf_model(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(model.config(), &config);
        let diff = max_abs_diff(&logits(&model, &PROMPT), &expected);
        assert!(diff < 1e-6, "sharded={sharded}: logits differ by {diff}");
    }
}

#[test]
fn half_precision_folders_match_rounded_weights() {
    let config = tiny::config();
    let weights = tiny::weights(&config);
    for dtype in [DType::F16, DType::BF16] {
        let rounded: HashMap<String, Tensor> = weights
            .iter()
            .map(|(name, t)| {
                let back = t.to_dtype(dtype).and_then(|t| t.to_dtype(DType::F32));
                (name.clone(), back.unwrap_or_else(|e| panic!("{e}")))
            })
            .collect();
        let expected = logits(&tiny::in_memory_model(&config, &rounded), &PROMPT);
        let dir = temp_dir();
        tiny::write_hf_dir(dir.path(), &config, &weights, dtype, true);
        let model = trainer::loader::load_hf_model(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let diff = max_abs_diff(&logits(&model, &PROMPT), &expected);
        assert!(diff < 1e-6, "{dtype:?}: logits differ by {diff}");
    }
}

#[test]
fn gguf_with_permuted_qk_matches_hf_layout_model() {
    let config = tiny::config();
    let weights = tiny::weights(&config);
    let expected = logits(&tiny::in_memory_model(&config, &weights), &PROMPT);
    let dir = temp_dir();
    let path = dir.path().join("tiny.gguf");
    tiny::write_gguf(&path, &tiny::gguf_metadata(&config), &tiny::gguf_tensors(&config, &weights));

    let (model, tokenizer) = trainer::loader::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(model.config(), &config);
    let diff = max_abs_diff(&logits(&model, &PROMPT), &expected);
    assert!(diff < 1e-5, "gguf logits differ by {diff}");

    // Skipping the un-permute must break the match, or this test proves nothing about RoPE layout.
    let mut unpermuted = weights.clone();
    for (gguf_name, tensor) in tiny::gguf_tensors(&config, &weights) {
        if let Some(idx) = gguf_name.strip_prefix("blk.").and_then(|rest| rest.split('.').next()) {
            for (suffix, hf_suffix) in [("attn_q", "self_attn.q_proj"), ("attn_k", "self_attn.k_proj")] {
                if gguf_name == format!("blk.{idx}.{suffix}.weight") {
                    unpermuted.insert(format!("model.layers.{idx}.{hf_suffix}.weight"), tensor.clone());
                }
            }
        }
    }
    let wrong = logits(&tiny::in_memory_model(&config, &unpermuted), &PROMPT);
    assert!(max_abs_diff(&wrong, &expected) > 1e-3, "q/k permutation had no effect on logits");

    assert_eq!(tokenizer.encode("ab a<|im_end|>", false).unwrap_or_else(|e| panic!("{e}")), vec![2, 3, 0]);
    assert_eq!(tokenizer.decode(&[2, 3, 0]).unwrap_or_else(|e| panic!("{e}")), "ab a<|im_end|>");
    assert_eq!(tokenizer.eos_ids(), [0]);
}

#[test]
fn cached_greedy_generation_equals_recomputing_every_step() {
    let config = tiny::config();
    let model = tiny::in_memory_model(&config, &tiny::weights(&config));
    let greedy = GreedyConfig { max_new_tokens: 20, stop_ids: vec![] };
    let cached = generate_greedy(&model, &PROMPT, &greedy).unwrap_or_else(|e| panic!("{e}"));
    let mut sequence = PROMPT.to_vec();
    for _ in 0..greedy.max_new_tokens {
        let last =
            model.forward_ids(&sequence, 0, None, LogitsPositions::Last).unwrap_or_else(|e| panic!("{e}"));
        let next = last.squeeze(0).and_then(|l| l.argmax(0)).and_then(|t| t.to_scalar::<u32>());
        sequence.push(next.unwrap_or_else(|e| panic!("{e}")));
    }
    assert_eq!(cached, sequence[PROMPT.len()..]);

    let stop_at = cached[3];
    let first_stop = cached.iter().position(|&id| id == stop_at).unwrap_or(3);
    let stopped =
        generate_greedy(&model, &PROMPT, &GreedyConfig { max_new_tokens: 20, stop_ids: vec![stop_at] })
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stopped, cached[..=first_stop], "generation must end with the first stop id");
    assert!(generate_greedy(&model, &[], &greedy).is_err(), "an empty prompt must be rejected");
}

#[test]
fn reusing_a_shared_prompt_prefix_generates_what_a_fresh_prefill_does() {
    let config = tiny::config();
    let model = tiny::in_memory_model(&config, &tiny::weights(&config));
    let greedy = GreedyConfig { max_new_tokens: 12, stop_ids: vec![] };
    let reuse = std::sync::Mutex::new(PromptCache::default());
    // Same header, different tails; then a prompt sharing nothing, then a prefix of the last.
    // Repeating prompts make the prompt lookup draft, so drafts are verified and cut too.
    let prompts: [&[u32]; 7] = [
        &PROMPT,
        &[5, 17, 3, 42, 9, 1],
        &[5, 17, 3, 42, 9, 1, 2, 60],
        &[60, 2, 2],
        &[60, 2],
        &[7, 8, 9, 10, 11, 7, 8, 9, 10, 11, 7, 8],
        &[1, 1, 1, 1, 1, 1, 1, 1, 1],
    ];
    for prompt in prompts {
        let fresh = generate_greedy(&model, prompt, &greedy).unwrap_or_else(|e| panic!("{e}"));
        let reused =
            generate_greedy_reusing(&model, prompt, &greedy, &reuse).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reused, fresh, "prompt {prompt:?}");
    }
    let held = reuse.lock().map(|held| held.clone()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(held.reusable(&[1, 1, 7]), 2);
    assert_eq!(held.reusable(&[1, 1]), 1, "the last prompt token is always recomputed");
    assert_eq!(held.reusable(&[9]), 0);
}

/// Logits of the last position of `ids` fed one at a time after `start` through `cache`.
fn step_through(model: &Llama, cache: &mut trainer::model::KvCache, ids: &[u32]) -> Tensor {
    let mut last = None;
    for &id in ids {
        let start = cache.seq_len();
        last = Some(
            model
                .forward_ids(&[id], start, Some(cache), LogitsPositions::Last)
                .unwrap_or_else(|e| panic!("{e}")),
        );
    }
    last.unwrap_or_else(|| panic!("no ids"))
}

#[test]
fn cache_buffers_grow_in_place_and_clones_stay_independent() {
    let config = trainer::model::LlamaConfig { max_position_embeddings: 256, ..tiny::config() };
    let model = tiny::in_memory_model(&config, &tiny::weights(&config));
    let ids: Vec<u32> = (0..150).map(|i| (i * 7 + 3) % config.vocab_size as u32).collect();
    // A prefill of 50, then single tokens: the buffer of 64 columns is outgrown twice. A clone
    // taken at 52 positions is continued with other tokens in between: each must see only its own.
    let mut other = ids[..52].to_vec();
    other.extend((0..18).map(|i| (i * 11 + 1) % config.vocab_size as u32));
    let mut cache = model.new_cache();
    model
        .forward_ids(&ids[..50], 0, Some(&mut cache), LogitsPositions::Last)
        .unwrap_or_else(|e| panic!("{e}"));
    // Two decoding steps move the prefill into a buffer, which the clone then shares.
    step_through(&model, &mut cache, &ids[50..52]);
    let mut branch = cache.clone();
    step_through(&model, &mut cache, &ids[52..55]);
    step_through(&model, &mut branch, &other[52..60]);
    let stepped = step_through(&model, &mut cache, &ids[55..]);
    assert_eq!(cache.seq_len(), 150);
    let recomputed = logits(&model, &ids);
    let last = recomputed.narrow(0, 149, 1).unwrap_or_else(|e| panic!("{e}"));
    assert!(max_abs_diff(&stepped, &last) < 1e-4, "{}", max_abs_diff(&stepped, &last));
    assert_eq!(branch.seq_len(), 60);
    let branched = step_through(&model, &mut branch, &other[60..]);
    let fresh = logits(&model, &other).narrow(0, 69, 1).unwrap_or_else(|e| panic!("{e}"));
    assert!(max_abs_diff(&branched, &fresh) < 1e-4, "{}", max_abs_diff(&branched, &fresh));

    // Truncating and continuing overwrites the dropped positions; the result is again a fresh pass.
    cache.truncate(60).unwrap_or_else(|e| panic!("{e}"));
    let mut rewritten = ids[..60].to_vec();
    rewritten.extend([4, 5, 6]);
    let continued = step_through(&model, &mut cache, &rewritten[60..]);
    let fresh = logits(&model, &rewritten).narrow(0, 62, 1).unwrap_or_else(|e| panic!("{e}"));
    assert!(max_abs_diff(&continued, &fresh) < 1e-4, "{}", max_abs_diff(&continued, &fresh));
}

#[test]
fn prompt_lookup_drafts_what_followed_the_last_ngram() {
    // "... 4 1 2 3 | 9 ..." and the context ends in "1 2 3": draft what followed it.
    assert_eq!(lookup_draft(&[4, 1, 2, 3, 9, 8, 7, 1, 2, 3], 2), [9, 8]);
    assert_eq!(lookup_draft(&[4, 1, 2, 3, 9, 8, 7, 1, 2, 3], 10), [9, 8, 7, 1, 2, 3]);
    // The latest earlier occurrence wins; shorter n-grams when longer ones never recur.
    assert_eq!(lookup_draft(&[5, 6, 5, 7, 5], 1), [7]);
    assert_eq!(lookup_draft(&[1, 2, 3], 4), Vec::<u32>::new());
    assert_eq!(lookup_draft(&[], 4), Vec::<u32>::new());
}

#[test]
fn linear_layers_can_be_replaced_by_name() {
    let config = tiny::config();
    let mut model = tiny::in_memory_model(&config, &tiny::weights(&config));
    let names: Vec<String> = model.linear_layers_mut().into_iter().map(|(name, _)| name).collect();
    assert_eq!(names.len(), 7 * config.num_hidden_layers + 1);
    assert_eq!(names[0], "model.layers.0.self_attn.q_proj");
    assert_eq!(names[names.len() - 1], "lm_head");

    let zeros = Tensor::zeros((config.vocab_size, config.hidden_size), DType::F32, &Device::Cpu)
        .unwrap_or_else(|e| panic!("{e}"));
    for (name, layer) in model.linear_layers_mut() {
        if name == "lm_head" {
            assert_eq!((layer.in_features(), layer.out_features()), (config.hidden_size, config.vocab_size));
            *layer = Box::new(DenseLinear::new(zeros.clone()).unwrap_or_else(|e| panic!("{e}")));
        }
    }
    let out = logits(&model, &PROMPT);
    assert_eq!(max_abs_diff(&out, &out.zeros_like().unwrap_or_else(|e| panic!("{e}"))), 0.0);
}
