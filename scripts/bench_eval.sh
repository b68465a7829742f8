#!/usr/bin/env bash
# Same-run comparison of `finagent eval` with transformers + PEFT on FPB test prompts: examples/s
# of both and the ratio. Usage: scripts/bench_eval.sh [ADAPTER_DIR] [LIMIT] [BITS]
# INT8_MATMUL=llm-int8 runs the 8-bit base as LLM.int8 (int8 activations); default dequantized.
set -euo pipefail
cd "$(dirname "$0")/.."
adapter=${1:-/tmp/run1/adapter}
limit=${2:-64}
bits=${3:-8}
int8_matmul=${INT8_MATMUL:-dequantized}
py=${PEER_PYTHON:-/work/.peer-venv/bin/python}
model=${FINAGENT_MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
hf=${HF_MODEL:-/tmp/smol-hf}
shared=${FINAGENT_SHARED:-../shared}
[ -d "$hf" ] || "$py" "$shared/bench/gguf_to_hf.py" "$model" "$hf"
cargo build --release -q -p agent --bin finagent
out=$(mktemp -d)
FINAGENT_DATA="$shared/data" target/release/finagent eval --tasks fpb --limit "$limit" --bits "$bits" \
  --int8-matmul "$int8_matmul" --batch-size 8 --model "$model" --adapter "fpb=$adapter" --out "$out/run" --json > "$out/run.json"
ours=$("$py" -c "import json,sys; r=json.load(open(sys.argv[1]))['results'][0]; print(1/r['seconds_per_example'])" "$out/run.json")
peer_json=$("$py" scripts/peft_eval_bench.py --model "$hf" --adapter "$adapter" --data "$shared/data/fpb/test.jsonl" \
  --limit "$limit" --batch-size 8 --ours "$out/run/fpb.generate.jsonl")
peer=$("$py" -c "import json,sys; print(json.loads(sys.argv[1])['examples_per_sec'])" "$peer_json")
echo "{\"finagent_examples_per_sec\": $ours, \"finagent_bits\": $bits, \"int8_matmul\": \"$int8_matmul\", \"peer\": $peer_json}"
"$py" -c "import sys; print(f'finagent/peer examples/s ratio: {float(sys.argv[1])/float(sys.argv[2]):.2f}x')" "$ours" "$peer"
