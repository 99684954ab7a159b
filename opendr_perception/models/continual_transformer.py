"""Continual Transformer Encoders (seed section 3.1, appendix 8.3).

A regular Transformer Encoder used online re-processes a sliding window of the last ``n`` tokens
at every step. The continual encoders here give the same outputs with far less work per step:

* one block (``num_layers=1``): *single-output* scaled-dot-product attention. Keys and values of
  the last ``n`` tokens are cached; a step computes the new token's projections and the attention
  of its query only (``2nd + 2d`` multiplications for the SDA instead of ``2n^2 d + 2nd``).
* two blocks: the first block is *retroactive*: it caches queries, keys, values, the softmax
  denominators ``d`` and the products ``AV`` of the window and updates all ``n`` outputs
  incrementally (seed Eq. 2-6: subtract the token that leaves, add the one that arrives); the
  last block is single-output over the refreshed outputs of the first. With more than two
  blocks, the middle ones are regular blocks over the ``n`` refreshed tokens (seed Fig. 4).

After ``n - 1`` warm-up steps, ``forward_step`` returns exactly what ``torch.nn.TransformerEncoder``
(post-norm, no mask, dropout off) returns for the newest token of the window of the last ``n``
tokens. Positional information must travel with the tokens: use
:class:`RecyclingPositionalEncoding` (seed Eq. 11) before the encoder.

:class:`ContinualTransformerEncoder` stores its parameters in ``torch.nn.TransformerEncoderLayer``
modules under the same names as ``torch.nn.TransformerEncoder`` (``layers.{i}.self_attn...``,
``norm``), so weights load in either direction; :meth:`ContinualTransformerEncoder.from_regular`
converts a trained encoder. The step path is vectorised over batch and heads (no Python loop over
tokens), unlike the ``continual`` library's reference implementation; :func:`library_encoder`
builds the latter (with the fix of :mod:`opendr_perception.core.continual_fixes` installed) for
comparison.

Limitations: the retroactive block uses ``exp`` without max-subtraction (incremental updates need
a fixed reference), so attention logits must stay below ~88 in float32 (~709 in float64);
``forward_step`` is inference only (no dropout).
"""
from __future__ import annotations

import math
from typing import Callable, Dict, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from opendr_perception.core import continual_fixes

continual_fixes.apply()

__all__ = [
    "RecyclingPositionalEncoding",
    "ContinualTransformerEncoder",
    "library_encoder",
    "sda_step_ops",
    "sda_step_flops",
    "encoder_step_macs",
]


# --------------------------------------------------------------------------------------------
# Recycling positional encoding
# --------------------------------------------------------------------------------------------


