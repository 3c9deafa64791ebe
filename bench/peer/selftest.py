#!/usr/bin/env python3
"""Checks the peer server on this machine's CPU (a CTest entry, bench.peer_cpu): it starts with the
backend asked for, answers attnd's API correctly (`attnctl attend --check` against attnd's own
float64 reference, over the options), and `attnctl load` drives it, Attend and Echo, as the
serving benchmark will on the GPU machine.

    selftest.py --attnctl build/client/attnctl [--backend auto|torch-cpu|numpy] [--python PY]

Exit 0: passed; 77: skipped (this Python lacks grpcio, protobuf or NumPy, or the stubs cannot be
generated or found); 1: failed.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SKIP = 77

# (flags, what it exercises): each goes through `attnctl attend --check`.
CASES = [
    ("--batch 1 --q-len 256 --kv-len 256 --heads 8 --head-dim 64 --dtype f16",
     "the benchmark's small shape (SDPA)"),
    ("--batch 2 --q-len 37 --kv-len 53 --heads 4 --kv-heads 2 --head-dim 16 --dtype f32 "
     "--causal top-left --lse", "GQA, top-left causal, LSE"),
    ("--batch 2 --q-len 33 --kv-len 65 --heads 2 --head-dim 8 --dtype bf16 --causal bottom-right "
     "--kv-lengths 40,65 --layout bhmk", "bottom-right causal, key padding, BHMK"),
    ("--batch 1 --q-len 20 --kv-len 20 --heads 2 --head-dim 8 --dtype f32 --window 3,0 "
     "--bias --bias-shape 1,2,20,20", "sliding window, broadcast bias"),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, timeout=300):
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return result.returncode, result.stdout + result.stderr


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--attnctl", required=True)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args()

    probe = ("import grpc, numpy, google.protobuf, sys; sys.path.insert(0, %r); "
             "import attnd_stubs; print(attnd_stubs.load().source)" % HERE)
    code, out = run([args.python, "-c", probe], timeout=120)
    if code != 0:
        print(f"SKIPPED: {args.python} cannot run the peer here:\n{out.strip()[-600:]}")
        return SKIP
    print("stubs:", out.strip())

    port = free_port()
    target = f"127.0.0.1:{port}"
    log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
    peer = subprocess.Popen([args.python, os.path.join(HERE, "peer_server.py"), "--listen", target,
                             "--backend", args.backend, "--workers", "8"],
                            stdout=log, stderr=subprocess.STDOUT)
    failures = []
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            log.seek(0)
            text = log.read()
            if "peer serving on" in text:
                break
            if peer.poll() is not None:
                print(f"FAILED: the peer exited with {peer.returncode}:\n{text}")
                return 1
            time.sleep(0.2)
        else:
            print("FAILED: the peer did not start within 60 s")
            return 1
        print(text.strip().splitlines()[-1])
        ctl = [args.attnctl, "--target", target, "--timeout", "120s"]

        for flags, what in CASES:
            code, out = run(ctl + ["attend", "--check"] + flags.split())
            verdict = "PASSED" if code == 0 and "check PASSED" in out else "FAILED"
            print(f"attend --check {verdict}: {what}")
            if verdict != "PASSED":
                failures.append(f"{what}: exit {code}\n{out}")

        code, out = run(ctl + ["attend", "--batch", "1", "--q-len", "8", "--kv-len", "8",
                               "--heads", "3", "--kv-heads", "2", "--head-dim", "4"])
        if code == 0 or "INVALID_ARGUMENT" not in out:
            failures.append(f"a bad request was not refused INVALID_ARGUMENT: exit {code}\n{out}")
        else:
            print("bad request refused INVALID_ARGUMENT")

        for extra, method in (([], "Attend"), (["--echo"], "Echo")):
            report = os.path.join(tempfile.mkdtemp(), "load.json")
            code, out = run(ctl + ["load", "--batch", "1", "--heads", "8", "--head-dim", "64",
                                   "--dtype", "f16", "--mixed-lengths", "64-256",
                                   "--mix-requests", "4", "--concurrency", "4", "--requests",
                                   "24", "--json", report] + extra)
            ok = code == 0 and os.path.exists(report)
            figures = json.load(open(report)) if ok else {}
            if not ok or figures.get("ok") != 24 or figures.get("method") != method:
                failures.append(f"load ({method}): exit {code}, {figures}\n{out}")
            else:
                print(f"load {method}: 24/24 ok, {figures['throughput_rps']:.1f} req/s, "
                      f"p50 {figures['latency_ms']['p50']:.1f} ms")
    finally:
        peer.terminate()
        try:
            peer.wait(timeout=10)
        except subprocess.TimeoutExpired:
            peer.kill()
    if failures:
        print("FAILED:\n" + "\n".join(failures))
        log.seek(0)
        print("peer log:\n" + log.read()[-3000:])
        return 1
    print("peer selftest: 1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
