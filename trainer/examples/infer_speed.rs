//! Measures CPU inference speed: prefill tokens/s for a ~256-token prompt and cached decode
//! tokens/s, printed as one JSON object. Usage: `infer_speed [MODEL] [PROMPT_TOKENS] [NEW_TOKENS]`
//! (MODEL defaults to env FINAGENT_MODEL, then the workspace's SmolLM2 GGUF).

use std::path::PathBuf;
use std::time::Instant;

use trainer::model::LogitsPositions;

const FILLER: &str = "Instruction: What is the sentiment of this news? Please choose an answer from \
    {negative/neutral/positive}.\nInput: Operating profit rose to EUR 13.1 mn from EUR 8.7 mn in the \
    corresponding period in 2007, while net sales increased by 12.4% to EUR 1,234.5 mn.\nAnswer: positive\n";

fn argument<T: std::str::FromStr>(position: usize, default: T) -> Result<T, String> {
    match std::env::args().nth(position) {
        None => Ok(default),
        Some(text) => text.parse().map_err(|_| format!("argument {position} ({text}) is not a number")),
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let model_path = std::env::args().nth(1).map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("FINAGENT_MODEL").map(PathBuf::from).unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../models/SmolLM2-135M-Instruct.Q4_1.gguf"))
        })
    });
    let n_prompt_tokens: usize = argument(2, 256)?;
    let n_new_tokens: usize = argument(3, 64)?;

    let load_start = Instant::now();
    let (model, tokenizer) = trainer::loader::load(&model_path)?;
    let load_secs = load_start.elapsed().as_secs_f64();

    let mut prompt = Vec::new();
    while prompt.len() < n_prompt_tokens {
        prompt.extend(tokenizer.encode(FILLER, false)?);
    }
    prompt.truncate(n_prompt_tokens);

    let mut cache = model.new_cache();
    let prefill_start = Instant::now();
    let mut logits = model.forward_ids(&prompt, 0, Some(&mut cache), LogitsPositions::Last)?;
    let prefill_secs = prefill_start.elapsed().as_secs_f64();

    let decode_start = Instant::now();
    for _ in 0..n_new_tokens {
        let next = logits.squeeze(0)?.argmax(0)?.to_scalar::<u32>()?;
        let start_pos = cache.seq_len();
        logits = model.forward_ids(&[next], start_pos, Some(&mut cache), LogitsPositions::Last)?;
    }
    let decode_secs = decode_start.elapsed().as_secs_f64();

    let report = serde_json::json!({
        "model": model_path.display().to_string(),
        "threads": candle_core::utils::get_num_threads(),
        "load_secs": load_secs,
        "prefill_tokens": prompt.len(),
        "prefill_secs": prefill_secs,
        "prefill_tokens_per_sec": prompt.len() as f64 / prefill_secs,
        "decode_tokens": n_new_tokens,
        "decode_secs": decode_secs,
        "decode_tokens_per_sec": n_new_tokens as f64 / decode_secs,
    });
    println!("{report}");
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
