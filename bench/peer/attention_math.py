"""Exact attention for the peer server, with attnd's semantics (proto/attnd/v1/attention.proto).

Two backends, chosen once:
  torch  what a user would deploy: PyTorch's scaled_dot_product_attention on the GPU (or the
         CPU), one request at a time. SDPA takes the options it has (scale, top-left causal,
         additive bias, GQA); the rest (bottom-right causal with Mq != Mk, sliding window,
         kv_lengths, LSE) go through the same math written out in float32.
  numpy  a CPU fallback for machines without PyTorch (tests only: slow, float32).

A row that sees no key gives zeros and an LSE of -inf, as attnd does.
"""

import math

import numpy as np

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # the numpy fallback
    torch = None

# attnd.v1.DType values (fixed by the proto).
DTYPE_F32, DTYPE_F16, DTYPE_BF16 = 1, 2, 3
ELEMENT_BYTES = {DTYPE_F32: 4, DTYPE_F16: 2, DTYPE_BF16: 2}
CAUSAL_NONE, CAUSAL_TOP_LEFT, CAUSAL_BOTTOM_RIGHT = 0, 1, 2
LAYOUT_BMHK, LAYOUT_BHMK = 0, 1


class BadRequest(ValueError):
    """The request cannot be computed (answered INVALID_ARGUMENT)."""


class Problem:
    """The request's dimensions and options, checked against its tensors' bytes."""

    def __init__(self, req):
        for name in ("q", "k", "v"):
            t = getattr(req, name)
            if len(t.shape) != 4:
                raise BadRequest(f"{name}.shape has rank {len(t.shape)}, want 4")
            if min(t.shape) < 1:
                raise BadRequest(f"{name}.shape {list(t.shape)} has a dimension below 1")
            if t.dtype not in ELEMENT_BYTES:
                raise BadRequest(f"{name}.dtype = {t.dtype} is not f32, f16 or bf16")
            n = math.prod(t.shape) * ELEMENT_BYTES[t.dtype]
            if len(t.data) != n:
                raise BadRequest(f"{name}.data has {len(t.data)} bytes, want {n}")
        if not req.q.dtype == req.k.dtype == req.v.dtype:
            raise BadRequest("q, k and v must share a dtype")
        self.dtype = req.q.dtype
        self.bhmk = req.layout == LAYOUT_BHMK
        seq, heads = (2, 1) if self.bhmk else (1, 2)
        self.batch, self.q_len, self.q_heads, self.head_dim = (
            req.q.shape[0], req.q.shape[seq], req.q.shape[heads], req.q.shape[3])
        self.kv_len, self.kv_heads = req.k.shape[seq], req.k.shape[heads]
        self.v_head_dim = req.v.shape[3]
        if self.kv_heads == 0 or self.q_heads % self.kv_heads != 0:
            raise BadRequest(f"q heads {self.q_heads} is not a multiple of k heads {self.kv_heads}")
        self.scale = req.scale if req.HasField("scale") else 1.0 / math.sqrt(self.head_dim)
        self.causal = req.causal
        self.window = (req.window.left, req.window.right) if req.HasField("window") else None
        self.kv_lengths = list(req.kv_lengths) or None
        if self.kv_lengths is not None and len(self.kv_lengths) != self.batch:
            raise BadRequest(f"kv_lengths has {len(self.kv_lengths)} values, want B = {self.batch}")
        self.has_bias = req.HasField("bias")
        self.return_lse = req.return_lse

    @property
    def out_shape(self):  # in the request's layout
        if self.bhmk:
            return [self.batch, self.q_heads, self.q_len, self.v_head_dim]
        return [self.batch, self.q_len, self.q_heads, self.v_head_dim]

    @property
    def lse_shape(self):
        return [self.batch, self.q_heads, self.q_len]

    @property
    def needs_mask(self):
        bottom_right = self.causal == CAUSAL_BOTTOM_RIGHT and self.q_len != self.kv_len
        return bottom_right or self.window is not None or self.kv_lengths is not None

    def visible(self, arange, lengths_of):
        """Boolean [B, 1, Mq, Mk]: which keys each query sees. arange(n) and lengths_of(list)
        make index arrays of the backend (numpy or torch)."""
        i = arange(self.q_len).reshape(1, 1, -1, 1)
        j = arange(self.kv_len).reshape(1, 1, 1, -1)
        if self.kv_lengths is not None:
            lengths = [min(max(n, 0), self.kv_len) for n in self.kv_lengths]
        else:
            lengths = [self.kv_len] * self.batch
        mk = lengths_of(lengths).reshape(-1, 1, 1, 1)
        seen = j < mk
        aligned = i if self.causal == CAUSAL_TOP_LEFT else i + mk - self.q_len
        if self.causal != CAUSAL_NONE:
            seen = seen & (j <= aligned)
        if self.window is not None:
            left, right = self.window
            if left >= 0:
                seen = seen & (j >= aligned - left)
            if right >= 0:
                seen = seen & (j <= aligned + right)
        return seen


# --- numpy ------------------------------------------------------------------------------------

def _np_from_bytes(data, dtype, shape):
    if dtype == DTYPE_F32:
        return np.frombuffer(data, dtype="<f4").reshape(shape)
    if dtype == DTYPE_F16:
        return np.frombuffer(data, dtype="<f2").astype(np.float32).reshape(shape)
    bits = np.frombuffer(data, dtype="<u2").astype(np.uint32) << 16
    return bits.view(np.float32).reshape(shape)


