"""The float64 NumPy reference the Python tests hold attnd's answers to: the same mask policy as
kernels/mask.h, bias broadcast (NumPy rules) to [B, Hq, Mq, Mk], GQA head h -> kv head
h // (Hq / Hkv), rows that see no key give 0 and LSE -inf."""

from __future__ import annotations

import numpy as np

TOLERANCE = {"f32": 1e-4, "f16": 4e-3, "bf16": 3e-2}  # max abs error, as tests/common


def visible(q_len: int, kv_len: int, valid: int, causal: str | None,
            window: tuple[int | None, int | None] | None) -> np.ndarray:
    """[Mq, Mk] bool: which keys each query row of one batch element sees."""
    i = np.arange(q_len)[:, None]
    j = np.arange(kv_len)[None, :]
    aligned = i if causal == "top_left" else i + (valid - q_len)
    ok = np.broadcast_to(j < valid, (q_len, kv_len)).copy()
    if causal is not None:
        ok &= j <= aligned
    if window is not None:
        left, right = (-1 if w is None else w for w in window)
        if right >= 0:
            ok &= j <= aligned + right
        if left >= 0:
            ok &= j >= aligned - left
    return ok


def attention(q, k, v, *, bias=None, causal=None, kv_lengths=None, scale=None, window=None,
              layout="BMHK"):
    """out [B, Mq, Hq, Dv] (in `layout`) and lse [B, Hq, Mq], float64."""
    q, k, v = (np.asarray(x).astype(np.float64) for x in (q, k, v))
    if layout == "BHMK":
        q, k, v = (x.transpose(0, 2, 1, 3) for x in (q, k, v))
    b, q_len, hq, d = q.shape
    kv_len, hkv = k.shape[1], k.shape[2]
    k = np.repeat(k, hq // hkv, axis=2)  # [B, Mk, Hq, D]
    v = np.repeat(v, hq // hkv, axis=2)
    s = np.einsum("bqhd,bkhd->bhqk", q, k) * (1 / np.sqrt(d) if scale is None else scale)
    if bias is not None:
        bias = np.asarray(bias)
        if bias.dtype == np.bool_:
            bias = np.where(bias, 0.0, -np.inf)
        s = s + np.broadcast_to(bias.astype(np.float64), s.shape)
    lengths = [kv_len] * b if kv_lengths is None else list(kv_lengths)
    mask = np.stack([visible(q_len, kv_len, n, causal, window) for n in lengths])  # [B, Mq, Mk]
    s = np.where(mask[:, None], s, -np.inf)                                        # [B, Hq, Mq, Mk]
    m = s.max(axis=-1, keepdims=True)
    seen = np.isfinite(m)
    p = np.exp(s - np.where(seen, m, 0))
    total = p.sum(axis=-1, keepdims=True)
    seen &= total > 0
    lse = np.where(seen, m + np.log(np.where(seen, total, 1)), -np.inf)[..., 0]
    out = np.einsum("bhqk,bkhd->bqhd", p / np.where(seen, total, 1), v)
    return (out.transpose(0, 2, 1, 3) if layout == "BHMK" else out), lse


def max_error(got, want) -> float:
    """Max abs difference; equal infinities (LSE -inf) count as 0."""
    got = np.asarray(got).astype(np.float64)
    want = np.asarray(want).astype(np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    both_inf = np.isinf(got) & np.isinf(want) & (np.sign(got) == np.sign(want))
    with np.errstate(invalid="ignore"):  # inf - inf where both_inf; replaced by 0 below
        diff = np.where(both_inf, 0.0, np.abs(got - want))
    return float(np.nan_to_num(diff, nan=np.inf).max()) if diff.size else 0.0
