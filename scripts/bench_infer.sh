#!/usr/bin/env bash
# Prefill and greedy decode speed: `finagent bench infer` at 32, 8 and 4 bits next to the peers
# (../shared/bench/llamacpp_infer_bench.py: llama.cpp on the same GGUF; peft_infer_bench.py:
# transformers in f32) on the same machine in the same run. Prints each JSON line and the ratios
# finagent/peer. A peer whose Python package is missing from the peer venv is reported and skipped.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
shared=${FINAGENT_SHARED:-$(cd "$root/.." && pwd)/shared}
model=${FINAGENT_MODEL:-$root/models/SmolLM2-135M-Instruct.Q4_1.gguf}
python=${PEER_PYTHON:-$(cd "$root/.." && pwd)/.peer-venv/bin/python}
hf=${HF_MODEL_DIR:-/tmp/smol-hf}
prompt_tokens=${PROMPT_TOKENS:-256}
new_tokens=${NEW_TOKENS:-32}
bits_list=${BITS:-"32 8 4"}
cargo build --release --quiet -p agent --bin finagent
bin=$root/target/release/finagent

peers=()
if "$python" -c "import llama_cpp" 2>/dev/null; then
    peers+=("$("$python" "$shared/bench/llamacpp_infer_bench.py" --model "$model" \
        --prompt-tokens "$prompt_tokens" --new-tokens "$new_tokens" 2>/dev/null | tail -1)")
else
    echo "{\"peer\": \"llama.cpp\", \"skipped\": \"llama_cpp is not importable from $python\"}"
fi
if [ -f "$hf/config.json" ] && "$python" -c "import transformers, torch" 2>/dev/null; then
    peers+=("$("$python" "$shared/bench/peft_infer_bench.py" --model "$hf" \
        --prompt-tokens "$prompt_tokens" --new-tokens "$new_tokens" 2>/dev/null | tail -1)")
else
    echo "{\"peer\": \"transformers\", \"skipped\": \"no $hf/config.json or transformers missing from $python\"}"
fi
for peer in "${peers[@]}"; do echo "$peer"; done

# At 8 bits both forwards: int8 weights dequantized (f32 activations) and LLM.int8 (int8 activations).
runs=()
for bits in $bits_list; do
    if [ "$bits" = 8 ]; then
        runs+=("8 dequantized" "8 llm-int8")
    else
        runs+=("$bits dequantized")
    fi
done
for run in "${runs[@]}"; do
    read -r bits int8_matmul <<<"$run"
    ours=$("$bin" bench infer --model "$model" --bits "$bits" --int8-matmul "$int8_matmul" \
        --prompt-tokens "$prompt_tokens" --new-tokens "$new_tokens")
    echo "$ours"
    python3 - "$ours" "${peers[@]}" <<'PY'
import json, sys
ours = json.loads(sys.argv[1])
for peer in map(json.loads, sys.argv[2:]):
    print(json.dumps({"bits": ours["bits"], "int8_matmul": ours.get("int8_matmul"), "vs": peer["peer"],
                      "prefill_ratio": round(ours["prefill_tokens_per_sec"] / peer["prefill_tokens_per_sec"], 3),
                      "decode_ratio": round(ours["decode_tokens_per_sec"] / peer["decode_tokens_per_sec"], 3)}))
PY
done
