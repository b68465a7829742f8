//! Scoring continuations after a batch of prompts run once equals scoring each
//! `prompt ++ continuation` with a plain forward pass: continuations of one and of several tokens,
//! continuations sharing first tokens or repeated (one prefix tree), prompts sharing a prefix
//! carried between calls, and more prompts than one tree pass holds.

mod common;

use candle_core::D;
use trainer::generate::PromptCache;
use trainer::model::{Llama, LogitsPositions};
use trainer::score::{score_continuations, score_continuations_within};

/// `log P(continuation | prompt)` from one forward pass over their concatenation.
fn plain_score(model: &Llama, prompt: &[u32], continuation: &[u32]) -> f64 {
    let ids = [prompt, continuation].concat();
    let logits = model.forward_ids(&ids, 0, None, LogitsPositions::All).unwrap();
    let log_probs: Vec<Vec<f32>> =
        candle_nn::ops::log_softmax(&logits, D::Minus1).unwrap().to_vec2().unwrap();
    continuation
        .iter()
        .enumerate()
        .map(|(offset, &token)| f64::from(log_probs[prompt.len() + offset - 1][token as usize]))
        .sum()
}

fn assert_equals_plain(model: &Llama, prompts: &[Vec<u32>], continuations: &[Vec<u32>], scores: &[Vec<f64>]) {
    assert_eq!(scores.len(), prompts.len());
    for (p, (prompt, row)) in prompts.iter().zip(scores).enumerate() {
        assert_eq!(row.len(), continuations.len());
        for (c, (continuation, &score)) in continuations.iter().zip(row).enumerate() {
            let expected = plain_score(model, prompt, continuation);
            assert!((score - expected).abs() < 1e-4, "prompt {p} continuation {c}: {score} vs {expected}");
        }
    }
}

#[test]
fn scores_equal_plain_forward_passes_across_batches_sharing_a_prefix() {
    let model = common::training::tiny_model(11);
    let header = [9u32, 14, 3, 3, 27, 8, 1];
    let with_header = |tail: &[u32]| header.iter().chain(tail).copied().collect::<Vec<u32>>();
    // Shared first tokens, a continuation that is a prefix of another, and a repeat.
    let continuations: Vec<Vec<u32>> = vec![
        vec![5],
        vec![40, 2],
        vec![7, 7, 19, 3],
        vec![12, 30, 1],
        vec![7, 7, 2],
        vec![40, 2, 9],
        vec![7, 7, 19, 3],
        vec![40],
    ];
    let batches = vec![
        vec![with_header(&[40, 2, 2]), with_header(&[6]), with_header(&[40, 11, 12, 13])],
        vec![with_header(&[5]), header[..5].to_vec()],
        vec![vec![1, 2, 3], vec![4]],
    ];
    let mut prefix = PromptCache::default();
    for prompts in &batches {
        let mut passes = Vec::new();
        let scores = score_continuations(
            &model,
            prompts,
            &continuations,
            &mut |rows| {
                passes.push(rows.to_vec());
                Ok(())
            },
            Some(&mut prefix),
        )
        .unwrap();
        assert_equals_plain(&model, prompts, &continuations, &scores);
        // Two passes: the prefill, then every prompt's continuation tree in one.
        let last = passes.last().unwrap();
        assert_eq!(last, &(0..prompts.len()).collect::<Vec<_>>(), "{passes:?}");
    }
}

#[test]
fn more_prompts_than_one_pass_holds_are_split_into_passes() {
    let model = common::training::tiny_model(4);
    let prompts: Vec<Vec<u32>> = vec![vec![4, 8, 15, 16, 23, 42], vec![7, 3], vec![12, 19, 33]];
    let continuations: Vec<Vec<u32>> =
        (0..30u32).map(|idx| (0..=idx % 4).map(|offset| (idx * 7 + offset * 3) % 40 + 1).collect()).collect();
    let mut pass_rows = Vec::new();
    // A budget below one prompt's tree: one prompt per pass.
    let scores = score_continuations_within(
        &model,
        &prompts,
        &continuations,
        &mut |rows| {
            pass_rows.push(rows.to_vec());
            Ok(())
        },
        None,
        1,
    )
    .unwrap();
    assert_equals_plain(&model, &prompts, &continuations, &scores);
    assert_eq!(pass_rows, vec![vec![0, 1, 2], vec![0], vec![1], vec![2]]);
    let unsplit = score_continuations(&model, &prompts, &continuations, &mut |_| Ok(()), None).unwrap();
    for (split, whole) in scores.iter().flatten().zip(unsplit.iter().flatten()) {
        assert!((split - whole).abs() < 1e-5, "{split} vs {whole}");
    }
}

#[test]
fn bad_continuations_are_errors_naming_them() {
    let model = common::training::tiny_model(2);
    let prompts = vec![vec![3u32, 4, 5]];
    let vocab = model.config().vocab_size as u32;
    let empty = score_continuations(&model, &prompts, &[vec![1], vec![]], &mut |_| Ok(()), None).unwrap_err();
    assert!(empty.to_string().contains("continuation 1"), "{empty}");
    let outside =
        score_continuations(&model, &prompts, &[vec![1, vocab]], &mut |_| Ok(()), None).unwrap_err();
    assert!(outside.to_string().contains(&vocab.to_string()), "{outside}");
    let empty_prompt = score_continuations(&model, &[vec![]], &[vec![1]], &mut |_| Ok(()), None).unwrap_err();
    assert!(empty_prompt.to_string().contains("prompt 0"), "{empty_prompt}");
}
