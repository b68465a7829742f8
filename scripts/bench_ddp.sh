#!/usr/bin/env bash
# DDP scaling of `finagent train` on this machine: one process against `mpirun -np 2` with the same
# global batch, printing a markdown table (tokens/s, wall time, final loss) for docs/ddp.md.
#
#   scripts/bench_ddp.sh                 # 6 steps, global batch 4
#   STEPS=10 GLOBAL_BATCH=8 REPEATS=3 scripts/bench_ddp.sh
#
# tokens/s is `finagent train`'s median over steps of the global batch's input tokens per second
# of step time (on rank 0); wall time includes loading the model and the final validation. Each
# row is the best of REPEATS runs (default 2): on a shared machine the best run is the one the
# other load disturbed least.
# Dropout is off so that every row must end at the same loss (the runs differ only in how the
# global batch is split), which the table shows as a check. The base's products are f32
# (COMPUTE=bf16 for training's default over a quantized base): bf16 rounding would turn the splits'
# last-bit summation differences into visible loss differences, and docs/ddp.md's rows are f32.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export FINAGENT_SHARED=${FINAGENT_SHARED:-$(cd "$root/.." && pwd)/shared}
model=${FINAGENT_MODEL:-$root/models/SmolLM2-135M-Instruct.Q4_1.gguf}
steps=${STEPS:-6}
global_batch=${GLOBAL_BATCH:-4}
bits=${BITS:-8}
tasks=${TASKS:-fpb}
repeats=${REPEATS:-2}
compute=${COMPUTE:-f32}
cores=$(nproc)

if [ -z "${FINAGENT_BIN:-}" ]; then
    cargo build --quiet --release -p agent --features mpi --bin finagent
    FINAGENT_BIN=$root/target/release/finagent
fi
if (( global_batch % 2 != 0 )); then
    echo "GLOBAL_BATCH must be even to split over 2 ranks, got $global_batch" >&2
    exit 2
fi
command -v mpirun >/dev/null || { echo "mpirun is missing (apt-get install openmpi-bin)" >&2; exit 2; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# run NAME RANKS THREADS_PER_RANK MICRO_BATCH: REPEATS training runs; prints one table row.
run() {
    local name=$1 ranks=$2 threads=$3 micro_batch=$4
    local launcher=()
    if (( ranks > 1 )); then
        # No binding: each rank's threads may use any core, as in the one-process rows.
        launcher=(mpirun --allow-run-as-root --oversubscribe --bind-to none -np "$ranks"
            -x RAYON_NUM_THREADS="$threads")
    fi
    local results=() repeat start end out
    for ((repeat = 0; repeat < repeats; repeat++)); do
        out=$scratch/run-$RANDOM$RANDOM
        start=$(date +%s.%N)
        RAYON_NUM_THREADS=$threads OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
            "${launcher[@]}" "$FINAGENT_BIN" train --out "$out" --model "$model" --bits "$bits" \
            --tasks "$tasks" --steps "$steps" --set "micro_batch=$micro_batch" --set lora.dropout=0.0 \
            --set "compute_dtype=\"$compute\"" --quiet >"$out.json" 2>"$out.log" || {
            echo "$name failed:" >&2
            cat "$out.log" >&2
            exit 1
        }
        end=$(date +%s.%N)
        results+=("$out.json" "$start" "$end")
    done
    python3 - "$name" "$ranks" "$threads" "$micro_batch" "${results[@]}" <<'EOF'
import json, sys
name, ranks, threads, micro_batch, *results = sys.argv[1:]
rates, walls, losses = [], [], set()
for path, start, end in zip(results[0::3], results[1::3], results[2::3]):
    report = json.loads(open(path).read().strip().splitlines()[-1])
    rates.append(report["tokens_per_sec"])
    walls.append(float(end) - float(start))
    losses.add(f"{report['final_loss']:.6f}")
print(f"| {name} | {ranks} | {threads} | {micro_batch} | {int(ranks) * int(micro_batch)} "
      f"| {max(rates):.1f} | {min(walls):.1f} | {' / '.join(sorted(losses))} |")
EOF
}

echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "finagent train --bits $bits --tasks $tasks --steps $steps, global batch $global_batch, lora.dropout=0.0, compute_dtype=$compute, best of $repeats"
echo
echo "| run | ranks | threads/rank | micro_batch | global batch | best tokens/s | best wall s | final loss |"
echo "|---|---|---|---|---|---|---|---|"
run "1 process, all cores" 1 "$cores" "$global_batch"
run "1 process, 1 thread" 1 1 "$global_batch"
run "mpirun -np 2, 1 thread each" 2 1 $((global_batch / 2))
run "mpirun -np 2, all cores each" 2 "$cores" $((global_batch / 2))
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
