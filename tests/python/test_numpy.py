"""NumPy round trips through a live attnd: every dtype and case against the float64 reference,
the answer's forms, server info, and what the client or the server refuses."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

import attnd
import np_reference as ref
from cases import CASES, DTYPES, make_inputs, out_shape


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_matches_float64_reference(client, rng, case, dtype):
    q, k, v, options = make_inputs(case, DTYPES[dtype], rng)
    out, lse = client.attend(q, k, v, return_lse=True, **options)

    assert isinstance(out, np.ndarray) and out.dtype == q.dtype and out.shape == out_shape(case)
    assert lse.dtype == np.float32 and lse.shape == (case.b, case.hq, case.mq)
    assert out.flags.writeable
    want_out, want_lse = ref.attention(q, k, v, **options)
    assert ref.max_error(out, want_out) <= ref.TOLERANCE[dtype]
    assert ref.max_error(lse, want_lse) <= 1e-3
    assert np.array_equal(np.isneginf(lse), np.isneginf(want_lse))


def test_answer_forms(client, rng):
    q = rng.standard_normal((1, 5, 2, 8), np.float32)
    k = rng.standard_normal((1, 7, 2, 8), np.float32)
    out = client.attend(q, k, k)
    assert isinstance(out, np.ndarray) and out.shape == (1, 5, 2, 8)

    result = client.attend(q, k, k, details=True, request_id="forms-1", variant="reference")
    assert isinstance(result, attnd.AttendResult)
    assert result.request_id == "forms-1" and result.lse is None
    assert result.execution.variant == "reference" and result.execution.device
    assert ref.max_error(result.out, out) <= 1e-5

    chunked = client.attend(q, k, k, details=True, variant="cpu_chunked", q_chunk=16,
                            kv_chunk=16, priority=1)
    assert chunked.execution.variant == "cpu_chunked"


def test_message_over_grpc_default_4mib(client, rng):
    # out [1, 2048, 8, 80] f32 is 5.2 MB, over gRPC's default 4 MiB receive limit.
    q = rng.standard_normal((1, 2048, 8, 80), np.float32)
    k = rng.standard_normal((1, 16, 8, 80), np.float32)
    out = client.attend(q, k, k)
    assert ref.max_error(out, ref.attention(q, k, k)[0]) <= ref.TOLERANCE["f32"]


def test_info(client):
    info = client.info()
    assert info.backend == "cpu" and info.version
    assert set(info.dtypes) == {"f32", "f16", "bf16"}
    assert "cpu_chunked" in info.variants
    assert info.devices and info.devices[0].kind == "cpu"
    assert info.limits["max_head_dim"] > 0 and info.limits["max_queue_requests"] > 0


def test_server_refusal_names_the_field_and_is_not_retried(client, rng):
    q = rng.standard_normal((1, 4, 8, 16), np.float32)
    k = rng.standard_normal((1, 4, 3, 16), np.float32)
    with pytest.raises(attnd.AttendError) as e:
        client.attend(q, k, k)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Hkv" in e.value.details() and "3" in e.value.details()
    assert e.value.attempts == 1
    assert isinstance(e.value, grpc.RpcError)


def test_client_refusals(client):
    q = np.zeros((1, 2, 1, 4), np.float64)
    with pytest.raises(TypeError, match="q has dtype float64"):
        client.attend(q, q, q)
    f = q.astype(np.float32)
    with pytest.raises(ValueError, match="ambiguous"):
        client.attend(f, f, f, causal=True)
    with pytest.raises(ValueError, match="layout"):
        client.attend(f, f, f, layout="HMBK")
    with pytest.raises(ValueError, match="variant"):
        client.attend(f, f, f, variant="flash")
