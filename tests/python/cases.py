"""Attention problems the round-trip tests share: odd sizes, every mask, GQA/MQA, both layouts,
bias of every rank and dtype. make_inputs draws fresh random inputs in a dtype."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import ml_dtypes
import numpy as np

DTYPES = {"f32": np.dtype(np.float32), "f16": np.dtype(np.float16),
          "bf16": np.dtype(ml_dtypes.bfloat16)}


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    b: int
    mq: int
    mk: int
    hq: int
    hkv: int
    d: int
    dv: int
    layout: str = "BMHK"
    # (rng, case) -> extra attend() options (bias, causal, kv_lengths, window, scale)
    options: Callable[[np.random.Generator, Case], dict] = lambda rng, c: {}


def _bool_mask(rng, c):
    mask = rng.random((c.mq, c.mk)) < 0.7  # [Mq, Mk], True = may attend
    mask[3] = False                        # a row that sees no key: out 0, lse -inf
    return {"bias": mask}


CASES = [
    Case("gqa_odd_sizes", 2, 37, 53, 4, 2, 24, 40),
    Case("causal_bottom_right_kv_lengths", 2, 37, 53, 4, 4, 16, 16,
         options=lambda rng, c: {"causal": "bottom_right", "kv_lengths": [53, 20]}),
    Case("causal_top_left_window_head_bias", 1, 61, 45, 6, 3, 59, 32,
         options=lambda rng, c: {"causal": "top_left", "window": (5, None),
                                 "bias": rng.standard_normal((1, c.hq, 1, c.mk), np.float32)}),
    Case("bhmk_mqa_full_f16_bias_scale", 2, 29, 31, 4, 1, 32, 24, layout="BHMK",
         options=lambda rng, c: {"scale": 0.3, "bias": rng.standard_normal(
             (c.b, c.hq, c.mq, c.mk)).astype(np.float16)}),
    Case("window_both_sides_head_dim_111", 1, 97, 97, 2, 2, 111, 17,
         options=lambda rng, c: {"window": (7, 3)}),
    Case("bool_mask_row_without_keys", 2, 33, 40, 2, 2, 8, 8, options=_bool_mask),
]


def make_inputs(case: Case, dtype: np.dtype, rng: np.random.Generator):
    """q, k, v in `dtype` and the case's options (fresh random values)."""
    def shape(m, h, d):
        return (case.b, m, h, d) if case.layout == "BMHK" else (case.b, h, m, d)
    q, k, v = (rng.standard_normal(shape(m, h, d)).astype(dtype)
               for m, h, d in ((case.mq, case.hq, case.d), (case.mk, case.hkv, case.d),
                               (case.mk, case.hkv, case.dv)))
    options = dict(case.options(rng, case))
    if case.layout != "BMHK":
        options["layout"] = case.layout
    return q, k, v, options


def out_shape(case: Case) -> tuple[int, ...]:
    return ((case.b, case.mq, case.hq, case.dv) if case.layout == "BMHK"
            else (case.b, case.hq, case.mq, case.dv))
