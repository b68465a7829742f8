#!/usr/bin/env python3
"""Writes trainer/tests/fixtures/adamw_torch.json: torch.optim.AdamW (foreach=False, CPU, f32)
run for a few steps on three flat parameters of odd sizes, with a learning rate that changes every
step. Every f32 is stored as its bit pattern (u32) so the Rust test can compare exactly.

Run: /work/.peer-venv/bin/python scripts/gen_adamw_fixture.py
"""

import json
import os

import numpy as np
import torch

SIZES = [37, 5, 70]  # 70 = two 32-wide AVX-512 chunks plus a scalar tail
STEPS = 8
BETAS = (0.9, 0.999)
EPS = 1e-8
WEIGHT_DECAY = 0.01


def bits(tensor):
    return tensor.detach().numpy().astype(np.float32).view(np.uint32).tolist()


def main():
    rng = np.random.default_rng(20240611)
    params = [torch.tensor(rng.standard_normal(n).astype(np.float32)) for n in SIZES]
    # Learning rates are f32 values: the Rust optimizer receives an f32 lr.
    lrs = [float(np.float32(lr)) for lr in rng.uniform(1e-3, 5e-2, STEPS)]
    # Gradients of widely different magnitudes, a few exact zeros among them.
    grads = []
    for _ in range(STEPS):
        step_grads = []
        for n in SIZES:
            g = (rng.standard_normal(n) * 10.0 ** rng.uniform(-4, 1, n)).astype(np.float32)
            g[rng.integers(0, n)] = 0.0
            step_grads.append(g)
        grads.append(step_grads)

    initial = [bits(p) for p in params]
    optimizer = torch.optim.AdamW(
        params, lr=lrs[0], betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY, foreach=False, fused=False
    )
    expected = []
    for step in range(STEPS):
        for group in optimizer.param_groups:
            group["lr"] = lrs[step]
        for p, g in zip(params, grads[step]):
            p.grad = torch.tensor(g)
        optimizer.step()
        expected.append([bits(p) for p in params])

    fixture = {
        "torch_version": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "beta1": BETAS[0],
        "beta2": BETAS[1],
        "eps": EPS,
        "weight_decay": WEIGHT_DECAY,
        "lrs_f32_bits": np.array(lrs, dtype=np.float32).view(np.uint32).tolist(),
        "initial_params_bits": initial,
        "grads_bits": [[g.view(np.uint32).tolist() for g in step_grads] for step_grads in grads],
        "expected_params_bits": expected,
    }
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    path = os.path.join(root, "trainer", "tests", "fixtures", "adamw_torch.json")
    with open(path, "w") as out:
        json.dump(fixture, out, separators=(",", ":"))
        out.write("\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
