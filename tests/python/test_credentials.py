"""What the client sends for authentication: the bearer token as `authorization` metadata on
every kind of call (blocking, asyncio, stream; a rotating token asked each call), and TLS / mutual
TLS channel credentials, against the fake server; client interceptors see the token as sent."""

from __future__ import annotations

import asyncio
import itertools

import grpc
import grpc.aio
import numpy as np
import pytest

import attnd
import attnd.aio
from fake_server import FakeAttention, make_pki, serve

Q = np.ones((1, 2, 1, 4), np.float32)  # [B, Mq, Hq, D]


def test_bearer_token_on_every_call():
    fake = FakeAttention()
    with serve(fake) as port:
        with attnd.Client(f"127.0.0.1:{port}", token="s3cret",
                          metadata=[("x-tenant", "t1")]) as client:
            client.attend(Q, Q, Q)
            client.info()
            with client.stream() as stream:
                stream.attend(Q, Q, Q)

        async def aio():
            async with attnd.aio.Client(f"127.0.0.1:{port}", token="s3cret") as c:
                await c.attend(Q, Q, Q)
                async with c.stream() as s:
                    await s.attend(Q, Q, Q)
        asyncio.run(aio())
    assert len(fake.metadata) == 5
    assert all(m.get("authorization") == "Bearer s3cret" for m in fake.metadata)
    assert fake.metadata[0].get("x-tenant") == "t1"


def test_rotating_token_and_no_token():
    fake = FakeAttention()
    tokens = (f"token-{i}" for i in itertools.count())
    with serve(fake) as port:
        with attnd.Client(f"127.0.0.1:{port}", token=lambda: next(tokens)) as client:
            client.attend(Q, Q, Q)
            client.attend(Q, Q, Q)
        with attnd.Client(f"127.0.0.1:{port}") as client:
            client.attend(Q, Q, Q)
    assert [m.get("authorization") for m in fake.metadata] == [
        "Bearer token-0", "Bearer token-1", None]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def test_tls_with_token(pki):
    fake = FakeAttention()
    server_creds = grpc.ssl_server_credentials([(pki["server_key"], pki["server_pem"])])
    with serve(fake, server_creds) as port:
        creds = grpc.ssl_channel_credentials(root_certificates=pki["ca_pem"])
        with attnd.Client(f"127.0.0.1:{port}", credentials=creds, token="t") as client:
            np.testing.assert_array_equal(client.attend(Q, Q, Q), Q)
        # A plaintext client cannot talk to a TLS port.
        with attnd.Client(f"127.0.0.1:{port}", retry=attnd.NO_RETRY) as plain:
            with pytest.raises(attnd.AttendError) as e:
                plain.attend(Q, Q, Q, timeout=10)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    assert fake.calls == 1 and fake.metadata[0]["authorization"] == "Bearer t"


def test_mutual_tls(pki):
    fake = FakeAttention()
    server_creds = grpc.ssl_server_credentials([(pki["server_key"], pki["server_pem"])],
                                               root_certificates=pki["ca_pem"],
                                               require_client_auth=True)
    with serve(fake, server_creds) as port:
        target = f"127.0.0.1:{port}"
        with_cert = grpc.ssl_channel_credentials(pki["ca_pem"], pki["client_key"],
                                                 pki["client_pem"])
        with attnd.Client(target, credentials=with_cert) as client:
            np.testing.assert_array_equal(client.attend(Q, Q, Q), Q)

        async def aio():
            async with attnd.aio.Client(target, credentials=with_cert) as c:
                return await c.attend(Q, Q, Q)
        np.testing.assert_array_equal(asyncio.run(aio()), Q)

        without = grpc.ssl_channel_credentials(pki["ca_pem"])
        with attnd.Client(target, credentials=without, retry=attnd.NO_RETRY) as client:
            with pytest.raises(attnd.AttendError) as e:
                client.attend(Q, Q, Q, timeout=10)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    assert fake.calls == 2


class RecordingInterceptor(grpc.UnaryUnaryClientInterceptor):
    """A client-side interceptor: sees each unary call's method and metadata as sent."""

    def __init__(self):
        self.calls = []

    def intercept_unary_unary(self, continuation, details, request):
        self.calls.append((details.method, dict(details.metadata or ())))
        return continuation(details, request)


class AioRecordingInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self):
        self.calls = []

    async def intercept_unary_unary(self, continuation, details, request):
        self.calls.append((details.method, dict(details.metadata or ())))
        return await continuation(details, request)


def test_interceptors_see_the_token_as_sent():
    sync, aio = RecordingInterceptor(), AioRecordingInterceptor()
    with serve(FakeAttention()) as port:
        with attnd.Client(f"127.0.0.1:{port}", token="abc", interceptors=[sync]) as client:
            client.attend(Q, Q, Q)
            client.info()

        async def run():
            async with attnd.aio.Client(f"127.0.0.1:{port}", token="abc",
                                        interceptors=[aio]) as c:
                await c.attend(Q, Q, Q)
        asyncio.run(run())
    methods = [m if isinstance(m, str) else m.decode() for m, _ in sync.calls + aio.calls]
    assert methods == ["/attnd.v1.Attention/Attend", "/attnd.v1.Attention/GetServerInfo",
                       "/attnd.v1.Attention/Attend"]
    assert all(md["authorization"] == "Bearer abc" for _, md in sync.calls + aio.calls)
