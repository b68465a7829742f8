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
# The CUDA backend's conformance tests: they skip with a printed reason where there is no GPU
# (scripts/gpu_check.sh runs them on one and fails on a skip). `--workspace` keeps the
# dependencies' features as above, so nothing but `kernels` is rebuilt.
cargo test --workspace --features kernels/cuda --test cuda_conformance
