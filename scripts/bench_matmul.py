"""numpy (OpenBLAS) sgemm at finagent's bench shapes, and a ratio table over both result sets.

`time SHAPES TOKENS`: print numpy's JSON lines (format "numpy") in `finagent bench matmul`'s schema.
`table FILE...`: read JSON lines and print GFLOP/s per format with ratios against the goals.
"""

import json
import statistics
import sys
import time

SHAPE_SETS = {
    "default": [(576, 576), (576, 192), (576, 1536), (1536, 576)],
    "llama8b": [(4096, 4096), (4096, 14336)],
}
SHAPE_SETS["all"] = SHAPE_SETS["default"] + SHAPE_SETS["llama8b"]


def time_numpy(shape_set, tokens_list, backward, min_seconds=0.3):
    import numpy as np

    rng = np.random.default_rng(1)
    for in_features, out_features in SHAPE_SETS[shape_set]:
        weight = (rng.random((out_features, in_features), dtype=np.float32) - 0.5) * 0.1
        for tokens in tokens_list:
            directions = [("forward", in_features)] + ([("backward", out_features)] if backward else [])
            for direction, width in directions:
                x = rng.random((tokens, width), dtype=np.float32)
                run = (lambda: x @ weight.T) if direction == "forward" else (lambda: x @ weight)
                run()
                samples, started = [], time.perf_counter()
                while len(samples) < 3 or time.perf_counter() - started < min_seconds:
                    start = time.perf_counter()
                    run()
                    samples.append((time.perf_counter() - start) * 1e3)
                ms = statistics.median(samples)
                flops = 2.0 * tokens * in_features * out_features
                print(json.dumps({
                    "shape": f"{in_features}x{out_features}", "in_features": in_features,
                    "out_features": out_features, "tokens": tokens, "format": "numpy",
                    "direction": direction, "gflops": round(flops / (ms * 1e6), 2), "ms": round(ms, 4),
                }), flush=True)


def table(paths):
    rows = {}
    formats = []
    for path in paths:
        with open(path) as lines:
            for line in lines:
                if not line.startswith("{"):
                    continue
                record = json.loads(line)
                key = (record["direction"], record["shape"], record["tokens"])
                rows.setdefault(key, {})[record["format"]] = record["gflops"]
                if record["format"] not in formats:
                    formats.append(record["format"])
    ratios = [("nf4/dense", "nf4", "dense"), ("nf4/q4_1", "nf4", "qmatmul-q4_1"),
              ("int8/dense", "int8", "dense"), ("int8/q8_0", "int8", "qmatmul-q8_0"),
              ("dense/numpy", "dense", "numpy")]
    header = ["direction", "shape", "tokens"] + formats + [name for name, _, _ in ratios]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for (direction, shape, tokens), by_format in rows.items():
        cells = [direction, shape, str(tokens)]
        cells += [f"{by_format[f]:.1f}" if f in by_format else "" for f in formats]
        for _, top, bottom in ratios:
            if by_format.get(top) and by_format.get(bottom):
                cells.append(f"{by_format[top] / by_format[bottom]:.2f}")
            else:
                cells.append("")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    if sys.argv[1] == "time":
        time_numpy(sys.argv[2], [int(t) for t in sys.argv[3].split(",")], "--backward" in sys.argv)
    elif sys.argv[1] == "table":
        table(sys.argv[2:])
    else:
        sys.exit(f"unknown command {sys.argv[1]}: expected time or table")
