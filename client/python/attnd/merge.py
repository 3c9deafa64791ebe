"""merge_partial: exact attention over all keys from attention over disjoint key/value shards.

Shard s computed out_s = Σ_{j∈s} p_j v_j / Z_s and lse_s = log Z_s, where Z_s = Σ_{j∈s} e^{x_j}
(x_j the masked, scaled, biased scores of one query row). Over all shards Z = Σ_s Z_s, so

    lse = log Σ_s e^{lse_s}        out = Σ_s e^{lse_s - lse} · out_s

evaluated around m = max_s lse_s (every exponent <= 0: nothing overflows). A shard that saw no key
for a row has lse_s = -inf and weight 0; a row no shard saw comes out 0 with lse -inf, as attnd
answers such a row itself. Weights and sums are float32, as the server's accumulators; the output
goes back to the shards' dtype.

Splitting K/V this way is exact for no mask, key padding that each shard applies to its own keys,
and masks written as bias (slice the bias's last axis with the keys). Causal and window masks are
defined on key positions relative to Mk, so a shard of them needs them as bias.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from attnd import _tensors


def _check(outputs: Sequence[Any], lses: Sequence[Any], layout: str) -> None:
    if len(outputs) == 0 or len(outputs) != len(lses):
        raise ValueError(f"merge_partial needs as many outputs as lses, at least one; got "
                         f"{len(outputs)} outputs and {len(lses)} lses")
    if layout not in ("BMHK", "BHMK"):
        raise ValueError(f"layout={layout!r}: expected 'BMHK' or 'BHMK'")
    shape = tuple(outputs[0].shape)
    if len(shape) != 4:
        raise ValueError(f"outputs[0] has shape {shape}; expected rank 4 ({layout})")
    b, x, y, _ = shape
    want = (b, y, x) if layout == "BMHK" else (b, x, y)  # [B, Hq, Mq]
    for s, (o, lse_s) in enumerate(zip(outputs, lses, strict=True)):
        if tuple(o.shape) != shape:
            raise ValueError(f"outputs[{s}] has shape {tuple(o.shape)}, outputs[0] {shape}")
        if tuple(lse_s.shape) != want:
            raise ValueError(f"lses[{s}] has shape {tuple(lse_s.shape)}; outputs of shape {shape} "
                             f"in {layout} need [B, Hq, Mq] = {want}")


def merge_partial(outputs: Sequence[Any], lses: Sequence[Any], *,
                  layout: str = "BMHK") -> tuple[Any, Any]:
    """outputs: S arrays [B, Mq, Hq, Dv] (BMHK) or [B, Hq, Mq, Dv] (BHMK), one per shard, same
    dtype; lses: S arrays [B, Hq, Mq] (f32, natural log, -inf where the shard saw no key).
    Returns (out, lse) of the whole: out like outputs[0] (NumPy, or torch on its device), lse
    [B, Hq, Mq] f32."""
    _check(outputs, lses, layout)
    if _tensors.is_torch(outputs[0]):
        return _merge_torch(outputs, lses, layout)
    outs = [np.asarray(o) for o in outputs]
    lse_all = np.stack([np.asarray(x, dtype=np.float32) for x in lses])  # [S, B, Hq, Mq]
    m = lse_all.max(axis=0)                                               # [B, Hq, Mq]
    m = np.where(np.isneginf(m), np.float32(0), m)  # rows no shard saw: any finite centre
    w = np.exp(lse_all - m)                         # [S, B, Hq, Mq], in [0, 1], 0 for -inf
    total = w.sum(axis=0)                           # [B, Hq, Mq], >= 1 where any shard saw keys
    seen = total > 0
    lse = np.where(seen, m + np.log(np.where(seen, total, 1)), np.float32(-np.inf))
    coef = w / np.where(seen, total, 1)             # [S, B, Hq, Mq], 0 on unseen rows
    coef = coef.transpose(0, 1, 3, 2) if layout == "BMHK" else coef  # to the out's row order
    out = np.zeros(outs[0].shape, np.float32)
    for s, o in enumerate(outs):
        out += coef[s][..., None] * o.astype(np.float32)
    return out.astype(outs[0].dtype), lse.astype(np.float32)


def _merge_torch(outputs: Sequence[Any], lses: Sequence[Any], layout: str) -> tuple[Any, Any]:
    """The same as the NumPy path, in torch on the outputs' device."""
    import torch
    device = outputs[0].device
    lse_all = torch.stack([torch.as_tensor(x, device=device).float() for x in lses])
    m = lse_all.amax(dim=0)
    m = torch.where(torch.isneginf(m), torch.zeros_like(m), m)
    w = torch.exp(lse_all - m)
    total = w.sum(dim=0)
    seen = total > 0
    ones = torch.ones_like(total)
    lse = torch.where(seen, m + torch.log(torch.where(seen, total, ones)),
                      torch.full_like(total, float("-inf")))
    coef = w / torch.where(seen, total, ones)
    coef = coef.transpose(2, 3) if layout == "BMHK" else coef
    out = torch.zeros(outputs[0].shape, dtype=torch.float32, device=device)
    for s, o in enumerate(outputs):
        out += coef[s].unsqueeze(-1) * o.float()
    return out.to(outputs[0].dtype), lse
