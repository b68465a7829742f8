#!/usr/bin/env bash
# Index build time and size for all shared filings, then `finagent ask` latency on the warm index.
# Release build; prints one JSON line per measurement.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
shared=${FINAGENT_SHARED:-$(cd "$root/.." && pwd)/shared}
model=${FINAGENT_MODEL:-$root/models/SmolLM2-135M-Instruct.Q4_1.gguf}
runs=${RUNS:-5}
cargo build --release --quiet -p agent --bin finagent
bin=$root/target/release/finagent
home=$(mktemp -d); trap 'rm -rf "$home"' EXIT
now() { date +%s.%N; }

start=$(now)
"$bin" --home "$home" index --taxonomy "$shared/xbrl/taxonomy/us-gaap_concepts_partial.tsv" \
    "$shared/xbrl/filings" "$shared/xbrl/companyfacts" >"$home/index.log"
end=$(now)
bytes=$(du -sb "$home/index" | cut -f1)
facts=$(sed -n 's/.*the index holds \([0-9]*\) facts.*/\1/p' "$home/index.log")
echo "{\"measure\":\"index_build\",\"seconds\":$(echo "$end - $start" | bc),\"facts\":$facts,\"index_bytes\":$bytes}"

for question in "What was AAPL's 2022 revenue?" "What was NVDA's 2021 revenue?" "What were AMZN's 2022 total assets?"; do
    times=()
    for _ in $(seq "$runs"); do
        start=$(now)
        "$bin" --home "$home" ask --model "$model" --json "$question" >/dev/null
        end=$(now)
        times+=("$(echo "$end - $start" | bc)")
    done
    sorted=$(printf '%s\n' "${times[@]}" | sort -n)
    echo "{\"measure\":\"ask_warm\",\"question\":\"$question\",\"runs\":$runs,\"min_s\":$(echo "$sorted" | head -1),\"median_s\":$(echo "$sorted" | sed -n "$(( (runs + 1) / 2 ))p"),\"max_s\":$(echo "$sorted" | tail -1)}"
done
