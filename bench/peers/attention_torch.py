#!/usr/bin/env python3
"""PyTorch CPU peer of bench/attention_bench.cc: torch.nn.functional.
scaled_dot_product_attention at the same Llama-3-8B shapes (B = 1, Hq = 32,
Hkv = 8, D = 128, S in 2048/4096/8192, causal and not) and thread counts.

Tooling only, never a build or test dependency (pip install torch). Prints one
JSON object per case: kernel, target, shape, dtype, threads, median_ms and
GFLOP/s of the useful work (4 S Skv D per head; visible pairs when causal),
the same accounting as attention_bench and `ncore bench attention`.

  python3 bench/peers/attention_torch.py [--s 2048 4096] [--threads 1 2]
      [--dtype bf16 f32] [--reps 3]
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

HQ, HKV, D = 32, 8, 128


def useful_flops(s, causal):
    pairs = s * (s + 1) / 2 if causal else s * s
    return 4.0 * HQ * pairs * D


def run_case(s, causal, threads, dtype, reps):
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(1)
    q = (torch.rand(1, HQ, s, D, generator=gen) * 2 - 1).to(dtype)
    k = (torch.rand(1, HKV, s, D, generator=gen) * 2 - 1).to(dtype)
    v = (torch.rand(1, HKV, s, D, generator=gen) * 2 - 1).to(dtype)

    def attend():
        try:  # torch >= 2.5 shares kv heads itself
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)
        except TypeError:
            g = HQ // HKV
            return F.scaled_dot_product_attention(q, k.repeat_interleave(g, 1),
                                                  v.repeat_interleave(g, 1), is_causal=causal)

    with torch.inference_mode():
        attend()  # warm-up: kernel selection, allocations
        ms = []
        for _ in range(reps):
            t0 = time.perf_counter()
            attend()
            ms.append((time.perf_counter() - t0) * 1e3)
    med = statistics.median(ms)
    return {"kernel": "attention", "target": "torch-cpu", "torch": torch.__version__,
            "b": 1, "hq": HQ, "hkv": HKV, "sq": s, "skv": s, "d": D, "causal": causal,
            "dtype": "bf16" if dtype == torch.bfloat16 else "f32", "threads": threads,
            "median_ms": med, "gflops": useful_flops(s, causal) / (med * 1e6)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--s", type=int, nargs="+", default=[2048, 4096, 8192])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--dtype", nargs="+", default=["bf16", "f32"], choices=["bf16", "f32"])
    ap.add_argument("--causal", type=int, nargs="+", default=[0, 1], choices=[0, 1])
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    for s in args.s:
        for causal in args.causal:
            for dt in args.dtype:
                for threads in args.threads:
                    dtype = torch.bfloat16 if dt == "bf16" else torch.float32
                    print(json.dumps(run_case(s, bool(causal), threads, dtype, args.reps)), flush=True)


if __name__ == "__main__":
    main()
