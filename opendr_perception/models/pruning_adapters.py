"""Structured Pruning Adapters (SPA): SPLoRA and SPLoPA layers, channel pruning and fusion.

ROS-free core of the seed's section 3.4 / appendix 8.5 ("Structured Pruning Adapters").

Layers
------
* :class:`SPLoRALinear` / :class:`SPLoRAConv2d` (channel-structured, Eq. 4 of the seed)::

      W_t = (W_s + W_down W_up) ⊙ (m_row m_col^T)

  ``W_s`` (and the source bias) are frozen, ``W_down`` (n x r) and ``W_up`` (r x m) are learned;
  ``W_up ~ U(±init_range)`` (1e-4 by default) so the adapted layer starts (almost) equal to the
  source. For a convolution ``m = in_channels * kh * kw`` and ``m_col`` is the input-channel mask
  repeated over the kernel. The bias is masked by ``m_row``. With ``rank=0`` and
  ``train_source=True`` the same layer is a plain masked layer: the fine-pruning baseline
  (``kind="masked"`` in :func:`add_adapters`).
* :class:`SPLoPALinear` (block-structured, Eq. 6)::

      W_t = W_s ⊙ (M_b ⊗ J) + Σ_i (M_b ⊙ B_i) ⊗ p_i q_i^T

  with ``p x q`` blocks (32 x 32 by default), ``R`` prototypes of rank ``r`` (per layer here; the
  seed also allows sharing them across layers) and ``B ~ U(±1e-4)``. Block pruning by magnitude:
  :func:`prune_blocks`.

``fuse()`` returns a plain ``nn.Linear`` / ``nn.Conv2d`` whose weight is the adapted, masked weight;
channel-structured layers drop pruned output rows and input columns (a smaller layer), SPLoPA keeps
its shape (pruned blocks are zeros).

Supported model family for channel pruning
------------------------------------------
An ``nn.Sequential`` of ``Linear``, ``Conv2d`` (``groups=1``), ``BatchNorm1d/2d``, ``ReLU``,
``Flatten`` and the channel-preserving ``MaxPool2d``, ``AvgPool2d``, ``Dropout``, ``Identity``;
convolutions come before the (single) ``Flatten`` and linear layers after it. No residual
connections. The output channels of every weight layer but the last (the head) are prunable; a
channel's mask also removes the matching BatchNorm channel and the next weight layer's input
column(s) (after ``Flatten``, the ``H*W`` columns of that channel). :func:`channel_groups` derives
these couplings and raises ``ValueError`` for anything else.

Pruning: :func:`channel_scores` ranks channels by ``"weight"`` (L2 norm), ``"gradient"`` (Σ|g|) or
``"taylor"`` (Σ|w·g|), taken over the adapted weight ``W_t`` of the producing rows *and* the
consuming columns, normalised by the layer's mean over its live channels, then ranked globally.
:func:`prune_step` removes the lowest-ranked live channels (a fraction of the remaining ones per
step, at least one channel kept per layer) until a weight density is reached;
:func:`fuse_adapters` returns the fused, physically smaller ``nn.Sequential``;
:func:`describe_sequential` / :func:`build_sequential` turn it into JSON and back.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Iterable

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "SPLoRALinear", "SPLoRAConv2d", "SPLoPALinear", "add_adapters", "fuse_adapters",
    "channel_groups", "channel_scores", "prune_step", "apply_channel_masks", "weight_density",
    "learned_parameter_count", "prune_blocks", "describe_sequential", "build_sequential",
    "ChannelGroup", "CRITERIA",
]

CRITERIA = ("weight", "gradient", "taylor")
_PASSTHROUGH = (nn.ReLU, nn.MaxPool2d, nn.AvgPool2d, nn.Dropout, nn.Identity)


# --------------------------------------------------------------------------------------------
# channel-structured adapters
# --------------------------------------------------------------------------------------------
class _SPLoRABase(nn.Module):
    """Shared logic; ``weight`` has shape ``(out, in, *kernel)``."""

    def _init_spa(self, weight: torch.Tensor, bias: torch.Tensor | None, rank: int,
                  init_range: float, train_source: bool):
        if rank < 0:
            raise ValueError(f"rank must be >= 0, got {rank}")
        self.rank = int(rank)
        self.train_source = bool(train_source)
        self.weight = nn.Parameter(weight.detach().clone(), requires_grad=self.train_source)
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(),
                                                           requires_grad=self.train_source)
        n, m = weight.shape[0], weight[0].numel()
        self.register_buffer("row_mask", torch.ones(n, dtype=weight.dtype, device=weight.device))
        self.register_buffer("col_mask", torch.ones(weight.shape[1], dtype=weight.dtype,
                                                    device=weight.device))
        if self.rank > 0:
            down = torch.empty(n, self.rank, dtype=weight.dtype, device=weight.device)
            nn.init.kaiming_uniform_(down, a=math.sqrt(5))
            up = torch.empty(self.rank, m, dtype=weight.dtype, device=weight.device)
            nn.init.uniform_(up, -init_range, init_range)
            self.W_down = nn.Parameter(down)
            self.W_up = nn.Parameter(up)
        else:
            self.W_down = self.W_up = None
        self._capture = False
        self.captured_weight = None

    @property
    def kernel_numel(self) -> int:
        return self.weight[0, 0].numel()

    def mask(self) -> torch.Tensor:
        """``m_row m_col^T`` expanded to the weight shape."""
        shape = (-1,) + (1,) * (self.weight.dim() - 1)
        col = self.col_mask.view((1, -1) + (1,) * (self.weight.dim() - 2))
        return self.row_mask.view(shape) * col

    def adapted_weight(self) -> torch.Tensor:
        """``W_t = (W_s + W_down W_up) ⊙ (m_row m_col^T)``."""
        w = self.weight
        if self.rank > 0:
            w = w + (self.W_down @ self.W_up).view_as(self.weight)
        return w * self.mask()

    def adapted_bias(self):
        return None if self.bias is None else self.bias * self.row_mask

    def _weight_for_forward(self) -> torch.Tensor:
        w = self.adapted_weight()
        if self._capture and w.requires_grad:
            w.retain_grad()
            self.captured_weight = w
        return w

    def kept(self):
        return (torch.nonzero(self.row_mask, as_tuple=True)[0],
                torch.nonzero(self.col_mask, as_tuple=True)[0])

    def learned_parameters(self) -> int:
        """Parameters stored for the task after pruning (kept rows/columns only)."""
        rows, cols = (int(self.row_mask.sum()), int(self.col_mask.sum()))
        k = self.kernel_numel
        count = 0
        if self.train_source:
            count += rows * cols * k + (rows if self.bias is not None else 0)
        count += self.rank * (rows + cols * k)
        return count

    def _fused_tensors(self, structured: bool):
        with torch.no_grad():
            w = self.adapted_weight().detach().clone()
            b = self.adapted_bias()
            b = None if b is None else b.detach().clone()
            if structured:
                rows, cols = self.kept()
                w = w[rows][:, cols]
                b = None if b is None else b[rows]
        return w.contiguous(), b


class SPLoRALinear(_SPLoRABase):
    """Structured Pruning Low-rank Adapter around a frozen ``nn.Linear``."""

    def __init__(self, source: nn.Linear, rank: int = 8, init_range: float = 1e-4,
                 train_source: bool = False):
        super().__init__()
        self.in_features, self.out_features = source.in_features, source.out_features
        self._init_spa(source.weight, source.bias, rank, init_range, train_source)

    def forward(self, x):
        return F.linear(x, self._weight_for_forward(), self.adapted_bias())

    def fuse(self, structured: bool = True) -> nn.Linear:
        w, b = self._fused_tensors(structured)
        layer = nn.Linear(w.shape[1], w.shape[0], bias=b is not None, device=w.device, dtype=w.dtype)
        with torch.no_grad():
            layer.weight.copy_(w)
            if b is not None:
                layer.bias.copy_(b)
        return layer

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, rank={self.rank}, train_source={self.train_source}"


class SPLoRAConv2d(_SPLoRABase):
    """Structured Pruning Low-rank Adapter around a frozen ``nn.Conv2d`` (``groups=1``)."""

    def __init__(self, source: nn.Conv2d, rank: int = 8, init_range: float = 1e-4,
                 train_source: bool = False):
        super().__init__()
        if source.groups != 1:
            raise ValueError("SPLoRAConv2d supports groups=1 only")
        if source.padding_mode != "zeros":
            raise ValueError("SPLoRAConv2d supports padding_mode='zeros' only")
        self.in_channels, self.out_channels = source.in_channels, source.out_channels
        self.kernel_size, self.stride = source.kernel_size, source.stride
        self.padding, self.dilation = source.padding, source.dilation
        self._init_spa(source.weight, source.bias, rank, init_range, train_source)

    def forward(self, x):
        return F.conv2d(x, self._weight_for_forward(), self.adapted_bias(), self.stride,
                        self.padding, self.dilation)

    def fuse(self, structured: bool = True) -> nn.Conv2d:
        w, b = self._fused_tensors(structured)
        layer = nn.Conv2d(w.shape[1], w.shape[0], self.kernel_size, self.stride, self.padding,
                          self.dilation, bias=b is not None, device=w.device, dtype=w.dtype)
        with torch.no_grad():
            layer.weight.copy_(w)
            if b is not None:
                layer.bias.copy_(b)
        return layer

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, rank={self.rank}, "
                f"train_source={self.train_source}")


# --------------------------------------------------------------------------------------------
# block-structured adapter
# --------------------------------------------------------------------------------------------
class SPLoPALinear(nn.Module):
    """Structured Pruning Low-rank PHM Adapter around a frozen ``nn.Linear`` (block pruning).

    ``W_t = W_s ⊙ (M_b ⊗ J) + Σ_i (M_b ⊙ B_i) ⊗ p_i q_i^T`` with ``block=(p, q)``,
    ``prototypes=R`` and prototype ``rank=r``. Sizes that are not multiples of the block are
    handled by padding the block grid and cropping the result.
    """

    def __init__(self, source: nn.Linear, block=(32, 32), prototypes: int = 64, rank: int = 2,
                 init_range: float = 1e-4):
        super().__init__()
        p, q = (block, block) if isinstance(block, int) else tuple(block)
        self.block = (int(p), int(q))
        self.in_features, self.out_features = source.in_features, source.out_features
        n, m = source.out_features, source.in_features
        self.grid = (math.ceil(n / p), math.ceil(m / q))
        dt, dev = source.weight.dtype, source.weight.device
        self.weight = nn.Parameter(source.weight.detach().clone(), requires_grad=False)
        self.bias = None if source.bias is None else nn.Parameter(source.bias.detach().clone(),
                                                                  requires_grad=False)
        self.register_buffer("block_mask", torch.ones(self.grid, dtype=dt, device=dev))
        self.prototypes, self.rank = int(prototypes), int(rank)
        self.p = nn.Parameter(torch.randn(self.prototypes, p, self.rank, dtype=dt, device=dev) / math.sqrt(p))
        self.q = nn.Parameter(torch.randn(self.prototypes, q, self.rank, dtype=dt, device=dev) / math.sqrt(q))
        self.B = nn.Parameter(torch.empty(self.prototypes, *self.grid, dtype=dt, device=dev).uniform_(
            -init_range, init_range))

    def element_mask(self) -> torch.Tensor:
        """``M_b ⊗ J`` cropped to the weight shape."""
        p, q = self.block
        full = torch.kron(self.block_mask, torch.ones(p, q, dtype=self.block_mask.dtype,
                                                      device=self.block_mask.device))
        return full[:self.out_features, :self.in_features]

    def adapted_weight(self) -> torch.Tensor:
        p, q = self.block
        protos = self.p @ self.q.transpose(1, 2)                      # (R, p, q)
        coeff = self.B * self.block_mask                               # (R, n/p, m/q)
        # Σ_i coeff_i ⊗ P_i: element (a*p+i, b*q+j) = Σ_r coeff[r, a, b] P[r, i, j]
        delta = torch.einsum("rab,rij->aibj", coeff, protos).reshape(self.grid[0] * p, self.grid[1] * q)
        return self.weight * self.element_mask() + delta[:self.out_features, :self.in_features]

    def forward(self, x):
        return F.linear(x, self.adapted_weight(), self.bias)

    def learned_parameters(self) -> int:
        p, q = self.block
        return self.prototypes * (p + q) * self.rank + self.prototypes * int(self.block_mask.sum())

    def fuse(self) -> nn.Linear:
        layer = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None,
                          device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            layer.weight.copy_(self.adapted_weight())
            if self.bias is not None:
                layer.bias.copy_(self.bias)
        return layer


def prune_blocks(layer: SPLoPALinear, density: float) -> int:
    """Keep the ``ceil(density * blocks)`` blocks of largest L1 norm of ``W_t``; returns blocks kept."""
    if not 0 < density <= 1:
        raise ValueError(f"density must be in (0, 1], got {density}")
    p, q = layer.block
    with torch.no_grad():
        w = layer.adapted_weight().abs()
        pad = torch.zeros(layer.grid[0] * p, layer.grid[1] * q, dtype=w.dtype, device=w.device)
        pad[:w.shape[0], :w.shape[1]] = w
        norms = pad.view(layer.grid[0], p, layer.grid[1], q).sum(dim=(1, 3)).flatten()
        norms[layer.block_mask.flatten() == 0] = -1.0
        keep = max(1, math.ceil(density * norms.numel()))
        mask = torch.zeros_like(norms)
        mask[torch.argsort(norms, descending=True)[:keep]] = 1
        layer.block_mask.copy_(mask.view(layer.grid) * layer.block_mask)
    return int(layer.block_mask.sum())


# --------------------------------------------------------------------------------------------
# model-level helpers
# --------------------------------------------------------------------------------------------
_ADAPTED = (SPLoRALinear, SPLoRAConv2d)


def _is_weight_layer(m) -> bool:
    return isinstance(m, (nn.Linear, nn.Conv2d, SPLoRALinear, SPLoRAConv2d, SPLoPALinear))


def add_adapters(model: nn.Sequential, kind: str = "splora", rank: int = 8, head: str = "train",
                 init_range: float = 1e-4, **splopa_kwargs) -> nn.Sequential:
    """Replace (in place) the ``Linear``/``Conv2d`` layers of ``model`` and freeze the source weights.

    ``kind``: ``"splora"`` (frozen source + low-rank adapter), ``"masked"`` (trainable, maskable
    source weights: fine-pruning) or ``"splopa"`` (Linear layers only; convolutions stay as they
    are, frozen). ``head`` (the last weight layer): ``"train"`` makes it a maskable layer with
    trainable weights (a new task's head), ``"adapt"`` treats it like the others. BatchNorm
    parameters stay trainable (the seed trains adapters, norms and the head); every other source
    parameter is frozen.
    """
    if kind not in ("splora", "masked", "splopa"):
        raise ValueError(f"unknown adapter kind {kind!r}")
    if head not in ("train", "adapt"):
        raise ValueError(f"unknown head mode {head!r}")
    last = max((i for i, m in enumerate(model) if _is_weight_layer(m)), default=None)
    for i, m in enumerate(model):
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            for p in m.parameters():
                p.requires_grad_(True)
            continue
        if not isinstance(m, (nn.Linear, nn.Conv2d)):
            for p in m.parameters(recurse=True):
                p.requires_grad_(False)
            continue
        as_head = i == last and head == "train"
        if kind == "masked" or as_head:
            r, train_source = 0, True
        else:
            r, train_source = rank, False
        if kind == "splopa" and not as_head:
            if isinstance(m, nn.Linear):
                model[i] = SPLoPALinear(m, init_range=init_range, **splopa_kwargs)
            else:
                for p in m.parameters():
                    p.requires_grad_(False)
            continue
        cls = SPLoRALinear if isinstance(m, nn.Linear) else SPLoRAConv2d
        model[i] = cls(m, rank=r, init_range=init_range, train_source=train_source)
    return model


@dataclass
class ChannelGroup:
    """Output channels of ``producer`` coupled to ``norms`` and ``consumer``'s input columns."""
    producer: int
    consumer: int
    norms: list
    spatial: int  # consumer input columns per channel (H*W after Flatten, else 1)

    def channels(self, model) -> int:
        return model[self.producer].row_mask.numel()


def channel_groups(model: nn.Sequential) -> list[ChannelGroup]:
    """The prunable channel groups of a supported ``nn.Sequential`` (see the module docstring)."""
    if not isinstance(model, nn.Sequential):
        raise ValueError("channel pruning supports nn.Sequential models only")
    groups, producer, norms, flattened, seen_linear = [], None, [], False, False
    for i, m in enumerate(model):
        if isinstance(m, _ADAPTED):
            is_linear = isinstance(m, SPLoRALinear)
            if is_linear:
                seen_linear = True
            elif seen_linear or flattened:
                raise ValueError(f"layer {i}: a convolution after Flatten/Linear is not supported")
            if producer is not None:
                prev = model[producer]
                n_prev = prev.row_mask.numel()
                n_in = m.col_mask.numel()
                if n_in % n_prev:
                    raise ValueError(f"layer {i}: {n_in} inputs do not match {n_prev} channels of layer {producer}")
                spatial = n_in // n_prev
                if spatial != 1 and not (is_linear and isinstance(prev, SPLoRAConv2d) and flattened):
                    raise ValueError(f"layer {i}: input size {n_in} does not match {n_prev} channels")
                groups.append(ChannelGroup(producer, i, norms, spatial))
            producer, norms = i, []
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if producer is None or m.num_features != model[producer].row_mask.numel():
                raise ValueError(f"layer {i}: BatchNorm does not follow a matching weight layer")
            norms.append(i)
        elif isinstance(m, nn.Flatten):
            if flattened:
                raise ValueError("only one Flatten is supported")
            flattened = True
        elif isinstance(m, _PASSTHROUGH):
            continue
        else:
            raise ValueError(f"layer {i}: {type(m).__name__} is not supported for channel pruning "
                             "(wrap the model with add_adapters(kind='splora'|'masked') first)")
    return groups


def apply_channel_masks(model: nn.Sequential, masks: dict, groups=None) -> None:
    """Set the row mask of each producer and the matching column mask of its consumer.

    ``masks`` maps a producer index to a 0/1 tensor over its output channels.
    """
    groups = channel_groups(model) if groups is None else groups
    for g in groups:
        if g.producer not in masks:
            continue
        m = masks[g.producer].to(model[g.producer].row_mask)
        model[g.producer].row_mask.copy_(m)
        model[g.consumer].col_mask.copy_(m.repeat_interleave(g.spatial))


def _consumer_columns(t: torch.Tensor, channels: int, spatial: int) -> torch.Tensor:
    """Per-channel view ``(channels, -1)`` of a consumer weight (or gradient) ``(out, in, *k)``."""
    t = t.reshape(t.shape[0], channels, spatial, -1)  # in = channels * spatial (channel-major)
    return t.transpose(0, 1).reshape(channels, -1)


def _scores_from(w: torch.Tensor, g: torch.Tensor | None, criterion: str) -> torch.Tensor:
    if criterion == "weight":
        return (w ** 2).sum(1)
    if criterion == "gradient":
        return g.abs().sum(1)
    return (w * g).abs().sum(1)


def channel_scores(model: nn.Sequential, criterion: str = "weight", data: Iterable | None = None,
                   loss_fn=None, normalize: bool = True) -> dict:
    """Importance of every prunable channel: ``{producer index: tensor over its channels}``.

    ``"weight"``: L2 norm of the channel's rows and consumer columns of ``W_t``;
    ``"gradient"``: Σ|∂L/∂W_t|; ``"taylor"``: Σ|W_t ⊙ ∂L/∂W_t| over the same entries, with the
    gradients accumulated over ``data`` (an iterable of ``(x, y)`` batches) and ``loss_fn``
    (cross-entropy by default). With ``normalize`` each layer's scores are divided by their mean
    over the live channels, so that one global ranking compares layers of different sizes.
    Pruned channels score ``inf`` (never chosen again).
    """
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; choose from {CRITERIA}")
    groups = channel_groups(model)
    layers = sorted({g.producer for g in groups} | {g.consumer for g in groups})
    grads = {}
    if criterion != "weight":
        if data is None:
            raise ValueError(f"criterion {criterion!r} needs data")
        loss_fn = loss_fn or nn.CrossEntropyLoss()
        was_training = model.training
        model.eval()
        for i in layers:
            model[i]._capture = True
        try:
            for x, y in data:
                model.zero_grad(set_to_none=True)
                loss_fn(model(x), y).backward()
                for i in layers:
                    w = model[i].captured_weight
                    if w is None or w.grad is None:
                        raise RuntimeError(f"layer {i}: no gradient for its adapted weight "
                                           "(are all of its parameters frozen?)")
                    grads[i] = grads.get(i, 0) + w.grad.detach()
        finally:
            for i in layers:
                model[i]._capture = False
                model[i].captured_weight = None
            model.zero_grad(set_to_none=True)
            model.train(was_training)
    scores = {}
    with torch.no_grad():
        for g in groups:
            prod, cons = model[g.producer], model[g.consumer]
            c = prod.row_mask.numel()
            w_rows = prod.adapted_weight().reshape(c, -1)
            w_cols = _consumer_columns(cons.adapted_weight(), c, g.spatial)
            g_rows = grads[g.producer].reshape(c, -1) if grads else None
            g_cols = _consumer_columns(grads[g.consumer], c, g.spatial) if grads else None
            s = _scores_from(w_rows, g_rows, criterion) + _scores_from(w_cols, g_cols, criterion)
            if criterion == "weight":
                s = s.sqrt()
            alive = prod.row_mask > 0
            if normalize and alive.any():
                s = s / s[alive].mean().clamp_min(torch.finfo(s.dtype).tiny)
            s = s.clone()
            s[~alive] = float("inf")
            scores[g.producer] = s
    return scores


def weight_density(model: nn.Module) -> float:
    """Kept / original weight entries over all channel-adapted layers."""
    kept = total = 0
    for m in model.modules():
        if isinstance(m, _ADAPTED):
            k = m.kernel_numel
            kept += int(m.row_mask.sum()) * int(m.col_mask.sum()) * k
            total += m.weight.numel()
    return kept / total if total else 1.0


def prune_step(model: nn.Sequential, scores: dict, fraction: float = 0.05,
               target_density: float = 0.0, min_channels: int = 1, min_keep: float = 0.0) -> int:
    """Remove the globally lowest-scored live channels; returns how many were removed.

    Removes ``ceil(fraction * live channels)`` channels, fewer if ``target_density`` (weight
    density, :func:`weight_density`) is reached first, keeping at least
    ``max(min_channels, ceil(min_keep * original channels))`` channels per layer (a floor that
    stops the global ranking from emptying one layer into a bottleneck).
    """
    groups = channel_groups(model)
    by_prod = {g.producer: g for g in groups}
    live = sum(int(model[g.producer].row_mask.sum()) for g in groups)
    budget = math.ceil(fraction * live)
    order = sorted(((float(s[c]), p, c) for p, s in scores.items() for c in range(s.numel())
                    if math.isfinite(float(s[c]))), key=lambda t: (t[0], t[1], t[2]))
    removed = 0
    for _, p, c in order:
        if removed >= budget or weight_density(model) <= target_density:
            break
        prod = model[p]
        floor = max(min_channels, math.ceil(min_keep * prod.row_mask.numel()))
        if int(prod.row_mask.sum()) <= floor:
            continue
        mask = prod.row_mask.clone()
        mask[c] = 0
        apply_channel_masks(model, {p: mask}, [by_prod[p]])
        removed += 1
    return removed


def learned_parameter_count(model: nn.Module) -> int:
    """Parameters learned for the task after pruning: adapters (and trainable source weights of
    masked layers) over kept rows/columns, kept BatchNorm channels and any other trainable
    parameter."""
    groups = channel_groups(model) if isinstance(model, nn.Sequential) else []
    norm_kept = {}
    for g in groups:
        for n in g.norms:
            norm_kept[n] = int(model[g.producer].row_mask.sum())
    count = 0
    for i, m in enumerate(model.children() if isinstance(model, nn.Sequential) else [model]):
        if isinstance(m, (_SPLoRABase, SPLoPALinear)):
            count += m.learned_parameters()
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if m.weight is not None and m.weight.requires_grad:
                count += 2 * norm_kept.get(i, m.num_features)
        else:
            count += sum(p.numel() for p in m.parameters() if p.requires_grad)
    return count


def _slice_norm(bn, keep: torch.Tensor):
    new = type(bn)(len(keep), eps=bn.eps, momentum=bn.momentum, affine=bn.affine,
                   track_running_stats=bn.track_running_stats,
                   device=bn.running_mean.device if bn.running_mean is not None else None,
                   dtype=bn.running_mean.dtype if bn.running_mean is not None else None)
    with torch.no_grad():
        if bn.affine:
            new.weight.copy_(bn.weight[keep])
            new.bias.copy_(bn.bias[keep])
        if bn.track_running_stats:
            new.running_mean.copy_(bn.running_mean[keep])
            new.running_var.copy_(bn.running_var[keep])
            new.num_batches_tracked.copy_(bn.num_batches_tracked)
    return new


def fuse_adapters(model: nn.Sequential, structured: bool = True) -> nn.Sequential:
    """A plain ``nn.Sequential`` with every adapter fused; with ``structured`` (default) pruned
    channels are physically removed (smaller layers and BatchNorms). The input is not modified."""
    groups = channel_groups(model) if structured and any(isinstance(m, _ADAPTED) for m in model) else []
    norm_keep = {}
    for g in groups:
        keep = torch.nonzero(model[g.producer].row_mask, as_tuple=True)[0]
        for n in g.norms:
            norm_keep[n] = keep
    layers = []
    for i, m in enumerate(model):
        if isinstance(m, _ADAPTED):
            layers.append(m.fuse(structured=structured))
        elif isinstance(m, SPLoPALinear):
            layers.append(m.fuse())
        elif i in norm_keep:
            layers.append(_slice_norm(m, norm_keep[i]))
        else:
            layers.append(copy.deepcopy(m))
    fused = nn.Sequential(*layers)
    fused.train(model.training)
    for p in fused.parameters():
        p.requires_grad_(True)
    return fused


# --------------------------------------------------------------------------------------------
# architecture <-> JSON for plain Sequential models
# --------------------------------------------------------------------------------------------
def _pair(v):
    return list(v) if isinstance(v, (tuple, list)) else [v, v]


def describe_sequential(model: nn.Sequential) -> list[dict]:
    """A JSON-able description of a plain ``nn.Sequential`` of the supported layer types."""
    spec = []
    for i, m in enumerate(model):
        if isinstance(m, nn.Linear):
            spec.append({"type": "Linear", "in_features": m.in_features, "out_features": m.out_features,
                         "bias": m.bias is not None})
        elif isinstance(m, nn.Conv2d):
            if m.groups != 1:
                raise ValueError(f"layer {i}: grouped convolutions are not supported")
            spec.append({"type": "Conv2d", "in_channels": m.in_channels, "out_channels": m.out_channels,
                         "kernel_size": _pair(m.kernel_size), "stride": _pair(m.stride),
                         "padding": _pair(m.padding), "dilation": _pair(m.dilation),
                         "bias": m.bias is not None})
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            spec.append({"type": type(m).__name__, "num_features": m.num_features, "eps": m.eps,
                         "momentum": m.momentum})
        elif isinstance(m, nn.ReLU):
            spec.append({"type": "ReLU"})
        elif isinstance(m, nn.Flatten):
            spec.append({"type": "Flatten", "start_dim": m.start_dim, "end_dim": m.end_dim})
        elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            spec.append({"type": type(m).__name__, "kernel_size": _pair(m.kernel_size),
                         "stride": _pair(m.stride), "padding": _pair(m.padding)})
        elif isinstance(m, nn.Dropout):
            spec.append({"type": "Dropout", "p": m.p})
        elif isinstance(m, nn.Identity):
            spec.append({"type": "Identity"})
        else:
            raise ValueError(f"layer {i}: {type(m).__name__} cannot be described (fuse adapters first)")
    return spec


def build_sequential(spec: list[dict]) -> nn.Sequential:
    """Inverse of :func:`describe_sequential`; load the weights with ``load_state_dict``."""
    layers = []
    for d in spec:
        d = dict(d)
        t = d.pop("type")
        if t == "Linear":
            layers.append(nn.Linear(d["in_features"], d["out_features"], bias=d.get("bias", True)))
        elif t == "Conv2d":
            layers.append(nn.Conv2d(d["in_channels"], d["out_channels"], tuple(d["kernel_size"]),
                                    tuple(d.get("stride", (1, 1))), tuple(d.get("padding", (0, 0))),
                                    tuple(d.get("dilation", (1, 1))), bias=d.get("bias", True)))
        elif t in ("BatchNorm1d", "BatchNorm2d"):
            layers.append(getattr(nn, t)(d["num_features"], eps=d.get("eps", 1e-5),
                                         momentum=d.get("momentum", 0.1)))
        elif t == "ReLU":
            layers.append(nn.ReLU())
        elif t == "Flatten":
            layers.append(nn.Flatten(d.get("start_dim", 1), d.get("end_dim", -1)))
        elif t in ("MaxPool2d", "AvgPool2d"):
            layers.append(getattr(nn, t)(tuple(d["kernel_size"]), tuple(d["stride"]), tuple(d["padding"])))
        elif t == "Dropout":
            layers.append(nn.Dropout(d.get("p", 0.5)))
        elif t == "Identity":
            layers.append(nn.Identity())
        else:
            raise ValueError(f"unknown layer type {t!r}")
    return nn.Sequential(*layers)


def load_registered(name: str, registry=None) -> nn.Sequential:
    """A transfer-pruned model registered with ``transfer-prune --register NAME``: the manifest entry's
    ``architecture`` rebuilt with :func:`build_sequential`, its checksum-verified weights loaded."""
    from safetensors.torch import load_file

    from opendr_perception.core import registry as registry_module
    reg = registry if registry is not None else registry_module.default_registry()
    spec = reg.spec(name)
    if "architecture" not in spec.extra:
        raise registry_module.ModelError(f"model '{name}' has no 'architecture' in its manifest entry; "
                                         "it was not written by transfer-prune --register")
    model = build_sequential(spec.extra["architecture"])
    model.load_state_dict(load_file(str(reg.resolve(name))))
    return model.eval()
