//! Batched greedy generation over left-padded prompts computes what each prompt computes alone:
//! logits equal within float tolerance and tokens equal, on a tiny random model and on the real
//! model for FinLoRA FPB prompts; finished rows leaving the batch change nothing.

mod common;

use candle_core::Tensor;
use datasets::{DataDir, LoadConfig, Split, Task};
use trainer::generate::{generate_greedy, generate_greedy_batch, GreedyConfig};
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

#[test]
fn padded_prefill_logits_equal_each_row_alone() {
    let model = common::training::tiny_model(7);
    let prompts: Vec<Vec<u32>> = vec![vec![5, 9, 13, 2, 40, 7, 7], vec![11, 3], vec![30, 31, 32, 33]];
    let width = 7;
    let pad: Vec<usize> = prompts.iter().map(|prompt| width - prompt.len()).collect();
    let padded: Vec<u32> = prompts
        .iter()
        .flat_map(|p| std::iter::repeat_n(0u32, width - p.len()).chain(p.iter().copied()))
        .collect();
    let input = Tensor::from_vec(padded, (3, width), &candle_core::Device::Cpu).unwrap();
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
}

#[test]
fn an_empty_prompt_in_a_batch_is_an_error_naming_it() {
    let model = common::training::tiny_model(1);
    let config = GreedyConfig { max_new_tokens: 3, stop_ids: vec![] };
    let error = generate_greedy_batch(&model, &[vec![3], vec![]], &config, &mut |_| Ok(())).unwrap_err();
    assert!(error.to_string().contains("prompt 1"), "{error}");
}
