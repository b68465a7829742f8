#!/usr/bin/env bash
# Training rows for the tag adapter (configs/finer-rerank-r8-8bit.toml): FiNER's train split,
# each row ranked by 5-fold cross-validation (`finagent tag --folds 5`), written as the prompt
# `finagent tag` gives the model and the gold tag. About 5% of the sentences (by a hash of the
# sentence) are kept apart as validation rows.
# Usage: scripts/finer_rerank_data.sh OUT_DIR   (writes OUT_DIR/finer_tagging/{train,validation}.jsonl)
set -euo pipefail
out=${1:?usage: scripts/finer_rerank_data.sh OUT_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${FINAGENT_SHARED:-$(cd "$root/.." && pwd)/shared}
bin=${FINAGENT_BIN:-$root/target/release/finagent}
mkdir -p "$out/finer_tagging"
rows=$(mktemp); trap 'rm -f "$rows"' EXIT
FINAGENT_DATA=$shared/data "$bin" tag --finer "$shared/data/finer/train.jsonl" --folds 5 \
    --out /dev/null --rerank-rows "$rows"
python3 - "$rows" "$out/finer_tagging" <<'PY'
import hashlib, json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
train, validation = [], []
for row in rows:
    sentence = row["context"].split("\nInput: ", 1)[-1]
    held_out = int(hashlib.sha1(sentence.encode()).hexdigest(), 16) % 20 == 0
    (validation if held_out else train).append(row)
for name, part in (("train", train), ("validation", validation)):
    with open(f"{sys.argv[2]}/{name}.jsonl", "w") as out:
        out.writelines(json.dumps(row) + "\n" for row in part)
print(f"{len(train)} train rows, {len(validation)} validation rows")
PY
