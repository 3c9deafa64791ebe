"""An in-process fake of attnd's gRPC service for what a live attnd cannot be made to do on cue:
fail the first N calls (or stream requests) with a given code, and record the metadata of every
call. Attend answers
out = q (so D == Dv in these tests); the stream answers likewise. Also a throwaway PKI made
with openssl for the TLS tests."""

from __future__ import annotations

import contextlib
import pathlib
import subprocess
import threading
from concurrent import futures

import grpc

from attnd.v1 import attention_pb2 as pb
from attnd.v1 import attention_pb2_grpc as pb_grpc


class FakeAttention(pb_grpc.AttentionServicer):
    def __init__(self, failures: int = 0, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE):
        self.failures = failures
        self.code = code
        self.calls = 0
        self.metadata: list[dict[str, str]] = []  # per call, in arrival order
        self._lock = threading.Lock()

    def _arrive(self, context) -> bool:
        """Records the call; True when it must fail."""
        with self._lock:
            self.calls += 1
            self.metadata.append(dict(context.invocation_metadata()))
            return self.calls <= self.failures

    def Attend(self, request, context):
        if self._arrive(context):
            context.abort(self.code, f"fake failure {self.calls} of {self.failures}")
        return pb.AttendResponse(request_id=request.request_id, out=request.q)

    def GetServerInfo(self, request, context):
        if self._arrive(context):
            context.abort(self.code, "fake failure")
        return pb.ServerInfo(version="fake", backend="cpu")

    def AttendStream(self, request_iterator, context):
        """The first `failures` requests are answered in the stream with `code`."""
        with self._lock:
            self.metadata.append(dict(context.invocation_metadata()))
        for request in request_iterator:
            with self._lock:
                self.calls += 1
                fail = self.calls <= self.failures
            if fail:
                yield pb.AttendResponse(request_id=request.request_id, status=pb.RequestStatus(
                    code=self.code.value[0], message=f"fake failure {self.calls}"))
            else:
                yield pb.AttendResponse(request_id=request.request_id, out=request.q)


@contextlib.contextmanager
def serve(servicer: FakeAttention, credentials: grpc.ServerCredentials | None = None):
    """Serves `servicer` on a free 127.0.0.1 port; yields the port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_AttentionServicer_to_server(servicer, server)
    port = (server.add_secure_port("127.0.0.1:0", credentials) if credentials
            else server.add_insecure_port("127.0.0.1:0"))
    server.start()
    try:
        yield port
    finally:
        server.stop(0)


def make_pki(directory: pathlib.Path) -> dict[str, bytes]:
    """A CA, a server certificate for 127.0.0.1 / localhost and a client certificate, as PEM."""
    def run(*args):
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
        "-subj", "/CN=attnd-test-ca")
    (directory / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name in ("server", "client"):
        run("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "1", "-extfile", "san.ext")
    return {p.stem + p.suffix.replace(".", "_"): p.read_bytes()
            for p in directory.iterdir() if p.suffix in (".pem", ".key")}
