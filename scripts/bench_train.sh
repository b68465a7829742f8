#!/usr/bin/env bash
# LoRA training speed and peak memory: `finagent bench train` and the peer
# (../shared/bench/peft_train_bench.py: transformers + PEFT + bitsandbytes) on the same machine in
# the same run, at 32, 8 and 4 bits, batch 8, sequence 128, rank 8 on q/k/v. Prints each JSON line
# and the ratios finagent/peer (finagent checkpointed with its frozen products kept, the default;
# checkpointed and recomputing every layer; every activation kept; and at 4 and 8 bits, where the
# base's products default to bf16, the default with f32 products, `--compute-dtype f32`, the peer
# script's arithmetic). Needs the peer venv
# (../shared/bench/setup_peer.sh) and an HF folder
# of the default model (made here with gguf_to_hf.py when missing).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
shared=${FINAGENT_SHARED:-$(cd "$root/.." && pwd)/shared}
model=${FINAGENT_MODEL:-$root/models/SmolLM2-135M-Instruct.Q4_1.gguf}
python=${PEER_PYTHON:-$(cd "$root/.." && pwd)/.peer-venv/bin/python}
hf=${HF_MODEL_DIR:-/tmp/smollm2-hf}
steps=${STEPS:-6}
bits_list=${BITS:-"32 8 4"}
# At 8 bits: `dequantized` (f32 activations, the default) or `llm-int8` (int8 activations, as PEFT's).
int8_matmul=${INT8_MATMUL:-dequantized}
cargo build --release --quiet -p agent --bin finagent
bin=$root/target/release/finagent
[ -f "$hf/config.json" ] || "$python" "$shared/bench/gguf_to_hf.py" "$model" "$hf" >/dev/null 2>&1

for bits in $bits_list; do
    ours=$("$bin" bench train --model "$model" --bits "$bits" --int8-matmul "$int8_matmul" --batch 8 --seq 128 \
        --rank 8 --steps "$steps")
    ours_recomputed=$("$bin" bench train --model "$model" --bits "$bits" --int8-matmul "$int8_matmul" --batch 8 \
        --seq 128 --rank 8 --steps "$steps" --keep-products-mib 0)
    ours_kept=$("$bin" bench train --model "$model" --bits "$bits" --int8-matmul "$int8_matmul" --batch 8 --seq 128 \
        --rank 8 --steps "$steps" --gradient-checkpointing false)
    ours_f32=null
    if [ "$bits" != 32 ]; then
        ours_f32=$("$bin" bench train --model "$model" --bits "$bits" --int8-matmul "$int8_matmul" --batch 8 \
            --seq 128 --rank 8 --steps "$steps" --compute-dtype f32)
    fi
    peer=$("$python" "$shared/bench/peft_train_bench.py" --model "$hf" --bits "$bits" --batch 8 --seq 128 \
        --rank 8 --steps "$steps" 2>/dev/null | tail -1)
    echo "$ours"
    echo "$ours_recomputed"
    echo "$ours_kept"
    [ "$ours_f32" = null ] || echo "$ours_f32"
    echo "$peer"
    python3 - "$ours" "$ours_recomputed" "$ours_kept" "$ours_f32" "$peer" <<'PY'
import json, sys
ours, recomputed, kept, f32, peer = (json.loads(arg) for arg in sys.argv[1:])
runs = [("checkpointed, products kept", ours), ("checkpointed, recomputed", recomputed),
        ("activations kept", kept)]
if f32 is not None:
    runs.append(("checkpointed, products kept, f32 products", f32))
for name, run in runs:
    print(json.dumps({"bits": run["bits"], "finagent": name,
                      "tokens_per_sec_ratio": round(run["tokens_per_sec"] / peer["tokens_per_sec"], 3),
                      "peak_rss_ratio": round(run["peak_rss_mb"] / peer["peak_rss_mb"], 3)}))
PY
done
