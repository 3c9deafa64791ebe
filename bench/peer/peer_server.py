#!/usr/bin/env python3
"""The peer to beat: attnd's own gRPC API (attnd.v1.Attention) served the way a PyTorch user would
serve it without attnd: grpcio's thread-pool server, one request at a time into PyTorch's
scaled_dot_product_attention on the GPU, no batching, no staging of its own.

The same `attnctl load` drives it and attnd. Echo answers like attnd's (the request parsed, an
answer of Attend's size, nothing computed): the wire's own limit through Python's gRPC.

    python3 bench/peer/peer_server.py --listen 127.0.0.1:50061 [--workers 32]
        [--backend auto|cuda|torch-cpu|numpy] [--stubs DIR]

It prints one line "peer serving on ADDR (backend, stubs)" once it listens. Without PyTorch it
falls back to NumPy on the CPU (tests only). SIGTERM/SIGINT stop it.
"""

import argparse
import concurrent.futures
import os
import signal
import sys
import threading
import time
import warnings

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import attention_math  # noqa: E402
import attnd_stubs  # noqa: E402

SERVICE = "attnd.v1.Attention"


class Peer:
    def __init__(self, pb, backend):
        self.pb = pb
        self.backend = backend
        self.device = "cuda:0" if getattr(backend, "device", None) is not None and str(
            backend.device).startswith("cuda") else "cpu"

    def _answer(self, request, out_bytes, lse_bytes, problem, seconds):
        pb = self.pb
        response = pb.AttendResponse(request_id=request.request_id)
        response.out.dtype = request.q.dtype
        response.out.shape.extend(problem.out_shape)
        response.out.data = out_bytes
        if lse_bytes is not None:
            response.lse.dtype = pb.DTYPE_F32
            response.lse.shape.extend(problem.lse_shape)
            response.lse.data = lse_bytes
        response.execution.device = self.device
        response.execution.batch_size = 1
        response.execution.compute_seconds = seconds
        response.execution.plan_reason = f"peer: {self.backend.name} on {self.device}, unbatched"
        return response

    def attend(self, request, context):
        try:
            problem = attention_math.Problem(request)
        except attention_math.BadRequest as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        start = time.perf_counter()
        out_bytes, lse_bytes = self.backend.attend(request, problem)
        return self._answer(request, out_bytes, lse_bytes, problem, time.perf_counter() - start)

    def echo(self, request, context):
        try:
            problem = attention_math.Problem(request)
        except attention_math.BadRequest as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        n = 1
        for d in problem.out_shape:
            n *= d
        n *= attention_math.ELEMENT_BYTES[problem.dtype]
        q = request.q.data
        out = q[:n] + bytes(max(0, n - len(q)))  # q's bytes as far as they go, as attnd's Echo
        lse = bytes(4 * problem.batch * problem.q_heads * problem.q_len) if problem.return_lse else None
        response = self._answer(request, out, lse, problem, 0.0)
        response.execution.device = "echo"
        return response

    def attend_stream(self, requests, context):
        for request in requests:
            try:
                yield self.attend(request, context)
            except Exception as e:  # noqa: BLE001 (answered in-stream, as attnd does)
                response = self.pb.AttendResponse(request_id=request.request_id)
                response.status.code = grpc.StatusCode.INTERNAL.value[0]
                response.status.message = str(e)
                yield response

    def server_info(self, request, context):
        pb = self.pb
        info = pb.ServerInfo(version="peer", backend=self.backend.name,
                             build=f"python {sys.version.split()[0]}, grpcio {grpc.__version__}")
        info.devices.add(name=self.device, kind="cuda" if self.device.startswith("cuda") else "cpu")
        info.dtypes.extend([pb.DTYPE_F32, pb.DTYPE_F16, pb.DTYPE_BF16])
        return info

    def handler(self):
        pb = self.pb

        def unary(fn, req, resp):
            return grpc.unary_unary_rpc_method_handler(
                fn, request_deserializer=req.FromString,
                response_serializer=resp.SerializeToString)

        return grpc.method_handlers_generic_handler(SERVICE, {
            "Attend": unary(self.attend, pb.AttendRequest, pb.AttendResponse),
            "Echo": unary(self.echo, pb.AttendRequest, pb.AttendResponse),
            "GetServerInfo": unary(self.server_info, pb.GetServerInfoRequest, pb.ServerInfo),
            "AttendStream": grpc.stream_stream_rpc_method_handler(
                self.attend_stream, request_deserializer=pb.AttendRequest.FromString,
                response_serializer=pb.AttendResponse.SerializeToString),
        })


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--listen", default="127.0.0.1:50061")
    parser.add_argument("--workers", type=int, default=32, help="gRPC thread pool size")
    parser.add_argument("--backend", default="auto", choices=["auto", "cuda", "torch-cpu", "numpy"])
    parser.add_argument("--stubs", default=None, help="pre-generated stubs (attnd_stubs.py --out)")
    parser.add_argument("--max-message-bytes", type=int, default=1 << 30)
    args = parser.parse_args()

    # torch.frombuffer warns once that the message's bytes are read-only: they are only read.
    warnings.filterwarnings("ignore", message=".*non-writable.*")
    pb = attnd_stubs.load(args.stubs)
    backend = attention_math.make_backend(args.backend)
    peer = Peer(pb, backend)
    options = [("grpc.max_receive_message_length", args.max_message_bytes),
               ("grpc.max_send_message_length", args.max_message_bytes),
               ("grpc.so_reuseport", 0)]
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=args.workers),
                         options=options)
    server.add_generic_rpc_handlers((peer.handler(),))
    port = server.add_insecure_port(args.listen)
    if port == 0:
        print(f"peer: cannot listen on {args.listen}", file=sys.stderr)
        return 2
    server.start()
    host = args.listen.rsplit(":", 1)[0]
    print(f"peer serving on {host}:{port} ({backend.name} on {peer.device}, {args.workers} "
          f"workers, stubs from {pb.source})", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop(grace=2).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
