#!/usr/bin/env python3
"""Joins attnd_gpu_bench's and peers.py's CSVs into one Markdown table.

  table.py attnd.csv peers.csv

Per shape: TFLOP/s of each attnd variant with its ratio to the best PyTorch backend in
parentheses ("refused" where cuDNN refused the case for the cudnn variant), each peer's TFLOP/s,
cudnn's ratio to PyTorch's cuDNN backend (same library; the issue asks >= 0.95), fused's ratios
to FlashAttention-2 and to cuDNN (PyTorch's backends), chunked's ratio
to xformers (the issue asks >= 0.5) and to its own memory-traffic bound (bytes its plan must move
/ the copy rate measured in the run, 2.96 TB/s on the H100; see kernels/cuda/pipeline.h; the
issue asks >= 0.8), naive's ratio to the math backend, and each variant's extra memory (the
plan's workspace). Below the table: why each missing figure is missing.

Decode shapes (q_len <= 16 and below len: memory-bound) get a table of their own below the
first: per attnd variant and peer the time in ms and, in parentheses, the fraction of the
device-to-device copy rate that attnd_gpu_bench measured at its start that the bytes any kernel
must move make at that time: io_bytes / (ms · 1e-3) / copy_bytes_per_s, io_bytes =
B·Mk·Hkv·(D + Dv)·e + B·Mq·Hq·(D + Dv)·e (K and V read once, Q read, O written; e bytes per
element; both rates count bytes read plus written). Then the best peer's time over fused's
(above 1: fused is faster).
Peers that refused enable_gqa ran on K and V expanded with repeat_interleave (noted below).
"""
import csv
import sys

PEERS = ["FA2", "xformers", "cuDNN", "math"]


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def fmt(x, digits=1):
    return "—" if x is None else f"{x:.{digits}f}"


def is_decode(row):
    q_len = int(row.get("q_len") or row["len"])
    return q_len <= 16 and q_len < int(row["len"])


def decode_table(attnd, peers, variants):
    rows = [r for r in attnd if is_decode(r)]
    shapes = list(dict.fromkeys(r["shape"] for r in rows))
    if not shapes:
        return
    ours = {(r["shape"], r["variant"]): r for r in rows}
    theirs = {(r["shape"], r["backend"]): r for r in peers}
    head = (["decode shape", "GB moved", "copy TB/s"] + variants + PEERS +
            ["best peer ms / fused ms"])
    print()
    print("Decode shapes: ms (fraction of the measured copy rate)")
    print()
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    notes = []
    for shape in shapes:
        any_row = next(r for r in rows if r["shape"] == shape)
        io_bytes, copy = float(any_row["io_bytes"]), float(any_row["copy_bytes_per_s"])

        def cell(r):
            if not r or r["status"] != "ok":
                return "—", None
            ms = float(r["ms"])
            return f"{ms:.3f} ({io_bytes / (ms * 1e-3) / copy:.2f})", ms

        cells = [shape, f"{io_bytes / 1e9:.3f}", f"{copy / 1e12:.2f}"]
        for v in variants:
            r = ours.get((shape, v))
            cells.append(cell(r)[0])
            if r and r["status"] != "ok":
                notes.append(f"{shape}, {v}: {r['status']}")
        peer_ms = []
        for p in PEERS:
            r = theirs.get((shape, p))
            text, ms = cell(r)
            cells.append(text)
            if ms is not None:
                peer_ms.append(ms)
            if r and r["status"] != "ok":
                notes.append(f"{shape}, PyTorch {p}: {r['status']}")
            if r and r["status"] == "ok" and r.get("gqa") == "repeat_interleave":
                notes.append(f"{shape}, PyTorch {p}: K and V expanded with repeat_interleave "
                             "(it refused enable_gqa)")
        fused = cell(ours.get((shape, "fused")))[1]
        cells.append(f"{min(peer_ms) / fused:.2f}" if fused and peer_ms else "—")
        print("| " + " | ".join(cells) + " |")
    if notes:
        print()
        for n in notes:
            print(f"- {n}")


def main_table(attnd, peers):
    shapes = list(dict.fromkeys(r["shape"] for r in attnd))
    if not shapes:
        return
    variants = list(dict.fromkeys(r["variant"] for r in attnd))
    ours = {(r["shape"], r["variant"]): r for r in attnd}
    theirs = {(r["shape"], r["backend"]): r for r in peers}

    def rate(rows, key):
        r = rows.get(key)
        return float(r["tflops"]) if r and r["status"] == "ok" else None

    head = ["shape"] + variants + PEERS + ["best peer"]
    if "cudnn" in variants:
        head.append("cudnn/cuDNN")
    if "fused" in variants:
        head += ["fused/FA2", "fused/cuDNN"]
    head += ["chunked/xformers", "chunked/bound", "naive/math",
             "extra MiB (" + "/".join(variants) + ")"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    notes = []
    for shape in shapes:
        peer_rates = {p: rate(theirs, (shape, p)) for p in PEERS}
        best = max((v for v in peer_rates.values() if v is not None), default=None)
        cells = [shape]
        for v in variants:
            t = rate(ours, (shape, v))
            row = ours.get((shape, v))
            if t is None and row and row["status"].startswith("refused"):
                cells.append("refused")
            else:
                cells.append(fmt(t) + (f" ({t / best:.2f})" if t is not None and best else ""))
            if row and row["status"] != "ok":
                notes.append(f"{shape}, {v}: {row['status']}")
        cells += [fmt(peer_rates[p]) for p in PEERS]
        for p in PEERS:
            row = theirs.get((shape, p))
            if row and row["status"] != "ok":
                notes.append(f"{shape}, PyTorch {p}: {row['status']}")
        cells.append(fmt(best))
        if "cudnn" in variants:
            ours_cudnn, theirs_cudnn = rate(ours, (shape, "cudnn")), peer_rates["cuDNN"]
            cells.append(fmt(ours_cudnn / theirs_cudnn, 2)
                         if ours_cudnn and theirs_cudnn else "—")
        if "fused" in variants:
            fused = rate(ours, (shape, "fused"))
            for peer in ("FA2", "cuDNN"):
                cells.append(fmt(fused / peer_rates[peer], 2)
                             if fused and peer_rates[peer] else "—")
        chunked = rate(ours, (shape, "chunked"))
        xf = peer_rates["xformers"]
        cells.append(fmt(chunked / xf, 2) if chunked and xf else "—")
        row = ours.get((shape, "chunked"))
        bound = None
        if row and row["status"] == "ok" and float(row["bound_ms"]) > 0:
            bound = float(row["bound_ms"]) / float(row["ms"])
        cells.append(fmt(bound, 2))
        naive, math = rate(ours, (shape, "naive")), peer_rates["math"]
        cells.append(fmt(naive / math, 2) if naive and math else "—")
        mem = []
        for v in variants:
            r = ours.get((shape, v))
            mib = int(r["workspace_bytes"]) / 2**20 if r and r["status"] == "ok" else None
            mem.append(fmt(mib, 0 if mib is None or mib >= 10 else 1))
        cells.append("/".join(mem))
        print("| " + " | ".join(cells) + " |")
    if notes:
        print()
        print("Missing figures:")
        for n in notes:
            print(f"- {n}")


def main():
    attnd, peers = read(sys.argv[1]), read(sys.argv[2]) if len(sys.argv) > 2 else []
    main_table([r for r in attnd if not is_decode(r)], peers)
    decode_table(attnd, peers, list(dict.fromkeys(r["variant"] for r in attnd)))


if __name__ == "__main__":
    main()
