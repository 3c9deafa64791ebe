"""PyTorch round trips through a live attnd: tensors in, tensors out (same dtype, same device),
matching the float64 reference; merge_partial on tensors. Skipped, with the reason, where PyTorch
is not installed (scripts/install-deps.sh installs it in CI and with ATTND_WITH_TORCH=1)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="PyTorch is not installed in this environment: "
    "ATTND_WITH_TORCH=1 scripts/install-deps.sh installs it (client/python/requirements-torch.txt)")

import attnd  # noqa: E402
import np_reference as ref  # noqa: E402
from cases import CASES, DTYPES, make_inputs, out_shape  # noqa: E402

TORCH_DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def to_torch(x):
    """A NumPy array as a torch tensor with the same values and dtype; anything else unchanged."""
    if not isinstance(x, np.ndarray):
        return x
    if x.dtype == DTYPES["bf16"]:  # torch reads no ml_dtypes array; bf16 -> f32 -> bf16 is exact
        return torch.from_numpy(x.astype(np.float32)).to(torch.bfloat16)
    return torch.from_numpy(x.copy())


def to_float64(t):
    return t.to(torch.float64).numpy()


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_matches_float64_reference(client, rng, case, dtype):
    q, k, v, options = make_inputs(case, DTYPES[dtype], rng)
    tq, tk, tv = (to_torch(x) for x in (q, k, v))
    assert tq.dtype == TORCH_DTYPES[dtype]
    t_options = {name: to_torch(value) for name, value in options.items()}
    if "kv_lengths" in t_options:
        t_options["kv_lengths"] = torch.tensor(t_options["kv_lengths"])
    out, lse = client.attend(tq, tk, tv, return_lse=True, **t_options)

    assert isinstance(out, torch.Tensor) and out.dtype == tq.dtype
    assert tuple(out.shape) == out_shape(case) and out.device == tq.device
    assert isinstance(lse, torch.Tensor) and lse.dtype == torch.float32
    want_out, want_lse = ref.attention(q, k, v, **options)
    assert ref.max_error(to_float64(out), want_out) <= ref.TOLERANCE[dtype]
    assert ref.max_error(to_float64(lse), want_lse) <= 1e-3


def test_non_contiguous_and_requires_grad(client):
    g = torch.Generator().manual_seed(7)
    q = torch.randn(1, 4, 9, 16, generator=g, requires_grad=True)   # [B, Hq, Mq, D]
    k = torch.randn(1, 2, 11, 16, generator=g)
    view = q.transpose(1, 2)                                         # [B, Mq, Hq, D], strided
    out = client.attend(view, k.transpose(1, 2), k.transpose(1, 2))
    want, _ = ref.attention(view.detach().numpy(), k.transpose(1, 2).numpy(),
                            k.transpose(1, 2).numpy())
    assert ref.max_error(out.numpy(), want) <= ref.TOLERANCE["f32"]
    assert not out.requires_grad


@pytest.mark.parametrize("layout", ["BMHK", "BHMK"])
def test_merge_partial_on_tensors(layout):
    g = torch.Generator().manual_seed(3)
    shape = (2, 5, 3, 4) if layout == "BMHK" else (2, 3, 5, 4)       # out of one shard
    outs = [torch.randn(*shape, generator=g).to(torch.bfloat16) for _ in range(3)]
    lses = [torch.randn(2, 3, 5, generator=g) for _ in range(3)]
    lses[1][0, 0, 0] = float("-inf")
    out, lse = attnd.merge_partial(outs, lses, layout=layout)
    want_out, want_lse = attnd.merge_partial(
        [o.float().numpy() for o in outs], [x.numpy() for x in lses], layout=layout)
    assert out.dtype == torch.bfloat16 and isinstance(lse, torch.Tensor)
    assert ref.max_error(to_float64(out), want_out) <= 1e-2
    assert ref.max_error(lse.numpy(), want_lse) <= 1e-6
