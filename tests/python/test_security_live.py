"""The client's TLS, mutual TLS and bearer token against a live attnd that asks for all three
(certificates made fresh by tests/common/make_test_certs.sh): the right credentials get a
correct answer; each missing or wrong one is refused with the status a caller can act on, and
the server goes on serving."""

from __future__ import annotations

import pathlib
import subprocess

import grpc
import numpy as np
import pytest

import attnd
import np_reference as ref

REPO = pathlib.Path(__file__).resolve().parents[2]
TOKEN = "py-live-token-7f3a"


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("pki")
    subprocess.run([str(REPO / "tests/common/make_test_certs.sh"), str(out)], check=True,
                   capture_output=True)
    return out


@pytest.fixture
def secure_server(start_server, pki):
    tokens = pki / "tokens"
    tokens.write_text(f"# attnd test tokens\n{TOKEN}\n")
    return start_server(
        "server:\n"
        "  listen: 127.0.0.1:0\n"
        f"  tls_cert_file: {pki / 'server.crt'}\n"
        f"  tls_key_file: {pki / 'server.key'}\n"
        f"  tls_client_ca_file: {pki / 'ca.crt'}\n"
        f"  auth_token_file: {tokens}\n")


def credentials(pki: pathlib.Path, client: str = "client", ca: str = "ca"):
    return grpc.ssl_channel_credentials(
        root_certificates=(pki / f"{ca}.crt").read_bytes(),
        private_key=(pki / f"{client}.key").read_bytes(),
        certificate_chain=(pki / f"{client}.crt").read_bytes())


def inputs(rng):
    q = rng.standard_normal((1, 9, 2, 16), np.float32)
    k = rng.standard_normal((1, 13, 2, 16), np.float32)
    v = rng.standard_normal((1, 13, 2, 16), np.float32)
    return q, k, v


def refused(target, rng, **kwargs) -> grpc.StatusCode:
    with attnd.Client(target, retry=attnd.NO_RETRY, timeout=10, **kwargs) as c:
        with pytest.raises(attnd.AttendError) as caught:
            c.attend(*inputs(rng))
    return caught.value.code()


def test_mutual_tls_and_token_answer_correctly(secure_server, pki, rng):
    q, k, v = inputs(rng)
    with attnd.Client(secure_server.target, credentials=credentials(pki), token=TOKEN,
                      timeout=30) as c:
        out = c.attend(q, k, v)
        assert c.info().backend == "cpu"
    assert ref.max_error(out, ref.attention(q, k, v)[0]) <= ref.TOLERANCE["f32"]


def test_each_way_to_be_refused_and_the_server_serves_on(secure_server, pki, rng):
    target = secure_server.target
    # No token, a wrong token: authentication, on a good TLS channel.
    assert refused(target, rng, credentials=credentials(pki)) == grpc.StatusCode.UNAUTHENTICATED
    assert (refused(target, rng, credentials=credentials(pki), token="not-" + TOKEN)
            == grpc.StatusCode.UNAUTHENTICATED)
    # A client certificate from another CA, none at all, or plaintext: no channel.
    assert (refused(target, rng, credentials=credentials(pki, client="other-client"),
                    token=TOKEN) == grpc.StatusCode.UNAVAILABLE)
    no_cert = grpc.ssl_channel_credentials(root_certificates=(pki / "ca.crt").read_bytes())
    assert refused(target, rng, credentials=no_cert, token=TOKEN) == grpc.StatusCode.UNAVAILABLE
    assert refused(target, rng, token=TOKEN) == grpc.StatusCode.UNAVAILABLE
    # A server certificate the client does not trust.
    assert (refused(target, rng, credentials=credentials(pki, ca="other-ca"), token=TOKEN)
            == grpc.StatusCode.UNAVAILABLE)

    q, k, v = inputs(rng)
    with attnd.Client(target, credentials=credentials(pki), token=TOKEN, timeout=30) as c:
        out = c.attend(q, k, v)
    assert ref.max_error(out, ref.attention(q, k, v)[0]) <= ref.TOLERANCE["f32"]
