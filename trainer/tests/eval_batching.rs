//! Batched greedy generation over left-padded prompts computes what each prompt computes alone:
//! logits equal within float tolerance and tokens equal, on a tiny random model and on the real
//! model for FinLoRA FPB prompts; finished rows leaving the batch change nothing. So does
//! prefilling a batch's common prefix once and carrying it to the next batch.

mod common;

use candle_core::Tensor;
use datasets::{DataDir, LoadConfig, Split, Task};
use trainer::generate::{
    generate_greedy, generate_greedy_batch, generate_greedy_batch_shared, GreedyConfig, PromptCache,
};
use trainer::model::{Llama, LogitsPositions};

fn alone_and_batched(model: &Llama, prompts: &[Vec<u32>], config: &GreedyConfig) {
    let mut seen_rows = Vec::new();
    let batched = generate_greedy_batch(model, prompts, config, &mut |rows| {
        seen_rows.push(rows.to_vec());
        Ok(())
    })
    .unwrap();
    for (row, prompt) in prompts.iter().enumerate() {
        let alone = generate_greedy(model, prompt, config).unwrap();
        assert_eq!(batched[row], alone, "row {row} differs from the same prompt generated alone");
    }
    assert_eq!(seen_rows.first(), Some(&(0..prompts.len()).collect::<Vec<_>>()));
}

/// Each row's padding count and the `[rows, width]` batch of `rows` left-padded with id 0.
fn left_padded(rows: &[Vec<u32>], width: usize) -> (Vec<usize>, Tensor) {
    let pad: Vec<usize> = rows.iter().map(|row| width - row.len()).collect();
    let padded: Vec<u32> = rows
        .iter()
        .flat_map(|row| std::iter::repeat_n(0u32, width - row.len()).chain(row.iter().copied()))
        .collect();
    (pad, Tensor::from_vec(padded, (rows.len(), width), &candle_core::Device::Cpu).unwrap())
}

/// Each batch through [`generate_greedy_batch_shared`] with one prefix cache carried along, every
/// row equal to its prompt generated alone.
fn alone_and_shared(model: &Llama, batches: &[Vec<Vec<u32>>], config: &GreedyConfig) {
    let mut prefix = PromptCache::default();
    for (number, prompts) in batches.iter().enumerate() {
        let shared =
            generate_greedy_batch_shared(model, prompts, config, &mut |_| Ok(()), &mut prefix).unwrap();
        for (row, prompt) in prompts.iter().enumerate() {
            let alone = generate_greedy(model, prompt, config).unwrap();
            assert_eq!(
                shared[row], alone,
                "batch {number} row {row} differs from its prompt generated alone"
            );
        }
    }
}

#[test]
fn prefix_shared_logits_equal_each_row_alone() {
    let model = common::training::tiny_model(5);
    let shared = [21u32, 4, 9, 9, 30, 2];
    let suffixes: Vec<Vec<u32>> = vec![vec![5, 9, 13, 2], vec![11], vec![30, 31, 32]];
    let width = 4;
    let mut cache = model.new_cache();
    model.forward_ids(&shared, 0, Some(&mut cache), LogitsPositions::Last).unwrap();
    cache.repeat_row(suffixes.len(), &candle_core::Device::Cpu).unwrap();
    let (pad, input) = left_padded(&suffixes, width);
    let logits =
        model.forward_padded_after(&input, shared.len(), &pad, &mut cache, LogitsPositions::All).unwrap();
    for (row, suffix) in suffixes.iter().enumerate() {
        let prompt: Vec<u32> = shared.iter().chain(suffix).copied().collect();
        let alone: Vec<Vec<f32>> =
            model.forward_ids(&prompt, 0, None, LogitsPositions::All).unwrap().to_vec2().unwrap();
        let batched: Vec<Vec<f32>> =
            logits.get(row).unwrap().narrow(0, pad[row], suffix.len()).unwrap().to_vec2().unwrap();
        for (offset, (a, b)) in alone[shared.len()..].iter().zip(&batched).enumerate() {
            let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            assert!(worst < 1e-4, "row {row} suffix position {offset}: logits differ by {worst}");
        }
    }
}

