"""Generate the bitsandbytes parity fixtures used by `kernels/tests/bnb_parity.rs`.

The fixtures pin the numerics of bitsandbytes' CPU path (the pure-PyTorch default backend plus the
`libbitsandbytes_cpu` kernels it dispatches to) so the Rust scalar reference in `kernels` can be
compared byte for byte without Python at test time. Run once, from the repository root, in the peer
environment created by `../shared/bench/setup_peer.sh`:

    PEER_VENV=/work/.peer-venv bash ../shared/bench/setup_peer.sh   # once
    CUDA_VISIBLE_DEVICES= /work/.peer-venv/bin/python scripts/gen_bnb_fixtures.py

A slice of a real weight matrix comes from the default model (env FINAGENT_MODEL, default
`models/SmolLM2-135M-Instruct.Q4_1.gguf`), dequantized from Q4_1 with the `gguf` package.

It writes (and overwrites) `kernels/tests/fixtures/`:
- `four_bit.safetensors`: per case `<case>.input` (f32) and, per format nf4/fp4, plain statistics
  (`<case>.<fmt>.packed`, `.absmax`, `.dequant`) and double-quantized statistics (`.dq.absmax_codes`,
  `.dq.nested_absmax`, `.dq.offset`, `.dq.nested_code`, `.dq.dequant`).
- `dynamic_map.safetensors`: `create_dynamic_map(signed=True)` as 256 f32 (`dynamic_map`).
- `int8.safetensors`: LLM.int8 weights, activations, matmul, forward and backward per case.
- `versions.json`: the versions of bitsandbytes, torch and the CPU capability torch dispatched to.
"""

import importlib.metadata
import json
import logging
import os
import platform

