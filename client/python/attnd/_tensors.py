"""NumPy / PyTorch arrays <-> attnd.v1.Tensor (row-major, little-endian bytes + dtype + shape).

PyTorch is never imported here: a value is a torch.Tensor only if torch is already loaded (the
caller made one), so the client works, and stays light, without it.
"""

from __future__ import annotations

import sys
from typing import Any

import ml_dtypes
import numpy as np

from attnd.v1 import attention_pb2 as pb

BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
# NumPy dtype <-> wire dtype. Everything attnd computes in.
_WIRE_BY_NUMPY = {np.dtype(np.float32): pb.DTYPE_F32, np.dtype(np.float16): pb.DTYPE_F16,
                  BFLOAT16: pb.DTYPE_BF16}
_NUMPY_BY_WIRE = {wire: dtype for dtype, wire in _WIRE_BY_NUMPY.items()}
DTYPE_NAMES = {pb.DTYPE_F32: "f32", pb.DTYPE_F16: "f16", pb.DTYPE_BF16: "bf16"}


def is_torch(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def to_numpy(x: Any) -> np.ndarray:
    """A host NumPy array with x's values and dtype (bfloat16 as ml_dtypes.bfloat16); no copy when
    x already is a C-contiguous host array."""
    if is_torch(x):
        import torch
        t = x.detach().to("cpu").contiguous()
        if t.dtype == torch.bfloat16:  # NumPy has no bfloat16: reinterpret the 16-bit patterns
            return t.view(torch.int16).numpy().view(BFLOAT16)
        return t.numpy()
    return np.asarray(x)


def encode(x: Any, what: str, *, convert_to_f32: bool = False) -> pb.Tensor:
    """x as a wire Tensor. Only f32, f16 and bf16 travel; with convert_to_f32 other real dtypes
    (float64, ints) are converted to f32 first, else they are refused naming `what`."""
    arr = to_numpy(x)
    if arr.dtype not in _WIRE_BY_NUMPY:
        if not (convert_to_f32 and arr.dtype.kind in "fiu"):
            raise TypeError(f"{what} has dtype {arr.dtype}; attnd takes float32, float16 or "
                            "bfloat16 (ml_dtypes.bfloat16 for NumPy)")
        arr = arr.astype(np.float32)
    arr = np.ascontiguousarray(arr)
    if sys.byteorder != "little":
        arr = arr.byteswap()
    return pb.Tensor(dtype=_WIRE_BY_NUMPY[arr.dtype], shape=arr.shape, data=arr.tobytes())


def decode(t: pb.Tensor) -> np.ndarray:
    """A writable NumPy array (its own copy of the bytes) in t's dtype and shape."""
    if t.dtype not in _NUMPY_BY_WIRE:
        raise ValueError(f"the server sent a tensor of unknown dtype {t.dtype}")
    arr = np.frombuffer(t.data, dtype=_NUMPY_BY_WIRE[t.dtype]).reshape(tuple(t.shape)).copy()
    return arr.byteswap() if sys.byteorder != "little" else arr


def like(arr: np.ndarray, template: Any) -> Any:
    """arr as the kind of array `template` is: a torch.Tensor on template's device, else NumPy."""
    if not is_torch(template):
        return arr
    import torch
    if arr.dtype == BFLOAT16:
        t = torch.from_numpy(arr.view(np.int16)).view(torch.bfloat16)
    else:
        t = torch.from_numpy(arr)
    return t.to(template.device)
