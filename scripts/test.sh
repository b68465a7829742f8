#!/usr/bin/env bash
# Runs the whole test suite: fetches the default model if it is missing, then `cargo test`.
# Real filings and datasets are read from ../shared (override with FINAGENT_SHARED).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export FINAGENT_SHARED=${FINAGENT_SHARED:-$(cd "$root/.." && pwd)/shared}
export FINAGENT_MODEL=${FINAGENT_MODEL:-$root/models/SmolLM2-135M-Instruct.Q4_1.gguf}
if [ ! -s "$FINAGENT_MODEL" ]; then
    cargo run --quiet -p agent --bin finagent -- fetch-model --to "$FINAGENT_MODEL"
fi
cargo test --workspace "$@"