import bitsandbytes as bnb
import bitsandbytes.functional as F
import gguf
from gguf.quants import dequantize as gguf_dequantize
import numpy as np
import torch
from safetensors.torch import save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT_DIR = os.path.join(ROOT, "kernels", "tests", "fixtures")
MODEL = os.environ.get("FINAGENT_MODEL", os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
BLOCKSIZE = 64

# (name, rows, cols, seed) of the random normal inputs; odd sizes exercise tail blocks and odd
# packing (1x65 and 7x333 have an odd element count).
RANDOM_CASES = [
    ("r1x65", 1, 65, 1),
    ("r3x100", 3, 100, 2),
    ("r7x333", 7, 333, 3),
    ("r64x64", 64, 64, 4),
    ("r257x129", 257, 129, 5),
]


def four_bit_bounds(fmt):
    """The f32 midpoints bitsandbytes bins against, sorted ascending."""
    code = F.get_4bit_type(fmt, device="cpu")
    ordered = torch.sort(code).values
    return (ordered[:-1] + ordered[1:]) / 2


def tie_input(fmt):
    """Values exactly on every midpoint, +-1 and 0, with absmax 1 so scaling is exact."""
    bounds = four_bit_bounds(fmt)
    values = torch.cat([torch.tensor([1.0, -1.0, 0.0, -0.0]), bounds, -bounds])
    return values.reshape(1, -1).float()


def zero_block_input():
    """One normal block, one all-zero full block and an all-zero tail block of 10."""
    gen = torch.Generator().manual_seed(11)
    first = torch.randn(64, generator=gen)
    return torch.cat([first, torch.zeros(64 + 10)]).reshape(1, -1)


def real_weight(tensor_name, rows):
    """The first `rows` rows of a weight of the default model, as f32 `[rows, in_features]`."""
    reader = gguf.GGUFReader(MODEL)
    tensor = next(t for t in reader.tensors if t.name == tensor_name)
    weight = gguf_dequantize(tensor.data, tensor.tensor_type)
    return torch.from_numpy(np.ascontiguousarray(weight[:rows], dtype=np.float32))


def f32_from_bits(bits):
    return torch.tensor([bits], dtype=torch.int32).view(torch.float32)


def scaling_rounding_input():
    """A full block and a tail whose bins depend on how bitsandbytes scales them.

    NF4 scaling: the full block's second value lands exactly on a midpoint (lower bin) with
    `x * (1 / absmax)` but above it with `x / absmax`; the tail's second value is the reverse, since
    the tail is divided. Found by search over f32 values."""
    small = torch.linspace(-0.01, 0.01, 62)
    full = torch.cat([f32_from_bits(0x3F0ECF0B), f32_from_bits(0x3DE88457), small])  # absmax 0.5578467
    tail = torch.cat([f32_from_bits(0x4019C5A2), f32_from_bits(0x3FC5AF6E), small[:8]])  # absmax 2.4026875
    return torch.cat([full, tail]).reshape(1, -1)


def four_bit_cases():
    cases = [("real_attn_q", real_weight("blk.0.attn_q.weight", 24))]
    for name, rows, cols, seed in RANDOM_CASES:
        gen = torch.Generator().manual_seed(seed)
        cases.append((name, torch.randn(rows, cols, generator=gen, dtype=torch.float32)))
    cases.append(("zeros", zero_block_input()))
    cases.append(("scaling", scaling_rounding_input()))
    cases.append(("ties_nf4", tie_input("nf4")))
    cases.append(("ties_fp4", tie_input("fp4")))
    return cases


def record_four_bit(tensors):
    for name, data in four_bit_cases():
        tensors[f"{name}.input"] = data.clone()
        for fmt in ("nf4", "fp4"):
            packed, state = F.quantize_4bit(data.clone(), blocksize=BLOCKSIZE, quant_type=fmt)
            prefix = f"{name}.{fmt}"
            tensors[f"{prefix}.packed"] = packed.reshape(-1).clone()
            tensors[f"{prefix}.absmax"] = state.absmax.clone()
            tensors[f"{prefix}.dequant"] = F.dequantize_4bit(packed, state).clone()

            packed_dq, state_dq = F.quantize_4bit(
                data.clone(), blocksize=BLOCKSIZE, quant_type=fmt, compress_statistics=True
            )
            assert torch.equal(packed_dq, packed), "double quant must not change the 4-bit codes"
            tensors[f"{prefix}.dq.absmax_codes"] = state_dq.absmax.clone()
            tensors[f"{prefix}.dq.nested_absmax"] = state_dq.state2.absmax.clone()
            tensors[f"{prefix}.dq.offset"] = state_dq.offset.reshape(1).clone()
            tensors[f"{prefix}.dq.nested_code"] = state_dq.state2.code.clone()
            tensors[f"{prefix}.dq.dequant"] = F.dequantize_4bit(packed_dq, state_dq).clone()


def blockwise_zero_case(tensors):
    """How the 8-bit blockwise CPU kernel treats an all-zero block (absmax 0)."""
    data = torch.cat([torch.linspace(-1.0, 1.0, 256), torch.zeros(256)])
    codes, state = F.quantize_blockwise(data, blocksize=256)
    tensors["blockwise_zero.input"] = data
    tensors["blockwise_zero.codes"] = codes
    tensors["blockwise_zero.absmax"] = state.absmax.clone()
    tensors["blockwise_zero.dequant"] = F.dequantize_blockwise(codes, state).clone()


# (name, tokens, in_features, out_features, seed, outlier columns)
INT8_CASES = [
    ("m5x96x48", 5, 96, 48, 21, [3, 50, 95]),
    ("m7x70x33", 7, 70, 33, 22, [0, 41]),
    ("m1x64x16", 1, 64, 16, 23, [10]),
    ("m4x40x24", 4, 40, 24, 24, []),
]


def int8_case(tensors, name, tokens, in_features, out_features, seed, outlier_cols, weight=None):
    gen = torch.Generator().manual_seed(seed)
    random_weight = torch.randn(out_features, in_features, generator=gen) * 0.05
    weight = random_weight if weight is None else weight
    bias = torch.randn(out_features, generator=gen) * 0.1
    x = torch.randn(tokens, in_features, generator=gen)
    for col_idx, col in enumerate(outlier_cols):
        # Outliers in some rows only, of both signs, at and beyond the threshold.
        row = col_idx % tokens
        x[row, col] = 6.0 if col_idx == 0 else -9.5 + col_idx
    grad_out = torch.randn(tokens, out_features, generator=gen)
    prefix = f"int8.{name}"
    tensors[f"{prefix}.weight"] = weight
    tensors[f"{prefix}.bias"] = bias
    tensors[f"{prefix}.x"] = x
    tensors[f"{prefix}.grad_out"] = grad_out

    cb, scb, _ = F.int8_vectorwise_quant(weight.clone())
    tensors[f"{prefix}.cb_f32"] = cb
    tensors[f"{prefix}.scb_f32"] = scb

    ca, sca, cols = F.int8_vectorwise_quant(x.clone().to(torch.float16), threshold=6.0)
    tensors[f"{prefix}.ca"] = ca
    tensors[f"{prefix}.sca"] = sca
    tensors[f"{prefix}.outlier_cols"] = cols.to(torch.int64) if cols is not None else torch.zeros(0, dtype=torch.int64)

    for threshold, tag in ((6.0, "t6"), (0.0, "t0")):
        layer = bnb.nn.Linear8bitLt(
            in_features, out_features, bias=True, has_fp16_weights=False, threshold=threshold
        )
        layer.weight = bnb.nn.Int8Params(weight.clone(), requires_grad=False, has_fp16_weights=False)
        layer.bias = torch.nn.Parameter(bias.clone(), requires_grad=False)
        layer = layer.to("cpu")
        layer.eval()
        if layer.weight.dtype != torch.int8:
            raise RuntimeError(f"Linear8bitLt weight was not quantized on the cpu: {layer.weight.dtype}")
        x_in = x.clone().requires_grad_(True)
        out = layer(x_in)
        out.backward(grad_out)
        tensors[f"{prefix}.{tag}.cb"] = layer.state.CB.clone()
        tensors[f"{prefix}.{tag}.scb"] = layer.state.SCB.clone()
        tensors[f"{prefix}.{tag}.out"] = out.detach().clone()
        tensors[f"{prefix}.{tag}.grad_x"] = x_in.grad.clone()

    cb_layer = tensors[f"{prefix}.t6.cb"]
    tensors[f"{prefix}.int32_mm"] = torch.ops.bitsandbytes.int8_linear_matmul.default(ca, cb_layer)


def main():
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    torch.use_deterministic_algorithms(True)
    os.makedirs(OUT_DIR, exist_ok=True)

    dynamic = {"dynamic_map": F.create_dynamic_map(signed=True).float().contiguous()}
    save_file(dynamic, os.path.join(OUT_DIR, "dynamic_map.safetensors"))

    four_bit = {}
    record_four_bit(four_bit)
    blockwise_zero_case(four_bit)
    save_file({k: v.contiguous() for k, v in four_bit.items()}, os.path.join(OUT_DIR, "four_bit.safetensors"))

    int8 = {}
    for case in INT8_CASES:
        int8_case(int8, *case)
    int8_case(int8, "real_attn_k", 3, 576, 16, 25, [7, 300], weight=real_weight("blk.0.attn_k.weight", 16))
    save_file({k: v.contiguous() for k, v in int8.items()}, os.path.join(OUT_DIR, "int8.safetensors"))

    versions = {
        "bitsandbytes": bnb.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "blocksize": BLOCKSIZE,
        "gguf": importlib.metadata.version("gguf"),
        "real_weight_model": os.path.basename(MODEL),
    }
    with open(os.path.join(OUT_DIR, "versions.json"), "w") as out:
        json.dump(versions, out, indent=2, sort_keys=True)
        out.write("\n")


if __name__ == "__main__":
    main()
