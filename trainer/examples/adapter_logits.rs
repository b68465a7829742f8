//! Prints the logits of a token sequence under a base model with and without a LoRA adapter, as
//! JSON, for `scripts/peft_parity.py check`.
//!
//! `cargo run --release -p trainer --example adapter_logits -- MODEL ADAPTER_DIR [IDS] > ours.json`

use std::path::Path;

use trainer::model::LogitsPositions;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        return Err("usage: adapter_logits MODEL ADAPTER_DIR [comma-separated token ids]".into());
    }
    let ids: Vec<u32> = match args.get(3) {
        Some(list) => list.split(',').map(|id| id.trim().parse()).collect::<Result<_, _>>()?,
        None => vec![1, 504, 2444, 282, 4299, 28, 1435, 30, 12213, 314, 2365, 2543, 30, 198, 9519, 42, 216],
    };
    let (mut model, _) = trainer::loader::load(Path::new(&args[1]))?;
    let base = model.forward_ids(&ids, 0, None, LogitsPositions::All)?;
    trainer::peft::load_adapter(&mut model, Path::new(&args[2]))?;
    let adapted = model.forward_ids(&ids, 0, None, LogitsPositions::All)?;
    let positions: Vec<usize> = (ids.len().saturating_sub(4)..ids.len()).collect();
    let rows = |logits: &candle_core::Tensor| -> Result<Vec<Vec<f32>>, candle_core::Error> {
        positions.iter().map(|&p| logits.get(p)?.to_vec1()).collect()
    };
    let json = serde_json::json!({ "ids": ids, "positions": positions, "base": rows(&base)?, "adapted": rows(&adapted)? });
    println!("{json}");
    Ok(())
}