def _np_to_bytes(x, dtype):
    x = np.ascontiguousarray(x, dtype=np.float32)
    if dtype == DTYPE_F32:
        return x.astype("<f4").tobytes()
    if dtype == DTYPE_F16:
        return x.astype("<f2").tobytes()
    u = x.view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16  # round to nearest even
    return u.astype("<u2").tobytes()


class NumpyBackend:
    name = "numpy"
    device = "cpu"

    def attend(self, req, p):
        def load(t):
            x = _np_from_bytes(t.data, t.dtype, list(t.shape))
            return x if p.bhmk else x.transpose(0, 2, 1, 3)  # → [B, H, M, D]
        q, k, v = load(req.q), load(req.k), load(req.v)
        group = p.q_heads // p.kv_heads
        k = np.repeat(k, group, axis=1)
        v = np.repeat(v, group, axis=1)
        s = (q @ k.transpose(0, 1, 3, 2)) * p.scale  # [B, Hq, Mq, Mk]
        if p.has_bias:
            s = s + _np_from_bytes(req.bias.data, req.bias.dtype, list(req.bias.shape))
        seen = np.broadcast_to(
            p.visible(np.arange, lambda values: np.asarray(values, dtype=np.int64)), s.shape)
        s = np.where(seen, s, -np.inf)
        m = s.max(axis=-1, keepdims=True)
        any_key = np.isfinite(m)
        m = np.where(any_key, m, 0)
        e = np.exp(s - m)
        total = e.sum(axis=-1, keepdims=True)
        out = (e / np.where(any_key, total, 1)) @ v
        out = np.where(any_key, out, 0)
        lse = np.where(any_key[..., 0], (m + np.log(np.where(any_key, total, 1)))[..., 0], -np.inf)
        if not p.bhmk:
            out = out.transpose(0, 2, 1, 3)
        lse_bytes = lse.astype("<f4").tobytes() if p.return_lse else None
        return _np_to_bytes(out, p.dtype), lse_bytes


# --- torch ------------------------------------------------------------------------------------

class TorchBackend:
    name = "torch"

    def __init__(self, device):
        self.device = device
        self.dtypes = {DTYPE_F32: torch.float32, DTYPE_F16: torch.float16,
                       DTYPE_BF16: torch.bfloat16}

    def tensor(self, t, bhmk):
        # frombuffer reads the message's bytes in place (it warns that they are read-only: they
        # are never written).
        x = torch.frombuffer(t.data, dtype=self.dtypes[t.dtype]).view(*t.shape).to(self.device)
        return x if bhmk else x.transpose(1, 2)  # → [B, H, M, D]

    def attend(self, req, p):
        with torch.inference_mode():
            q, k, v = (self.tensor(t, p.bhmk) for t in (req.q, req.k, req.v))
            bias = None
            if p.has_bias:
                bias = self.tensor(req.bias, True)  # as given: broadcast like numpy
            lse = None
            # SDPA where it has the options; the written-out math for the rest.
            if p.needs_mask or p.return_lse or (bias is not None and p.causal != CAUSAL_NONE):
                out, lse = self.explicit(q, k, v, bias, p)
            else:
                gqa = {"enable_gqa": True} if p.q_heads != p.kv_heads else {}
                out = F.scaled_dot_product_attention(
                    q, k, v, attn_mask=None if bias is None else bias.to(q.dtype),
                    is_causal=p.causal != CAUSAL_NONE, scale=p.scale, **gqa)
            if not p.bhmk:
                out = out.transpose(1, 2)
            out_bytes = out.contiguous().cpu().view(torch.uint8).numpy().tobytes()
            lse_bytes = None
            if p.return_lse:
                lse_bytes = lse.to(torch.float32).contiguous().cpu().numpy().tobytes()
            return out_bytes, lse_bytes

    def explicit(self, q, k, v, bias, p):
        group = p.q_heads // p.kv_heads
        k = k.repeat_interleave(group, dim=1).float()
        v = v.repeat_interleave(group, dim=1).float()
        s = (q.float() @ k.transpose(-1, -2)) * p.scale
        if bias is not None:
            s = s + bias.float()
        seen = p.visible(lambda n: torch.arange(n, device=self.device),
                         lambda values: torch.tensor(values, device=self.device)).expand_as(s)
        s = s.masked_fill(~seen, float("-inf"))
        lse = torch.logsumexp(s, dim=-1)  # -inf for a row with no key
        w = torch.exp(s - lse.unsqueeze(-1)).nan_to_num(0.0)
        out = (w @ v).to(q.dtype)
        return out, lse


def make_backend(want="auto"):
    """torch on CUDA when there is one, else torch on the CPU, else numpy ('auto'); or as named:
    'cuda', 'torch-cpu', 'numpy'."""
    if want == "numpy" or (want == "auto" and torch is None):
        return NumpyBackend()
    if torch is None:
        raise RuntimeError(f"--backend {want} needs PyTorch, which is not installed")
    if want == "cuda" or (want == "auto" and torch.cuda.is_available()):
        return TorchBackend(torch.device("cuda"))
    return TorchBackend(torch.device("cpu"))
