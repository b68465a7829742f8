//! `quantize_for_inference`: the default model's Q8_0 LM head is kept as its blocks and gives the
//! logits of the f32 head (same weights, other summation order); other heads stay f32.

mod common;

use trainer::model::LogitsPositions;
use trainer::quantize::{quantize_base_with, quantize_for_inference, BaseBits, Int8Matmul, LmHead};

#[test]
fn the_default_models_q8_0_head_gives_the_f32_heads_logits() {
    let Some(path) = common::model_path() else { return };
    let (mut blocks, tokenizer) = trainer::loader::load_gguf(&path).unwrap();
    let (mut dense, _) = trainer::loader::load_gguf(&path).unwrap();
    assert_eq!(
        quantize_for_inference(&mut blocks, BaseBits::Int8, Int8Matmul::Dequantized).unwrap(),
        LmHead::Q8_0
    );
    quantize_base_with(&mut dense, BaseBits::Int8, Int8Matmul::Dequantized).unwrap();

    let ids = tokenizer.encode("Net revenue for fiscal 2022 was $394.3 billion, up 8%", false).unwrap();
    for positions in [LogitsPositions::Last, LogitsPositions::All] {
        // `All` takes the tiled path (panels decoded from the blocks), `Last` the fused one.
        let got = blocks.forward_ids(&ids, 0, None, positions).unwrap();
        let want = dense.forward_ids(&ids, 0, None, positions).unwrap();
        let (got, want): (Vec<Vec<f32>>, Vec<Vec<f32>>) = (got.to_vec2().unwrap(), want.to_vec2().unwrap());
        for (row, (got, want)) in got.iter().zip(&want).enumerate() {
            let scale = want.iter().fold(0f32, |max, value| max.max(value.abs()));
            let diff = got.iter().zip(want).fold(0f32, |max, (a, b)| max.max((a - b).abs()));
            assert!(diff <= 1e-4 * scale, "{positions:?} row {row}: logits differ by {diff} (scale {scale})");
            let argmax = |values: &[f32]| {
                values.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(idx, _)| idx)
            };
            assert_eq!(argmax(got), argmax(want), "{positions:?} row {row}: greedy token differs");
        }
    }
}

#[test]
fn heads_that_are_not_q8_0_data_and_f32_bases_stay_f32() {
    let mut random = common::training::tiny_model(3);
    assert_eq!(
        quantize_for_inference(&mut random, BaseBits::Int8, Int8Matmul::Dequantized).unwrap(),
        LmHead::F32
    );
    let Some(path) = common::model_path() else { return };
    let (mut model, _) = trainer::loader::load_gguf(&path).unwrap();
    assert_eq!(
        quantize_for_inference(&mut model, BaseBits::F32, Int8Matmul::Dequantized).unwrap(),
        LmHead::F32
    );
}
