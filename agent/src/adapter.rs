//! The adapter `finagent ask` answers with by default, compiled into the binary so the answer does
//! not depend on where finagent runs from. It is the `adapter/` of the run in
//! `configs/xbrl-agent-r8-8bit.toml` (how it was produced, and its metrics: docs/agent.md).

use std::path::Path;

use anyhow::Result;
use trainer::model::Llama;
use trainer::quantize::BaseBits;

/// The bundled adapter's name (its folder under `agent/adapters/`).
pub const BUNDLED_NAME: &str = "xbrl-agent-r8-8bit";
/// The base precision it was trained over, and must run over.
pub const BUNDLED_BITS: BaseBits = BaseBits::Int8;

const CONFIG: &str = include_str!("../adapters/xbrl-agent-r8-8bit/adapter_config.json");
const WEIGHTS: &[u8] = include_bytes!("../adapters/xbrl-agent-r8-8bit/adapter_model.safetensors");

/// Attaches the bundled adapter to `model` (a model of another shape is an error naming the
/// tensor that does not fit).
pub fn attach_bundled(model: &mut Llama) -> Result<()> {
    let origin = Path::new("agent/adapters").join(BUNDLED_NAME);
    trainer::peft::load_adapter_bytes(model, CONFIG, WEIGHTS, &origin)?;
    Ok(())
}
