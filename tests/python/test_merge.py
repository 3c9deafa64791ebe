"""merge_partial: exact against the float64 reference over key/value shards (rows a shard or
every shard saw no key of included), and two live attnd servers each given half of K/V merged
equal to one server given all of it."""

from __future__ import annotations

import numpy as np
import pytest

import attnd
import np_reference as ref
from cases import DTYPES


def sharded_problem(rng, layout, b=2, mq=13, mk=30, hq=4, hkv=2, d=8, dv=6):
    """q, k, v in `layout` and a bias [B, Hq, Mq, Mk] that hides keys 0..9 from row 1 (the first
    shard sees nothing there) and every key from row 2 (no shard sees anything)."""
    def shape(m, h, dim):
        return (b, m, h, dim) if layout == "BMHK" else (b, h, m, dim)
    q = rng.standard_normal(shape(mq, hq, d))
    k = rng.standard_normal(shape(mk, hkv, d))
    v = rng.standard_normal(shape(mk, hkv, dv))
    bias = rng.standard_normal((b, hq, mq, mk))
    bias[:, :, 1, :10] = -np.inf
    bias[:, :, 2, :] = -np.inf
    return q, k, v, bias


def kv_axis(layout):
    return 1 if layout == "BMHK" else 2


@pytest.mark.parametrize("layout", ["BMHK", "BHMK"])
def test_exact_over_three_shards(rng, layout):
    q, k, v, bias = sharded_problem(rng, layout)
    bounds = [(0, 10), (10, 11), (11, 30)]  # uneven, one of a single key
    outs, lses = [], []
    for lo, hi in bounds:
        sl = [slice(None)] * 4
        sl[kv_axis(layout)] = slice(lo, hi)
        o, lse_s = ref.attention(q, k[tuple(sl)], v[tuple(sl)], bias=bias[..., lo:hi],
                             layout=layout, scale=0.5)
        outs.append(o.astype(np.float32))
        lses.append(lse_s.astype(np.float32))
    assert np.isneginf(lses[0][:, :, 1]).all()
    with np.errstate(all="raise"):  # no overflow, no log(0), no 0/0
        out, lse = attnd.merge_partial(outs, lses, layout=layout)
    want_out, want_lse = ref.attention(q, k, v, bias=bias, layout=layout, scale=0.5)
    assert out.dtype == np.float32 and lse.dtype == np.float32
    assert ref.max_error(out, want_out) <= 1e-5 and ref.max_error(lse, want_lse) <= 1e-5
    assert np.isneginf(lse[:, :, 2]).all()
    rows = out[:, 2] if layout == "BMHK" else out[:, :, 2]
    assert (rows == 0).all()


def test_large_lse_does_not_overflow_and_dtype_is_kept():
    outs = [np.full((1, 1, 1, 2), x, DTYPES["bf16"]) for x in (1.0, 3.0)]
    lses = [np.array([[[1000.0]]], np.float32), np.array([[[1000.0 + np.log(3)]]], np.float32)]
    with np.errstate(all="raise"):
        out, lse = attnd.merge_partial(outs, lses)
    assert out.dtype == DTYPES["bf16"]
    np.testing.assert_allclose(out.astype(np.float32), 2.5, rtol=1e-2)  # (1·1 + 3·3) / 4
    np.testing.assert_allclose(lse, 1000 + np.log(4), rtol=1e-6)


def test_refusals():
    o = np.zeros((1, 3, 2, 4), np.float32)
    lse = np.zeros((1, 2, 3), np.float32)
    with pytest.raises(ValueError, match="as many outputs as lses"):
        attnd.merge_partial([o, o], [lse])
    with pytest.raises(ValueError, match=r"lses\[0\] has shape \(1, 3, 2\)"):
        attnd.merge_partial([o], [lse.transpose(0, 2, 1)])
    with pytest.raises(ValueError, match="layout"):
        attnd.merge_partial([o], [lse], layout="BM")


@pytest.mark.parametrize("dtype", ["f32", "bf16"])
def test_two_servers_each_half_of_kv(start_server, rng, dtype):
    one, two = start_server(), start_server()
    b, mq, mk, hq, hkv, d, dv = 2, 45, 70, 4, 2, 32, 48
    q = rng.standard_normal((b, mq, hq, d)).astype(DTYPES[dtype])
    k = rng.standard_normal((b, mk, hkv, d)).astype(DTYPES[dtype])
    v = rng.standard_normal((b, mk, hkv, dv)).astype(DTYPES[dtype])
    bias = rng.standard_normal((b, hq, mq, mk)).astype(np.float32)
    bias[:, :, 5, :35] = -np.inf   # row 5: the first half sees nothing
    kv_lengths = np.array([70, 50])  # padding: batch 1's keys 50.. are not keys
    half = mk // 2
    with attnd.Client(one.target) as c1, attnd.Client(two.target) as c2:
        whole, whole_lse = c1.attend(q, k, v, bias=bias, kv_lengths=kv_lengths,
                                     return_lse=True)
        # Each server gets its half of the keys, its slice of the bias, its own key counts.
        o1, l1 = c1.attend(q, k[:, :half], v[:, :half], bias=bias[..., :half],
                           kv_lengths=np.minimum(kv_lengths, half), return_lse=True)
        o2, l2 = c2.attend(q, k[:, half:], v[:, half:], bias=bias[..., half:],
                           kv_lengths=np.clip(kv_lengths - half, 0, None), return_lse=True)
    assert np.isneginf(l1[:, :, 5]).all()
    out, lse = attnd.merge_partial([o1, o2], [l1, l2])
    assert out.dtype == q.dtype
    # f32: the merge is as exact as the server; bf16: two roundings (each half, then the merge)
    # against one: within the dtype's tolerance.
    tolerance = {"f32": 1e-5, "bf16": ref.TOLERANCE["bf16"]}[dtype]
    assert ref.max_error(out, whole) <= tolerance
    assert ref.max_error(lse, whole_lse) <= 1e-5
    want, want_lse = ref.attention(q, k, v, bias=bias, kv_lengths=kv_lengths)
    assert ref.max_error(out, want) <= ref.TOLERANCE[dtype]
    assert ref.max_error(lse, want_lse) <= 1e-3
    for s in (one, two):
        assert s.metric("attnd_requests_total", method="Attend", code="OK") >= 1
