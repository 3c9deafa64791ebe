#!/usr/bin/env python3
"""PyTorch SDPA peers of attnd_gpu_bench: each backend forced, on the same shapes.

Reads the shapes from attnd_gpu_bench's CSV (so they are defined once, in gpu_bench.cc) and
times torch.nn.functional.scaled_dot_product_attention with each backend forced through
torch.nn.attention.sdpa_kernel: FLASH_ATTENTION (FlashAttention-2), EFFICIENT_ATTENTION
(xformers' kernel), CUDNN_ATTENTION and MATH. Same method as attnd_gpu_bench: BHMK inputs
(random normals), `warmup` runs, then `iters` runs each timed with CUDA events, median;
TFLOP/s = 4·B·H·M·M·D, halved for causal. A backend that refuses a case or runs out of memory
is recorded with its reason.

GQA (kv_heads < heads, the decode shapes): each backend first gets enable_gqa=True (only
FlashAttention-2 takes it in PyTorch 2.11; xformers' kernel and cuDNN refuse it); a backend that
refuses is run again on K and V expanded with repeat_interleave to all heads, done before the
timed runs (so those backends read the group's K and V once per query head). The `gqa` column
says which: enable_gqa, repeat_interleave, or empty for shapes without GQA. Decode shapes have
q_len (Mq) below len (Mk); flops are 4·B·H·Mq·Mk·D.

  peers.py --shapes attnd.csv --csv peers.csv [--iters 20] [--warmup 3]
"""
import argparse
import csv
import statistics
import warnings

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

BACKENDS = [
    ("FA2", SDPBackend.FLASH_ATTENTION),
    ("xformers", SDPBackend.EFFICIENT_ATTENTION),
    ("cuDNN", SDPBackend.CUDNN_ATTENTION),
    ("math", SDPBackend.MATH),
]
DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def read_shapes(path):
    shapes = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["shape"] not in shapes:
                shapes[row["shape"]] = {
                    k: int(row[k])
                    for k in ("batch", "heads", "kv_heads", "len", "dim", "causal", "bias")
                } | {"dtype": row["dtype"], "q_len": int(row.get("q_len") or row["len"])}
    return shapes


def flops(s):
    f = 4.0 * s["batch"] * s["heads"] * s["q_len"] * s["len"] * s["dim"]
    return f / 2 if s["causal"] else f


def time_backend(s, backend, iters, warmup, expand=False):
    dtype = DTYPES[s["dtype"]]
    b, h, mq, m, d = s["batch"], s["heads"], s["q_len"], s["len"], s["dim"]
    q = torch.randn(b, h, mq, d, device="cuda", dtype=dtype)
    k = torch.randn(b, s["kv_heads"], m, d, device="cuda", dtype=dtype)
    v = torch.randn(b, s["kv_heads"], m, d, device="cuda", dtype=dtype)
    mask = None
    if s["bias"]:
        mask = torch.randn(b, h if s["bias"] == 1 else 1, mq, m, device="cuda", dtype=dtype)
    gqa = s["kv_heads"] != h
    if gqa and expand:
        k = k.repeat_interleave(h // s["kv_heads"], dim=1)
        v = v.repeat_interleave(h // s["kv_heads"], dim=1)
        gqa = False

    def run():
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=bool(s["causal"]), enable_gqa=gqa)

    stream = torch.cuda.current_stream()
    with sdpa_kernel([backend]):
        for _ in range(warmup):
            run()
        torch.cuda.synchronize()
        pairs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                 for _ in range(iters)]
        for start, end in pairs:
            start.record(stream)
            run()
            end.record(stream)
        torch.cuda.synchronize()
    return statistics.median(start.elapsed_time(end) for start, end in pairs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", required=True, help="attnd_gpu_bench's CSV")
    parser.add_argument("--csv", required=True, help="where to write the peers' figures")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    print(f"torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}, "
          f"{torch.cuda.get_device_name(0)}", flush=True)
    with open(args.csv, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["shape", "backend", "status", "ms", "tflops", "gqa"])
        for label, s in read_shapes(args.shapes).items():
            for name, backend in BACKENDS:
                status, ms, tflops = "ok", 0.0, 0.0
                gqa = "enable_gqa" if s["kv_heads"] != s["heads"] else ""
                try:
                    try:
                        ms = time_backend(s, backend, args.iters, args.warmup)
                    except torch.OutOfMemoryError:
                        raise
                    except RuntimeError:
                        if not gqa:
                            raise
                        torch.cuda.empty_cache()
                        gqa = "repeat_interleave"
                        ms = time_backend(s, backend, args.iters, args.warmup, expand=True)
                    tflops = flops(s) / (ms * 1e-3) / 1e12
                except torch.OutOfMemoryError:
                    status = "out of memory"
                except RuntimeError as e:
                    status = "unsupported: " + str(e).splitlines()[0][:80]
                torch.cuda.empty_cache()
                print(f"{label:36s} {name:9s} " +
                      (f"{ms:9.3f} ms {tflops:7.1f} TFLOP/s {gqa}" if status == "ok" else status),
                      flush=True)
                writer.writerow([label, name, status, f"{ms:.4f}", f"{tflops:.2f}", gqa])
                out.flush()


if __name__ == "__main__":
    main()
