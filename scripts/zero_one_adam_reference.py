#!/usr/bin/env python3
"""0/1 Adam transcribed from DeepSpeed (deepspeed/runtime/fp16/onebit/zoadam.py, step(); and
deepspeed/runtime/comm/nccl.py, NcclBackend.compressed_allreduce) into NumPy, over W in-memory
ranks run in lockstep, plus the engine's part (average the gradients over ranks when
enable_backward_allreduce is set).

Writes trainer/tests/fixtures/zero_one_adam_numpy.json for W = 1 and W = 2 with a tiny schedule
(var_freeze_step 6, var_update_scaler 2, local_step_scaler 2, local_step_clipper 4) so that 18
steps go through the first (discarded) call, phase A with a doubling variance interval and 1-bit
steps, the freeze, and phase B sync rounds with a doubling, clipped local step interval.

Arithmetic is f32 with scalar coefficients rounded from Python floats, as torch does it; where the
CUDA kernels would fuse a multiply-add this script does not (nor does the Rust port).

Run: /work/.peer-venv/bin/python scripts/zero_one_adam_reference.py
"""

import json
import math
import os

import numpy as np

F32 = np.float32


def padded_len(numel, world):
    divider = world * 8 // math.gcd(world, 8)
    unit = world * divider
    return -(-numel // unit) * unit


def scale_of(x):
    # torch.linalg.norm(x) / np.sqrt(x.numel()), accumulated in f64 and rounded once
    return F32(np.sqrt(np.sum(x.astype(np.float64) ** 2)) / np.sqrt(x.size))


def signs_of(x):
    # buffer_m.sign().add_(1).bool(): only negative values are False (0 and NaN count as +1)
    return ~(x < 0)


def plus_minus(bits):
    return np.where(bits, F32(1.0), F32(-1.0)).astype(F32)


def compressed_allreduce(xs, worker_errors, server_errors):
    """NcclBackend.compressed_allreduce for len(xs) ranks; returns one output per rank."""
    world = len(xs)
    numel = xs[0].size
    n_padded = worker_errors[0].size
    packed, worker_scales = [], []
    for r in range(world):
        buf = np.concatenate([xs[r], np.zeros(n_padded - numel, dtype=F32)])
        buf = buf + worker_errors[r]
        scale = scale_of(buf)
        worker_errors[r][:] = buf - scale * plus_minus(signs_of(buf))
        packed.append(np.packbits(signs_of(buf)))
        worker_scales.append(scale)
    chunk_bytes = packed[0].size // world
    server_packed, server_scales = [], []
    inv_world = F32(1.0 / world)
    for r in range(world):
        received = [packed[i][r * chunk_bytes : (r + 1) * chunk_bytes] for i in range(world)]
        z = np.zeros(chunk_bytes * 8, dtype=F32)
        for i in range(world):
            z = z + plus_minus(np.unpackbits(received[i]).astype(bool)) * (worker_scales[i] * inv_world)
        z = z + server_errors[r]
        scale = scale_of(z)
        server_errors[r][:] = z - scale * plus_minus(signs_of(z))
        server_packed.append(np.packbits(signs_of(z)))
        server_scales.append(scale)
    out = np.concatenate(
        [plus_minus(np.unpackbits(server_packed[r]).astype(bool)) * server_scales[r] for r in range(world)]
    )
    return [out[:numel].copy() for _ in range(world)]


class ZeroOneAdam:
    """DeepSpeed's ZeroOneAdam for `world` ranks in lockstep; schedule values are shared."""

    def __init__(self, world, sizes, cfg):
        self.world, self.sizes, self.cfg = world, sizes, cfg
        self.initialize = False
        self.freeze_key = False
        self.reinitial_error_buffer = False
        self.enable_backward_allreduce = True
        self.step_count = 0
        zeros = lambda n: [np.zeros(n, dtype=F32) for _ in range(world)]
        self.exp_avg = [zeros(n) for n in sizes]
        self.exp_avg_sq = [zeros(n) for n in sizes]
        self.u = [zeros(n) for n in sizes]
        self.worker_error = [zeros(padded_len(n, world)) for n in sizes]
        self.server_error = [zeros(padded_len(n, world) // world) for n in sizes]
        self.var_interval, self.var_counter = 1, 0
        self.local_step_interval, self.local_step_counter = 1, 0
        self.lrs = 0.0
        self.compressed_calls = 0

    def c(self, idx, xs):
        self.compressed_calls += 1
        return compressed_allreduce(xs, self.worker_error[idx], self.server_error[idx])

    def step(self, params, grads, lr):
        """params[idx][rank], grads[idx][rank]: this step's (engine-reduced or local) gradients."""
        cfg, W = self.cfg, self.world
        beta1, beta2 = cfg["beta1"], cfg["beta2"]
        b1, m_w = F32(beta1), F32(1 - beta1)
        b2, v_w = F32(beta2), F32(1 - beta2)
        eps, wd, neg_lr = F32(cfg["eps"]), F32(cfg["weight_decay"]), F32(-lr)
        self.step_count += 1
        t = self.step_count
        if not self.initialize:
            if W > 1:
                for idx in range(len(self.sizes)):
                    self.u[idx] = self.c(idx, self.u[idx])
            self.initialize = True
            return
        if self.freeze_key:
            self.lrs += lr
        for idx in range(len(self.sizes)):
            m, v, u = self.exp_avg[idx], self.exp_avg_sq[idx], self.u[idx]
            if not self.freeze_key:
                if t % self.var_interval == 0:
                    for r in range(W):
                        g = grads[idx][r]
                        v[r] = v[r] * b2 + v_w * g * g
                        m[r] = m[r] * b1 + m_w * g
                elif W > 1:
                    onebit = self.c(idx, [g.copy() for g in grads[idx]])
                    for r in range(W):
                        m[r] = m[r] * b1 + m_w * onebit[r]
            else:
                for r in range(W):
                    m[r] = m[r] * b1 + m_w * grads[idx][r]
            for r in range(W):
                p = params[idx][r]
                update = m[r] / (np.sqrt(v[r]) + eps)
                if cfg["weight_decay"] > 0.0:
                    update = update + wd * p
                delta = neg_lr * update
                params[idx][r] = p + delta
                if self.freeze_key:
                    u[r] = u[r] + delta
            if self.freeze_key and t % self.local_step_interval == 0:
                for r in range(W):
                    params[idx][r] = params[idx][r] + (-u[r])
                    u[r] = u[r] * (np.sqrt(v[r]) + eps)
                if W > 1:
                    u[:] = self.c(idx, u)
                lrs = F32(self.lrs)
                for r in range(W):
                    m[r] = F32(0.0) - u[r] / lrs
                    params[idx][r] = params[idx][r] + u[r] / (np.sqrt(v[r]) + eps)
                    u[r] = np.zeros_like(u[r])
        if self.freeze_key:
            if t % self.local_step_interval == 0:
                self.lrs = 0.0
            self.local_step_counter += 1
            if self.local_step_counter == cfg["local_step_scaler"]:
                self.local_step_counter = 0
                self.local_step_interval = min(cfg["local_step_clipper"], self.local_step_interval * 2)
        else:
            if t % self.var_interval == 0:
                self.var_counter += 1
                if self.var_counter == cfg["var_update_scaler"]:
                    self.var_counter = 0
                    self.var_interval *= 2
            self.enable_backward_allreduce = (t + 1) % self.var_interval == 0
        if t > cfg["var_freeze_step"]:
            self.freeze_key = True
            self.enable_backward_allreduce = False
        if self.freeze_key and not self.reinitial_error_buffer:
            for bufs in self.worker_error + self.server_error:
                for buf in bufs:
                    buf[:] = 0
            self.reinitial_error_buffer = True


def bits(array):
    return np.asarray(array, dtype=F32).view(np.uint32).tolist()


def run_case(world, rng, cfg, sizes, n_steps):
    initial = [rng.standard_normal(n).astype(F32) for n in sizes]
    lrs = [float(F32(lr)) for lr in rng.uniform(1e-3, 2e-2, n_steps)]
    local_grads = [
        [[rng.standard_normal(n).astype(F32) for _ in range(world)] for n in sizes] for _ in range(n_steps)
    ]
    opt = ZeroOneAdam(world, sizes, cfg)
    params = [[p.copy() for _ in range(world)] for p in initial]
    steps = []
    for step in range(n_steps):
        allreduce = opt.enable_backward_allreduce
        grads = []
        for idx in range(len(sizes)):
            if allreduce:
                total = local_grads[step][idx][0].copy()
                for r in range(1, world):
                    total = total + local_grads[step][idx][r]
                mean = total / F32(world) if world > 1 else total
                grads.append([mean.copy() for _ in range(world)])
            else:
                grads.append([g.copy() for g in local_grads[step][idx]])
        calls_before = opt.compressed_calls
        opt.step(params, grads, lrs[step])
        steps.append(
            {
                "allreduce": allreduce,
                "compressed_calls": opt.compressed_calls - calls_before,
                "params_bits": [[bits(params[idx][r]) for idx in range(len(sizes))] for r in range(world)],
            }
        )
    return {
        "world_size": world,
        "sizes": sizes,
        "initial_params_bits": [bits(p) for p in initial],
        "lrs_f32_bits": bits(lrs),
        "local_grads_bits": [
            [[bits(local_grads[s][idx][r]) for idx in range(len(sizes))] for r in range(world)]
            for s in range(n_steps)
        ],
        "steps": steps,
    }


def main():
    cfg = {
        "beta1": 0.9,
        "beta2": 0.999,
        "eps": 1e-8,
        "weight_decay": 0.01,
        "var_freeze_step": 6,
        "var_update_scaler": 2,
        "local_step_scaler": 2,
        "local_step_clipper": 4,
    }
    rng = np.random.default_rng(7)
    cases = [run_case(world, rng, cfg, [5, 19], 18) for world in (1, 2)]
    fixture = {"config": cfg, "cases": cases}
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    path = os.path.join(root, "trainer", "tests", "fixtures", "zero_one_adam_numpy.json")
    with open(path, "w") as out:
        json.dump(fixture, out, separators=(",", ":"))
        out.write("\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
