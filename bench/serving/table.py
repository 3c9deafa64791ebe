#!/usr/bin/env python3
"""The serving benchmark's table (markdown) from run_serving_bench.sh's results.jsonl, with the
issue's goals checked on the figures:
  (a), (b) at concurrency >= 64: attnd (batched) >= 3x the peer's req/s, with a lower p99;
  (a), (b) at concurrency 1: attnd's p50 no worse than the peer's;
  (c): attnd's req/s within 1.5x of Echo's (the wire's own limit, same payloads, same run).

    table.py results.jsonl
"""

import json
import sys

SHAPES = {
    "a": "(a) small: B=1 H=8 Mq=Mk=256 D=64 f16",
    "b": "(b) mixed: B=1 H=8 Mq=Mk in 64..2048 D=64 f16",
    "c": "(c) large: B=2 H=5 Mq=Mk=4096 D=64 f16",
}
TARGETS = [("attnd_on", "attnd batched"), ("attnd_off", "attnd unbatched"), ("peer", "peer")]


def cell(r):
    if r is None:
        return "-", "-", "-", "-"
    if not r.get("ok"):
        return "failed", "-", "-", "-"
    lat = r["latency_ms"]
    util = "-" if r.get("gpu_util") is None else f"{r['gpu_util']:.0f}%"
    return f"{r['throughput_rps']:.1f}", f"{lat['p50']:.2f}", f"{lat['p99']:.2f}", util


def rps(r):
    return r["throughput_rps"] if r and r.get("ok") else 0.0


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    by = {(r["shape"], r["target"], r["concurrency"]): r for r in rows}
    out = []
    verdicts = []
    for shape, title in SHAPES.items():
        cs = sorted({r["concurrency"] for r in rows if r["shape"] == shape})
        if not cs:
            continue
        out.append(f"### {title}\n")
        head = "| C |"
        rule = "|---:|"
        for _, name in TARGETS:
            head += f" {name} req/s | p50 ms | p99 ms | GPU busy |"
            rule += "---:|---:|---:|---:|"
        head += " batched / peer | Echo req/s (attnd) | batched / Echo |"
        rule += "---:|---:|---:|"
        if shape == "c":
            head += " Echo req/s (peer) |"
            rule += "---:|"
        out += [head, rule]
        for c in cs:
            line = f"| {c} |"
            for target, _ in TARGETS:
                line += " " + " | ".join(cell(by.get((shape, target, c)))) + " |"
            on, peer = by.get((shape, "attnd_on", c)), by.get((shape, "peer", c))
            echo = by.get((shape, "echo_attnd", c))
            ratio = rps(on) / rps(peer) if rps(peer) else 0
            wire = rps(on) / rps(echo) if rps(echo) else 0
            line += f" {ratio:.2f}x | {cell(echo)[0]} | {wire:.2f} |"
            if shape == "c":
                line += f" {cell(by.get((shape, 'echo_peer', c)))[0]} |"
            out.append(line)
            if not (on and peer and on.get("ok") and peer.get("ok")):
                continue
            if shape in "ab" and c >= 64:
                ok = ratio >= 3 and on["latency_ms"]["p99"] < peer["latency_ms"]["p99"]
                verdicts.append(f"{'MET' if ok else 'NOT MET'}: {shape} c={c}: {ratio:.2f}x the "
                                f"peer's req/s (goal >= 3x), p99 {on['latency_ms']['p99']:.2f} vs "
                                f"{peer['latency_ms']['p99']:.2f} ms (goal lower)")
            if shape in "ab" and c == 1:
                ok = on["latency_ms"]["p50"] <= peer["latency_ms"]["p50"]
                verdicts.append(f"{'MET' if ok else 'NOT MET'}: {shape} c=1: p50 "
                                f"{on['latency_ms']['p50']:.2f} vs peer "
                                f"{peer['latency_ms']['p50']:.2f} ms (goal no worse)")
            if shape == "c" and rps(echo):
                ok = rps(echo) <= 1.5 * rps(on)
                verdicts.append(f"{'MET' if ok else 'NOT MET'}: c c={c}: {rps(on):.1f} req/s, Echo "
                                f"{rps(echo):.1f} (goal within 1.5x of Echo: >= "
                                f"{rps(echo) / 1.5:.1f})")
        out.append("")
    out.append("Goals (issue 5):\n")
    out += [f"- {v}" for v in verdicts] or [
        "- no cell the goals speak of (concurrency 1 or >= 64 of (a) and (b); (c))"]
    print("\n".join(out))


if __name__ == "__main__":
    main()