#[test]
fn prefix_shared_generation_equals_one_by_one_across_batches() {
    let model = common::training::tiny_model(3);
    let header = [9u32, 14, 3, 3, 27, 8, 1];
    let with_header = |tail: &[u32]| header.iter().chain(tail).copied().collect::<Vec<u32>>();
    let batches = vec![
        // A common prefix longer than the header (it includes 40), then one that stops inside it,
        // then rows with nothing in common (no sharing), then a single row.
        vec![with_header(&[40, 2, 2]), with_header(&[40, 6]), with_header(&[40, 11, 12, 13])],
        vec![with_header(&[5]), header[..5].to_vec(), with_header(&[17, 18])],
        vec![vec![1, 2, 3], vec![4, 5]],
        vec![with_header(&[33, 34])],
    ];
    for stop_ids in [vec![], vec![5], vec![17, 30]] {
        alone_and_shared(&model, &batches, &GreedyConfig { max_new_tokens: 10, stop_ids });
    }
}

#[test]
fn padded_prefill_logits_equal_each_row_alone() {
    let model = common::training::tiny_model(7);
    let prompts: Vec<Vec<u32>> = vec![vec![5, 9, 13, 2, 40, 7, 7], vec![11, 3], vec![30, 31, 32, 33]];
    let width = 7;
    let (pad, input) = left_padded(&prompts, width);
    let mut cache = model.new_cache();
    let logits = model.forward_padded(&input, &pad, &mut cache, LogitsPositions::All).unwrap();
    for (row, prompt) in prompts.iter().enumerate() {
        let alone: Vec<Vec<f32>> =
            model.forward_ids(prompt, 0, None, LogitsPositions::All).unwrap().to_vec2().unwrap();
        let batched: Vec<Vec<f32>> =
            logits.get(row).unwrap().narrow(0, pad[row], prompt.len()).unwrap().to_vec2().unwrap();
        for (position, (a, b)) in alone.iter().zip(&batched).enumerate() {
            let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            assert!(worst < 1e-4, "row {row} position {position}: logits differ by {worst}");
            assert!(b.iter().all(|value| value.is_finite()));
        }
    }
}

#[test]
fn batched_generation_equals_one_by_one_on_a_tiny_model() {
    let model = common::training::tiny_model(3);
    let prompts: Vec<Vec<u32>> =
        vec![vec![4, 8, 15, 16, 23, 42], vec![7], vec![12, 19, 33], vec![2, 2, 2, 2, 2]];
    // Stop on a frequent id so rows finish at different steps and leave the batch.
    for stop_ids in [vec![], vec![5], vec![17, 30]] {
        alone_and_batched(&model, &prompts, &GreedyConfig { max_new_tokens: 12, stop_ids });
    }
}

#[test]
fn batched_generation_equals_one_by_one_on_fpb_prompts() {
    let Some((model, tokenizer)) = common::gguf_model() else { return };
    let Some(shared) = common::shared_dir() else { return };
    let loaded =
        DataDir::new(shared.join("data")).load(Task::Fpb, Split::Test, &LoadConfig::default()).unwrap();
    let prompts: Vec<Vec<u32>> = loaded
        .examples
        .iter()
        .take(5)
        .map(|example| tokenizer.encode(&example.prompt, false).unwrap())
        .collect();
    assert!(prompts.iter().map(Vec::len).min() < prompts.iter().map(Vec::len).max(), "prompts of one length");
    let config =
        GreedyConfig { max_new_tokens: Task::Fpb.max_new_tokens(), stop_ids: tokenizer.eos_ids().to_vec() };
    alone_and_batched(model, &prompts, &config);
    let more: Vec<Vec<u32>> = loaded
        .examples
        .iter()
        .skip(5)
        .take(4)
        .map(|example| tokenizer.encode(&example.prompt, false).unwrap())
        .collect();
    alone_and_shared(model, &[prompts, more], &config);
}

#[test]
fn an_empty_prompt_in_a_batch_is_an_error_naming_it() {
    let model = common::training::tiny_model(1);
    let config = GreedyConfig { max_new_tokens: 3, stop_ids: vec![] };
    let error = generate_greedy_batch(&model, &[vec![3], vec![]], &config, &mut |_| Ok(())).unwrap_err();
    assert!(error.to_string().contains("prompt 1"), "{error}");
}
