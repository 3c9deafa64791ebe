"""Keyword options -> AttendRequest, and AttendResponse / ServerInfo -> plain Python values.

Shapes (layout "BMHK", the default; "BHMK" swaps the two middle axes of q, k, v and out):
  q [B, Mq, Hq, D]   k [B, Mk, Hkv, D]   v [B, Mk, Hkv, Dv]   Hq % Hkv == 0
  out [B, Mq, Hq, Dv] in q's dtype      lse [B, Hq, Mq] f32, -inf for a row that saw no key
  bias: broadcastable (NumPy rules) to [B, Hq, Mq, Mk]; bool means "may attend" (PyTorch's
        attn_mask) and travels as 0 / -inf
The server validates everything else and names the field, dimension and value it refuses.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np

from attnd import _tensors
from attnd.v1 import attention_pb2 as pb

_CAUSAL = {None: pb.CAUSAL_NONE, False: pb.CAUSAL_NONE, "none": pb.CAUSAL_NONE,
           "top_left": pb.CAUSAL_TOP_LEFT, "bottom_right": pb.CAUSAL_BOTTOM_RIGHT}
_LAYOUT = {"BMHK": pb.LAYOUT_BMHK, "BHMK": pb.LAYOUT_BHMK}
_VARIANT = {name[len("VARIANT_"):].lower(): number
            for name, number in pb.Variant.items()}  # "auto", "cpu_chunked", ...
VARIANT_NAMES = {number: name for name, number in _VARIANT.items()}


def _causal(value: Any) -> int:
    if value is True:
        raise ValueError("causal=True is ambiguous when Mq != Mk: pass 'top_left' (query i sees "
                         "keys j <= i, PyTorch's is_causal) or 'bottom_right' (j <= i + Mk - Mq, "
                         "FlashAttention 2.1+)")
    key = value.lower() if isinstance(value, str) else value
    if key not in _CAUSAL:
        raise ValueError(f"causal={value!r}: expected None, 'top_left' or 'bottom_right'")
    return _CAUSAL[key]


def _window(value: Any) -> pb.SlidingWindow | None:
    """(left, right): keys outside [i' - left, i' + right] are masked; None or < 0 unbounded."""
    if value is None:
        return None
    left, right = value
    return pb.SlidingWindow(left=-1 if left is None else int(left),
                            right=-1 if right is None else int(right))


def _bias(value: Any) -> pb.Tensor:
    arr = _tensors.to_numpy(value)
    if arr.dtype == np.bool_:  # True = may attend
        arr = np.where(arr, np.float32(0), np.float32(-np.inf))
    return _tensors.encode(arr, "bias", convert_to_f32=True)


def new_request_id() -> str:
    return uuid.uuid4().hex


def build_request(q: Any, k: Any, v: Any, *, bias: Any = None, causal: Any = None,
                  kv_lengths: Sequence[int] | Any = None, scale: float | None = None,
                  return_lse: bool = False, window: tuple[int | None, int | None] | None = None,
                  layout: str = "BMHK", variant: str = "auto", q_chunk: int = 0,
                  kv_chunk: int = 0, priority: int = 0,
                  request_id: str | None = None) -> pb.AttendRequest:
    if layout.upper() not in _LAYOUT:
        raise ValueError(f"layout={layout!r}: expected 'BMHK' or 'BHMK'")
    if variant.lower() not in _VARIANT:
        raise ValueError(f"variant={variant!r}: expected one of {sorted(_VARIANT)}")
    request = pb.AttendRequest(
        request_id=request_id or new_request_id(), q=_tensors.encode(q, "q"),
        k=_tensors.encode(k, "k"), v=_tensors.encode(v, "v"), layout=_LAYOUT[layout.upper()],
        causal=_causal(causal), return_lse=bool(return_lse), variant=_VARIANT[variant.lower()],
        q_chunk=int(q_chunk), kv_chunk=int(kv_chunk), priority=int(priority))
    if scale is not None:
        request.scale = float(scale)
    if (w := _window(window)) is not None:
        request.window.CopyFrom(w)
    if kv_lengths is not None:
        request.kv_lengths.extend(int(n) for n in _tensors.to_numpy(kv_lengths).reshape(-1))
    if bias is not None:
        request.bias.CopyFrom(_bias(bias))
    return request


@dataclasses.dataclass(frozen=True)
class Execution:
    """What ran on the server for one request."""
    variant: str
    q_chunk: int
    kv_chunk: int
    workspace_bytes: int
    device: str
    batch_size: int  # requests that ran together
    queue_seconds: float
    compute_seconds: float
    plan_reason: str


@dataclasses.dataclass(frozen=True)
class AttendResult:
    """An answer with everything the server said about it (attend(..., details=True))."""
    out: Any          # [B, Mq, Hq, Dv] (BMHK) in q's dtype, NumPy or torch as q was
    lse: Any | None   # [B, Hq, Mq] f32 when return_lse, else None
    execution: Execution
    request_id: str


def decode_response(response: pb.AttendResponse, template: Any) -> AttendResult:
    e = response.execution
    execution = Execution(VARIANT_NAMES.get(e.variant, str(e.variant)), e.q_chunk, e.kv_chunk,
                          e.workspace_bytes, e.device, e.batch_size, e.queue_seconds,
                          e.compute_seconds, e.plan_reason)
    lse = None
    if response.HasField("lse"):
        lse = _tensors.like(_tensors.decode(response.lse), template)
    return AttendResult(_tensors.like(_tensors.decode(response.out), template), lse, execution,
                        response.request_id)


def shape_answer(result: AttendResult, return_lse: bool, details: bool) -> Any:
    """What attend() returns: the result, or out, or (out, lse)."""
    if details:
        return result
    return (result.out, result.lse) if return_lse else result.out


@dataclasses.dataclass(frozen=True)
class DeviceInfo:
    name: str
    kind: str  # "cpu" or "cuda"
    memory_total_bytes: int
    memory_budget_bytes: int


@dataclasses.dataclass(frozen=True)
class ServerInfo:
    version: str
    backend: str           # "cpu" or "cuda"
    devices: list[DeviceInfo]
    dtypes: list[str]      # "f32", "f16", "bf16"
    variants: list[str]    # "cpu_chunked", ...
    max_head_dim: int
    limits: dict[str, int]  # max_message_bytes, max_tensor_elements, max_batch, ...
    build: str


def decode_info(info: pb.ServerInfo) -> ServerInfo:
    devices = [DeviceInfo(d.name, d.kind, d.memory_total_bytes, d.memory_budget_bytes)
               for d in info.devices]
    limits = {f.name: getattr(info.limits, f.name) for f in pb.Limits.DESCRIPTOR.fields}
    return ServerInfo(info.version, info.backend, devices,
                      [_tensors.DTYPE_NAMES.get(d, str(d)) for d in info.dtypes],
                      [VARIANT_NAMES.get(x, str(x)) for x in info.variants], info.max_head_dim,
                      limits, info.build)
