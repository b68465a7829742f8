#!/usr/bin/env bash
# QuantLinear products (NF4, int8) vs candle dense f32 matmul, candle QMatMul and numpy sgemm, same run.
# Usage: scripts/bench_matmul.sh [SHAPES=default|llama8b|all] [TOKENS=1,16,256,1024]
# Prints every JSON line, then a markdown table of GFLOP/s with the ratios against the goals.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
shapes=${1:-default}
tokens=${2:-1,16,256,1024}
out=${BENCH_OUT:-$root/target/bench-matmul}
mkdir -p "$out"

# numpy: the peer venv if it has it, else the system python, else a venv of our own.
python=""
for candidate in /work/.peer-venv/bin/python python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import numpy' 2>/dev/null; then
        python=$candidate
        break
    fi
done
if [ -z "$python" ]; then
    venv=${BENCH_VENV:-$root/target/bench-venv}
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/python" -c 'import numpy' 2>/dev/null || "$venv/bin/pip" install --quiet numpy
    python=$venv/bin/python
fi

cargo build --release --quiet -p agent --bin finagent
./target/release/finagent bench matmul --shapes "$shapes" --tokens "$tokens" --backward | tee "$out/finagent.jsonl"
"$python" scripts/bench_matmul.py time "$shapes" "$tokens" --backward | tee "$out/numpy.jsonl"
"$python" scripts/bench_matmul.py table "$out/finagent.jsonl" "$out/numpy.jsonl"
