#!/usr/bin/env python3
"""Parse speed of finagent's XBRL parsers against Arelle on the same files, in the same run.

Usage: scripts/bench_parse.py [--runs N] FILE...
Needs `arelle-release` importable (scripts/bench_parse.sh makes a venv with it) and the release
build of finagent's `parse_speed` example. Prints one JSON line per file and parser, then a
Markdown table with the ratio (Arelle seconds / finagent seconds).
"""
import argparse
import json
import os
import subprocess
import sys
import time


def arelle_load(path, runs):
    from arelle import Cntlr

    best, n_facts = None, 0
    for _ in range(runs):
        cntlr = Cntlr.Cntlr(logFileName="logToBuffer")
        cntlr.webCache.workOffline = True
        start = time.perf_counter()
        model = cntlr.modelManager.load(path)
        elapsed = time.perf_counter() - start
        n_facts = len(model.facts) if model is not None and model.facts is not None else 0
        cntlr.modelManager.close()
        cntlr.close()
        best = elapsed if best is None else min(best, elapsed)
    return best, n_facts


def finagent_parse(binary, path, runs):
    """Mean seconds per parse over repeated in-process parses (at least 0.5 s of them)."""
    out = subprocess.run([binary, path], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--binary", default=os.path.join("target", "release", "examples", "parse_speed"))
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    rows = []
    for path in args.files:
        size = os.path.getsize(path)
        ours = finagent_parse(args.binary, path, args.runs)
        arelle_s, arelle_facts = arelle_load(path, max(1, args.runs // 2))
        for name, seconds, facts in (("finagent", ours["seconds"], ours["facts"]), ("arelle", arelle_s, arelle_facts)):
            print(json.dumps({"file": os.path.basename(path), "parser": name, "bytes": size, "facts": facts,
                              "seconds": round(seconds, 5), "mb_per_s": round(size / 1e6 / seconds, 2),
                              "facts_per_s": round(facts / seconds)}))
        rows.append((os.path.basename(path), size, ours, arelle_s, arelle_facts))
    print()
    print("| file | finagent facts | finagent s | finagent MB/s | finagent facts/s | Arelle facts | Arelle s | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for name, size, ours, arelle_s, arelle_facts in rows:
        print(f"| {name} | {ours['facts']} | {ours['seconds']:.4f} | {size / 1e6 / ours['seconds']:.1f} | "
              f"{ours['facts'] / ours['seconds']:.0f} | {arelle_facts} | {arelle_s:.3f} | {arelle_s / ours['seconds']:.1f}x |")


if __name__ == "__main__":
    sys.exit(main())
