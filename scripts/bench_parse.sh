#!/usr/bin/env bash
# Parse speed of finagent vs Arelle on the AAPL FY2022 instance and inline 10-K, same run.
# Creates a venv with arelle-release under target/bench-venv (override with BENCH_VENV).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
shared=${FINAGENT_SHARED:-$(cd "$root/.." && pwd)/shared}
venv=${BENCH_VENV:-$root/target/bench-venv}
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import arelle' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet arelle-release
fi
cargo build --release --quiet -p xbrl --example parse_speed
"$venv/bin/python" scripts/bench_parse.py --runs "${RUNS:-5}" \
    "$shared/xbrl/filings/AAPL/2022/aapl-20220924_htm.xml" \
    "$shared/xbrl/filings/AAPL/2022/aapl-20220924.htm"
