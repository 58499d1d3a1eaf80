#!/usr/bin/env python3
"""PyTorch CPU peer of bench/norm_bench.cc: torch.nn.functional.layer_norm and
rms_norm next to a copy of the same bytes (Y.copy_(X)), interleaved in one
process, at the same shapes ([4096, 4096], [8192, 8192]), dtypes and thread
counts. torch's norms are fused single kernels (one read of X, one write of
Y), so their ratio to the copy is what a fused CPU norm reaches here.

Tooling only, never a build or test dependency (pip install torch). Prints one
JSON object per case: kernel, shape, dtype, threads, median_ms, GB/s (X read +
Y written), copy_GB/s and ratio, the accounting of norm_bench.

  python3 bench/peers/norm_torch.py [--n 4096 8192] [--threads 1 2]
      [--dtype f32 bf16] [--reps 15]
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F


def run_case(kind, n, dtype, threads, reps):
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(1)
    x = (torch.rand(n, n, generator=gen) * 2 - 1).to(dtype)
    gamma = (1 + 0.1 * (torch.rand(n, generator=gen) * 2 - 1)).to(dtype)
    beta = (0.1 * (torch.rand(n, generator=gen) * 2 - 1)).to(dtype)
    y = torch.zeros_like(x)  # pages Y in before timing

    def norm():
        if kind == "layernorm":
            return F.layer_norm(x, (n,), gamma, beta, eps=1e-5)
        return F.rms_norm(x, (n,), gamma, eps=1e-5)

    with torch.inference_mode():
        norm()  # warm-up
        t_norm, t_copy = [], []
        for _ in range(reps):
            t0 = time.perf_counter()
            y.copy_(x)
            t1 = time.perf_counter()
            norm()
            t2 = time.perf_counter()
            t_copy.append(t1 - t0)
            t_norm.append(t2 - t1)
    nbytes = 2.0 * x.numel() * x.element_size()  # read X, write Y
    gbs = nbytes / statistics.median(t_norm) / 1e9
    copy_gbs = nbytes / statistics.median(t_copy) / 1e9
    return {"kernel": kind, "target": "torch-cpu", "torch": torch.__version__, "rows": n, "d": n,
            "dtype": "bf16" if dtype == torch.bfloat16 else "f32", "threads": threads,
            "median_ms": statistics.median(t_norm) * 1e3, "GB/s": gbs, "copy_GB/s": copy_gbs,
            "ratio": gbs / copy_gbs}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernel", nargs="+", default=["layernorm", "rmsnorm"],
                    choices=["layernorm", "rmsnorm"])
    ap.add_argument("--n", type=int, nargs="+", default=[4096, 8192])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--dtype", nargs="+", default=["f32", "bf16"], choices=["f32", "bf16"])
    ap.add_argument("--reps", type=int, default=15)
    args = ap.parse_args()
    for kind in args.kernel:
        for n in args.n:
            for dt in args.dtype:
                for threads in args.threads:
                    dtype = torch.bfloat16 if dt == "bf16" else torch.float32
                    print(json.dumps(run_case(kind, n, dtype, threads, args.reps)), flush=True)


if __name__ == "__main__":
    main()