class RecyclingPositionalEncoding(nn.Module):
    """Recycling Positional Encoding (seed Eq. 11): ``x_t + p[tau_t]``, ``tau_t = (tau_{t-1} + 1) mod T``.

    The encoding follows each token through time, so a continual encoder sees the same inputs as
    a regular encoder whose window starts at position ``tau_0``. Train with a random ``tau_0`` per
    batch (the default in training mode) so the network learns shift-invariant positions;
    ``num_embeds = 2n - 1`` avoids the ambiguity of ``T = n`` (seed 3.7).

    Args:
        embed_dim: token dimension ``d``.
        num_embeds: number of encodings ``T``.
        learned: learned encodings (``nn.Parameter``, N(0, 0.02)) or fixed sinusoids.
    """

    def __init__(self, embed_dim: int, num_embeds: int, learned: bool = True):
        super().__init__()
        if embed_dim < 1 or num_embeds < 1:
            raise ValueError("embed_dim and num_embeds must be positive")
        self.embed_dim, self.num_embeds = int(embed_dim), int(num_embeds)
        if learned:
            self.pe = nn.Parameter(torch.randn(num_embeds, embed_dim) * 0.02)
        else:
            pos = torch.arange(num_embeds, dtype=torch.get_default_dtype())[:, None]
            freq = torch.exp(torch.arange(0, embed_dim, 2, dtype=pos.dtype) * (-math.log(10000.0) / embed_dim))
            pe = torch.zeros(num_embeds, embed_dim)
            pe[:, 0::2] = torch.sin(pos * freq)
            pe[:, 1::2] = torch.cos(pos * freq)[:, : embed_dim // 2]
            self.register_buffer("pe", pe)
        self._tau = 0

    def forward(self, x: Tensor, tau0: Optional[int] = None) -> Tensor:
        """Encode a window ``(B, n, d)`` whose first token has position ``tau0``.

        ``tau0=None``: random in training mode, 0 in eval mode.
        """
        if tau0 is None:
            tau0 = int(torch.randint(self.num_embeds, ())) if self.training else 0
        idx = (torch.arange(x.shape[1], device=x.device) + int(tau0)) % self.num_embeds
        return x + self.pe[idx].to(x.dtype)

    def forward_step(self, x: Tensor) -> Tensor:
        """Encode one token ``(B, d)`` with the current position and advance it."""
        y = x + self.pe[self._tau].to(x.dtype)
        self._tau = (self._tau + 1) % self.num_embeds
        return y

    def clean_state(self) -> None:
        self._tau = 0

    def get_state(self) -> int:
        return self._tau

    def set_state(self, tau: int) -> None:
        self._tau = int(tau) % self.num_embeds


# --------------------------------------------------------------------------------------------
# Continual Transformer Encoder
# --------------------------------------------------------------------------------------------


def _activation(activation: Union[str, Callable[[Tensor], Tensor]]) -> Callable[[Tensor], Tensor]:
    if isinstance(activation, str):
        try:
            return {"relu": F.relu, "gelu": F.gelu}[activation]
        except KeyError:
            raise ValueError(f"activation must be 'relu', 'gelu' or a callable, got {activation!r}") from None
    return activation


class ContinualTransformerEncoder(nn.Module):
    """Continual Transformer Encoder over windows of ``sequence_len`` tokens.

    Args:
        d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps: as
            ``torch.nn.TransformerEncoderLayer`` (post-norm).
        sequence_len: window length ``n`` (tokens the newest token attends to).
        num_layers: 1 (single-output block), 2 (retroactive + single-output) or more (regular
            blocks in between).
        norm: add a final LayerNorm (``torch.nn.TransformerEncoder(norm=...)``).

    ``forward(x)``: regular computation over a window ``(B, n, d)`` -> ``(B, n, d)``.
    ``forward_step(x)``: one token ``(B, d)`` -> the newest token's output ``(B, d)``, or ``None``
    during the first ``delay = n - 1`` steps. ``forward_steps(x)``: ``(B, T, d)`` -> ``(B, T', d)``.
    ``clean_state`` / ``get_state`` / ``set_state`` as the skeleton models (live state dict).
    """

    def __init__(self, d_model: int, nhead: int, sequence_len: int, num_layers: int = 1,
                 dim_feedforward: int = 2048, dropout: float = 0.0,
                 activation: Union[str, Callable[[Tensor], Tensor]] = "relu", layer_norm_eps: float = 1e-5,
                 norm: bool = False, device=None, dtype=None):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        if sequence_len < 1:
            raise ValueError(f"sequence_len must be >= 1, got {sequence_len}")
        if d_model % nhead:
            raise ValueError(f"d_model ({d_model}) must be divisible by nhead ({nhead})")
        act = _activation(activation)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout, act, layer_norm_eps,
                                       batch_first=True, norm_first=False, device=device, dtype=dtype)
            for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model, eps=layer_norm_eps, device=device, dtype=dtype) if norm else None
        self.d_model, self.nhead, self.sequence_len = int(d_model), int(nhead), int(sequence_len)
        self.num_layers = int(num_layers)
        self._state: Optional[dict] = None

    @classmethod
    def from_regular(cls, encoder: Union[nn.TransformerEncoder, nn.TransformerEncoderLayer],
                     sequence_len: int) -> "ContinualTransformerEncoder":
        """A continual encoder with the weights of a (post-norm) ``torch.nn`` encoder or layer."""
        layers = [encoder] if isinstance(encoder, nn.TransformerEncoderLayer) else list(encoder.layers)
        first = layers[0]
        if getattr(first, "norm_first", False):
            raise ValueError("only post-norm encoders (norm_first=False) are supported")
        attn = first.self_attn
        if not attn._qkv_same_embed_dim or attn.in_proj_bias is None:
            raise ValueError("the attention must use a joint in-projection with bias (the nn default)")
        norm = None if isinstance(encoder, nn.TransformerEncoderLayer) else encoder.norm
        w = first.linear1.weight
        new = cls(attn.embed_dim, attn.num_heads, sequence_len, num_layers=len(layers),
                  dim_feedforward=first.linear1.out_features, dropout=first.dropout.p,
                  activation=first.activation, layer_norm_eps=first.norm1.eps, norm=norm is not None,
                  device=w.device, dtype=w.dtype)
        for mine, theirs in zip(new.layers, layers):
            mine.load_state_dict(theirs.state_dict())
        if norm is not None:
            new.norm.load_state_dict(norm.state_dict())
        return new

    # -- regular ---------------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        """Regular encoder over tokens ``(B, n, d)``."""
        for layer in self.layers:
            x = layer(x)
        return self.norm(x) if self.norm is not None else x

    # -- state -----------------------------------------------------------------------------------
    @property
    def delay(self) -> int:
        return self.sequence_len - 1

    @property
    def receptive_field(self) -> int:
        return self.sequence_len

    stride = 1

    def clean_state(self) -> None:
        self._state = None

    def get_state(self) -> Optional[dict]:
        """The live state (tensors are updated in place by later steps; deep-copy to snapshot)."""
        return self._state

    def set_state(self, state: Optional[dict]) -> None:
        if state is not None and (not isinstance(state, dict) or state.get("kind") != self.num_layers):
            raise ValueError("not a state of a continual encoder with this number of layers")
        self._state = state

    # -- building blocks -------------------------------------------------------------------------
    def _heads(self, x: Tensor) -> Tensor:
        """``(..., d)`` -> ``(..., h, d/h)``."""
        return x.unflatten(-1, (self.nhead, self.d_model // self.nhead))

    def _qkv(self, layer: nn.TransformerEncoderLayer, x: Tensor):
        """``(..., d)`` -> query, key, value, each ``(..., h, d/h)``."""
        a = layer.self_attn
        qkv = F.linear(x, a.in_proj_weight, a.in_proj_bias)
        return qkv.unflatten(-1, (3, self.nhead, self.d_model // self.nhead)).unbind(-3)

    def _post_attention(self, layer: nn.TransformerEncoderLayer, x: Tensor, att: Tensor) -> Tensor:
        """Output projection, residual + norm1, feed-forward, residual + norm2; ``att (..., h, dh)``."""
        a = layer.self_attn
        y = layer.norm1(x + F.linear(att.flatten(-2), a.out_proj.weight, a.out_proj.bias))
        return layer.norm2(y + layer.linear2(layer.activation(layer.linear1(y))))

    def _single_output(self, layer, x_new: Tensor, keys: Tensor, values: Tensor,
                       q: Optional[Tensor] = None) -> Tensor:
        """Single-output SDA (Eq. 7) for the query of ``x_new (B, d)`` over ``keys/values (B, h, n, dh)``."""
        if q is None:
            a = layer.self_attn
            q = self._heads(F.linear(x_new, a.in_proj_weight[: self.d_model], a.in_proj_bias[: self.d_model]))
        att = F.scaled_dot_product_attention(q.unsqueeze(2), keys, values).squeeze(2)  # (B, h, dh)
        return self._post_attention(layer, x_new, att)

    # -- step ------------------------------------------------------------------------------------
    @torch.no_grad()
    def forward_step(self, x: Tensor) -> Optional[Tensor]:
        """One token ``(B, d)`` -> the newest token's encoder output ``(B, d)`` or ``None`` (no autograd)."""
        if x.dim() != 2 or x.shape[1] != self.d_model:
            raise ValueError(f"expected a token (B, {self.d_model}), got shape {tuple(x.shape)}")
        out = self._step_b1(x) if self.num_layers == 1 else self._step_multi(x)
        if out is not None and self.norm is not None:
            out = self.norm(out)
        return out

    def _new_state(self, x: Tensor, retroactive: bool) -> dict:
        B, n, h, dh = x.shape[0], self.sequence_len, self.nhead, self.d_model // self.nhead
        z = x.new_zeros
        st = {"kind": self.num_layers, "batch": B, "pos": 0, "count": 0,
              "K": z(B, h, n, dh), "V": z(B, h, n, dh)}
        if retroactive:
            st.update(Q=z(B, h, n, dh), D=z(B, h, n), AV=z(B, h, n, dh), X=z(B, n, self.d_model))
        return st

    def _state_for(self, x: Tensor, retroactive: bool) -> dict:
        st = self._state
        if st is None:
            st = self._state = self._new_state(x, retroactive)
        elif st["batch"] != x.shape[0]:
            raise ValueError(f"the state was built for batch {st['batch']}, got {x.shape[0]}; "
                             "call clean_state() or set_state() first")
        return st

    def _step_b1(self, x: Tensor) -> Optional[Tensor]:
        st = self._state_for(x, retroactive=False)
        layer = self.layers[0]
        q, k, v = self._qkv(layer, x)  # (B, h, dh)
        pos = st["pos"]
        st["K"][:, :, pos] = k
        st["V"][:, :, pos] = v
        st["pos"], st["count"] = (pos + 1) % self.sequence_len, st["count"] + 1
        if st["count"] < self.sequence_len:
            return None
        return self._single_output(layer, x, st["K"], st["V"], q)

    def _step_multi(self, x: Tensor) -> Optional[Tensor]:
        st = self._state_for(x, retroactive=True)
        n = self.sequence_len
        layer = self.layers[0]
        q, k, v = self._qkv(layer, x)  # (B, h, dh)
        scale = 1.0 / math.sqrt(q.shape[-1])
        Q, K, V, D, AV = st["Q"], st["K"], st["V"], st["D"], st["AV"]
        pos, count = st["pos"], st["count"]
        if count >= n:  # the token in slot `pos` leaves the window: Eq. (2), (4), subtraction
            e_old = torch.exp(torch.matmul(Q, K[:, :, pos].unsqueeze(-1)).squeeze(-1) * scale)  # (B, h, n)
            D.sub_(e_old)
            AV.sub_(e_old.unsqueeze(-1) * V[:, :, pos].unsqueeze(-2))
        # the new key/value for every cached query: Eq. (2), (4), addition
        e_new = torch.exp(torch.matmul(Q, k.unsqueeze(-1)).squeeze(-1) * scale)
        D.add_(e_new)
        AV.add_(e_new.unsqueeze(-1) * v.unsqueeze(-2))
        Q[:, :, pos], K[:, :, pos], V[:, :, pos] = q, k, v
        st["X"][:, pos] = x
        # the new query's row over the window: Eq. (3), (5)
        a = torch.exp(torch.matmul(K, q.unsqueeze(-1)).squeeze(-1) * scale)  # (B, h, n)
        if count + 1 < n:  # warm-up: slots after `pos` hold no token yet
            a[:, :, count + 1:] = 0
        D[:, :, pos] = a.sum(-1)
        AV[:, :, pos] = torch.matmul(a.unsqueeze(-2), V).squeeze(-2)
        st["pos"], st["count"] = (pos + 1) % n, count + 1
        if count + 1 < n:
            return None
        att = (AV / D.unsqueeze(-1)).transpose(1, 2)  # Eq. (6): (B, n, h, dh), slot order
        y = self._post_attention(layer, st["X"], att)  # all n refreshed first-block outputs
        for middle in self.layers[1:-1]:  # regular blocks (order-free: no mask, positions inside)
            q2, k2, v2 = (t.transpose(1, 2) for t in self._qkv(middle, y))  # (B, h, n, dh)
            y = self._post_attention(middle, y, F.scaled_dot_product_attention(q2, k2, v2).transpose(1, 2))
        last = self.layers[-1]
        a_last = last.self_attn
        kv = F.linear(y, a_last.in_proj_weight[self.d_model:], a_last.in_proj_bias[self.d_model:])
        keys, values = kv.unflatten(-1, (2, self.nhead, self.d_model // self.nhead)).unbind(-3)  # (B, n, h, dh)
        return self._single_output(last, y[:, pos], keys.transpose(1, 2), values.transpose(1, 2))

    def forward_steps(self, x: Tensor) -> Optional[Tensor]:
        """Step through ``(B, T, d)``; outputs stacked to ``(B, T', d)`` or ``None``."""
        outs = [y for y in (self.forward_step(x[:, t]) for t in range(x.shape[1])) if y is not None]
        return torch.stack(outs, dim=1) if outs else None


def library_encoder(encoder: nn.TransformerEncoder, sequence_len: int):
    """``continual.TransformerEncoder.build_from`` (the library's per-token reference code).

    Steps take ``(B, d)`` and return ``(B, d)`` like :class:`ContinualTransformerEncoder`. The
    ``RetroactiveUnity`` fix is installed on import of this module.
    """
    import warnings

    import continual as co

    continual_fixes.apply()
    with warnings.catch_warnings():  # the library calls nn.Module.state_dict with positional args
        warnings.simplefilter("ignore", FutureWarning)
        return co.TransformerEncoder.build_from(encoder, sequence_len=sequence_len)


# --------------------------------------------------------------------------------------------
# Operation counts (seed 3.1-3.4 and its appendix A.1, Tables 5-7)
# --------------------------------------------------------------------------------------------

_SDA_TABLES = {  # per equation: (multiplications, additions, exponentials), n tokens, dim d
    "regular": [
        lambda n, d: (n * n * d + n * d, n * d * (n - 1), 0),        # (1.1)
        lambda n, d: (n * n * d + n * d, n * n * (d - 1), n * n),    # (1.2)
        lambda n, d: (0, n * (n - 1), 0),                            # (1.3)
    ],
    "retroactive": [
        lambda n, d: (2 * (n - 1) * d, 2 * (n - 2) * d + 2 * (n - 1), 2 * (n - 1)),  # (2)
        lambda n, d: (n * d + n + d, n * d + (n - 1) + d, n),                       # (3)
        lambda n, d: (2 * (n - 1) * d, 2 * (n - 1) * d, 0),                         # (4)
        lambda n, d: (n * d, (n - 1) * d, 0),                                       # (5)
        lambda n, d: (n * d + n, 0, 0),                                             # (6)
    ],
    "single_output": [
        lambda n, d: (n * d + d, (n - 1) * d + n - 1, 0),  # (7.1)
        lambda n, d: (n * d + d, n * (d - 1), n),          # (7.2)
    ],
}


def sda_step_ops(kind: str, n: int, d: int) -> Dict[str, int]:
    """Per-step operations of one scaled-dot-product attention (seed appendix A.1, Tables 5-7).

    ``kind``: ``"regular"`` (the whole window), ``"retroactive"`` or ``"single_output"``.
    Returns ``{"mul", "add", "exp"}``; totals: regular ``2n^2 d + 2nd`` multiplications,
    retroactive ``7nd + 2n - 3d``, single-output ``2nd + 2d``.
    """
    try:
        rows = _SDA_TABLES[kind]
    except KeyError:
        raise ValueError(f"kind must be one of {sorted(_SDA_TABLES)}, got {kind!r}") from None
    mul = add = exp = 0
    for row in rows:
        m, a, e = row(n, d)
        mul, add, exp = mul + m, add + a, exp + e
    return {"mul": mul, "add": add, "exp": exp}


def sda_step_flops(kind: str, n: int, d: int) -> int:
    """Multiplications + additions + exponentials of :func:`sda_step_ops` (the seed's "FLOPs")."""
    return sum(sda_step_ops(kind, n, d).values())


def encoder_step_macs(n: int, d: int, dim_feedforward: int, num_layers: int = 1, continual: bool = True) -> int:
    """Matrix-product MACs per step of an encoder over a window of ``n`` tokens of size ``d``.

    Counts what the implementations execute as matrix products (see ``core.flops``): in/out
    projections, ``QK^T`` and ``AV`` products, the feed-forward layers; not biases, softmax,
    normalisation, the element-wise (outer-product) updates of the retroactive ``AV`` cache.

    * regular (``continual=False``), per block: ``3nd^2 + 2n^2 d + nd^2 + 2nd f``.
    * continual, one block: ``3d^2 + 2nd + d^2 + 2d f``.
    * continual, ``L >= 2`` blocks: retroactive first block ``3d^2 + 4nd + nd^2 + 2nd f``
      (``Q k_old``, ``Q k_new``, ``K q_new``, ``a V``; the output projection and feed-forward on all
      ``n`` refreshed tokens), ``L - 2`` regular blocks, and a single-output last block whose keys
      and values are recomputed for the ``n`` refreshed tokens: ``2nd^2 + d^2 + 2nd + d^2 + 2d f``.
    """
    f = dim_feedforward
    regular_block = 3 * n * d * d + 2 * n * n * d + n * d * d + 2 * n * d * f
    if not continual:
        return num_layers * regular_block
    if num_layers == 1:
        return 3 * d * d + 2 * n * d + d * d + 2 * d * f
    first = 3 * d * d + 4 * n * d + n * d * d + 2 * n * d * f
    last = 2 * n * d * d + d * d + 2 * n * d + d * d + 2 * d * f
    return first + (num_layers - 2) * regular_block + last
