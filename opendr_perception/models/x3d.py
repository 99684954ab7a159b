"""Video activity recognition: X3D and Continual X3D (CoX3D).

ROS-free model cores for the seed's section 3.2 / appendix 8.1 ("Continual 3D Convolutional
Neural Networks for Real-time Processing of Videos").

:class:`X3D` is the published network (Feichtenhofer 2020, layout of pytorchvideo's
``create_x3d`` and SlowFast's X3D), for clips ``(B, 3, T, S, S)``:

* ``stem``: ``conv_xy`` 1x3x3 spatial convolution to 24 channels (stride 1,2,2), ``conv_t`` 5x1x1
  depthwise temporal convolution, BN, ReLU.
* ``res2`` .. ``res5``: residual stages of bottleneck blocks with widths 24/48/96/192, depths
  3/5/11/7 (XS, S, M) or 5/10/25/15 (L), spatial stride 2 in the first block of each stage.
  Block: 1x1x1 conv to ``int(2.25 * width)`` channels, BN, ReLU; 3x3x3 depthwise conv, BN,
  squeeze-and-excitation (every other block, the 1st, 3rd, ...; reduction 1/16 rounded to a
  multiple of 8 as in the reference code, so 8/8/16/32 channels), swish; 1x1x1 conv back to the
  width, BN; plus the shortcut (1x1x1 strided conv + BN where shape changes), ReLU.
* head: ``conv5`` 1x1x1 to 432 channels, BN, ReLU, global average pooling, ``fc1`` to 2048 (no
  bias, no BN), ReLU, dropout, ``fc2`` to the classes. ``forward`` returns logits (the
  pytorchvideo hub models apply a softmax on top).

Variants differ in depth and input: XS 4x160^2, S 13x160^2, M 16x224^2, L 16x312^2
(:data:`VARIANTS`); XS and S are the same network (global pooling), fed different clips.

``temporal_padding=True`` (default) zero-pads the temporal convolutions as published.
``temporal_padding=False`` removes the temporal padding (the clip shrinks by 4 frames in the stem
and 2 per block; residuals are centre-cropped by one frame per block): the regular network that
the continual one equals exactly. ``se_scope="frame"`` squeezes every frame on its own (spatial
average only); the published network squeezes the whole clip (``"clip"``).

:class:`CoX3D` (seed 8.1) holds the same parameters under the same names (``load_state_dict``
moves weights both ways), computes ``forward`` like the unpadded, frame-SE regular model, and
adds frame-by-frame inference:

* ``forward_step(frame)`` with ``frame`` of shape ``(B, 3, S, S)`` returns logits ``(B, classes)``,
  or ``None`` during warm-up (the first ``delay`` steps). After warm-up there is a prediction at
  every step (network stride 1), equal to the unpadded regular model on the last
  ``receptive_field`` frames.
* Continual convolutions (seed 3.2, Listing 1.1): every new frame is convolved with all ``k``
  temporal taps of the kernel at once (one grouped 2D convolution) and the partial sums of the
  ``k - 1`` outputs still waiting for later frames are kept as state, so each frame is convolved
  exactly once: ``(k - 1) * C * H' * W'`` floats of state per layer (seed Eq. 5).
* Continual residuals (seed 3.3): each block's 3x3x3 convolution delays its output by one step,
  so the block keeps its previous input and adds it (through the shortcut) to the current output.
* Squeeze-and-excitation per frame: as in the seed (appendix A, "the temporal component of the
  average pooling of SE blocks is discarded"), the squeeze is the spatial average of the current
  frame; it adds no state and no delay. A clip-wide squeeze cannot be made causal-exact (it
  averages over future frames of the clip), so the continual network is exact with respect to the
  ``se_scope="frame"`` regular network, and a model shift from the published ``"clip"`` squeeze,
  like the removal of temporal padding.
* Continual global average pooling: the head keeps the spatially pooled features of the last
  ``pool_size`` frames (the clip length by default; the seed's extended pool uses 64).

Warm-up: with ``warm_up="full"`` (default) a prediction comes only once the whole receptive field
is filled with real frames: ``delay = receptive_field - 1`` (68/71/129 for S/M/L with the
default pools), and every prediction is exact. ``warm_up="zeros"`` is the seed's "zeros"
initialisation (3.6): the states start as if the zero padding of the published network had been
seen (2 frames in the stem, 1 per block), so predictions come after ``receptive_field - p - 1``
frames, 40/43/72 for S/M/L (``p`` = 28/28/57 is the aggregated padding); the first ``p``
predictions are transients and from step ``receptive_field - 1`` on both modes give identical
outputs. Receptive fields: 69/72/130 for S13/M16/L16 (``1 + 4 + 2 * blocks + pool_size - 1``).

Step inference is inference only (batch-norm running statistics): it needs ``model.eval()``
and runs without autograd.

Published weights: :func:`load_pytorchvideo_x3d` maps the Kinetics-400 checkpoints of
pytorchvideo (``torch.hub`` names ``x3d_xs``/``x3d_s``/``x3d_m``/``x3d_l``, files
``X3D_{XS,S,M,L}.pyth``, key layout of ``create_x3d``) and of SlowFast (``x3d_{xs,s,m,l}.pyth``,
which the seed's CoX3D used) onto these modules. The mapping is tested by round trips and against
the documented key layout; no real checkpoint could be loaded offline.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "X3DVariant",
    "VARIANTS",
    "SqueezeExcitation",
    "X3DStem",
    "X3DBlock",
    "X3D",
    "CoX3D",
    "seed_flops",
    "build_x3d",
    "x3d_key_map",
    "to_pytorchvideo_state_dict",
    "convert_x3d_state_dict",
    "load_pytorchvideo_x3d",
]


# --------------------------------------------------------------------------------------------
# Variants
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class X3DVariant:
    """One published X3D size: stage depths and the clip it was trained on."""

    name: str
    depths: Tuple[int, int, int, int]
    clip_length: int
    crop_size: int


VARIANTS: Dict[str, X3DVariant] = {
    "xs": X3DVariant("xs", (3, 5, 11, 7), 4, 160),
    "s": X3DVariant("s", (3, 5, 11, 7), 13, 160),
    "m": X3DVariant("m", (3, 5, 11, 7), 16, 224),
    "l": X3DVariant("l", (5, 10, 25, 15), 16, 312),
}

STEM_WIDTH = 24
WIDTHS = (24, 48, 96, 192)
BOTTLENECK_FACTOR = 2.25
HEAD_WIDTH = 2048
SE_RATIO = 1 / 16
STEM_TEMPORAL_KERNEL = 5
BLOCK_TEMPORAL_KERNEL = 3


def _get_variant(variant) -> X3DVariant:
    if isinstance(variant, X3DVariant):
        return variant
    key = str(variant).lower().replace("x3d", "").strip("_-")
    if key not in VARIANTS:
        raise ValueError(f"unknown X3D variant {variant!r}; choose one of {sorted(VARIANTS)}")
    return VARIANTS[key]


def _se_width(channels: int, ratio: float, divisor: int = 8) -> int:
    """SE bottleneck width: ``channels * ratio`` rounded to a multiple of 8, at least 8, and not
    below 90 % of the exact value (the X3D reference code's rounding)."""
    exact = channels * ratio
    width = max(divisor, int(exact + divisor / 2) // divisor * divisor)
    if width < 0.9 * exact:
        width += divisor
    return int(width)


def _bn(bn: nn.modules.batchnorm._BatchNorm, x: Tensor) -> Tensor:
    """Batch norm of one frame ``(B, C, H, W)`` or a vector ``(B, C)`` with running statistics."""
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)


def _taps(x: Tensor, weight: Tensor, stride: int = 1, padding: int = 0) -> Tensor:
    """All temporal taps of a depthwise 3D kernel applied to one frame.

    ``x (B, C, H, W)``, ``weight (C, 1, k, kh, kw)`` -> ``(B, C, k, H', W')``: tap ``j`` is the
    2D convolution of the frame with ``weight[:, :, j]``, computed in one grouped convolution
    with ``k`` outputs per channel.
    """
    C, _, k, kh, kw = weight.shape
    y = F.conv2d(x, weight.reshape(C * k, 1, kh, kw), None, stride, padding, 1, C)
    return y.view(y.shape[0], C, k, y.shape[-2], y.shape[-1])


def _continual_sum(acc: List[Tensor], taps: Tensor) -> Tensor:
    """One step of a continual temporal convolution (seed Listing 1.1).

    ``taps[:, :, j]`` is the newest frame times kernel tap ``j``; ``acc[i]`` holds the partial
    sum of the output that completes ``i + 1`` steps from now. Returns the completed output
    ``w_0 x_{t-k+1} + ... + w_{k-1} x_t`` and shifts the partial sums in place.
    """
    k = taps.shape[2]
    if k == 1:
        return taps[:, :, 0]
    out = acc[0] + taps[:, :, k - 1]
    for i in range(k - 2):
        acc[i] = acc[i + 1] + taps[:, :, k - 2 - i]
    acc[k - 2] = taps[:, :, 0]
    return out


# --------------------------------------------------------------------------------------------
# Modules
# --------------------------------------------------------------------------------------------


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation: ``x * sigmoid(fc2(relu(fc1(mean(x)))))``.

    ``scope="clip"`` averages over time and space (published X3D), ``"frame"`` over space only,
    giving every frame its own channel weights (CoX3D).
    """

    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.fc1 = nn.Linear(channels, reduced)
        self.fc2 = nn.Linear(reduced, channels)

    def excite(self, squeezed: Tensor) -> Tensor:
        """Channel weights for squeezed features ``(..., C)``."""
        return torch.sigmoid(self.fc2(F.relu(self.fc1(squeezed))))

    def forward(self, x: Tensor, scope: str = "clip") -> Tensor:
        if scope == "clip":
            return x * self.excite(x.mean((2, 3, 4)))[:, :, None, None, None]
        s = self.excite(x.mean((3, 4)).transpose(1, 2))  # (B, T, C)
        return x * s.transpose(1, 2)[:, :, :, None, None]


class X3DStem(nn.Module):
    """``conv_xy`` (1x3x3, stride 1,2,2) -> ``conv_t`` (5x1x1 depthwise) -> BN -> ReLU."""

    def __init__(self, in_channels: int, width: int, temporal_kernel: int = STEM_TEMPORAL_KERNEL,
                 temporal_padding: bool = True):
        super().__init__()
        self.temporal_kernel = int(temporal_kernel)
        pad = self.temporal_kernel // 2 if temporal_padding else 0
        self.conv_xy = nn.Conv3d(in_channels, width, (1, 3, 3), (1, 2, 2), (0, 1, 1), bias=False)
        self.conv_t = nn.Conv3d(width, width, (self.temporal_kernel, 1, 1), 1, (pad, 0, 0), groups=width,
                                bias=False)
        self.bn = nn.BatchNorm3d(width)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv_t(self.conv_xy(x))))

    # -- continual step ------------------------------------------------------------------------
    def _forward_step(self, x: Tensor, state: dict) -> Optional[Tensor]:
        y = F.conv2d(x, self.conv_xy.weight[:, :, 0], None, 2, 1)
        taps = _taps(y, self.conv_t.weight)
        if state["acc"] is None:
            state["acc"] = [torch.zeros_like(taps[:, :, 0]) for _ in range(self.temporal_kernel - 1)]
        out = _continual_sum(state["acc"], taps)
        state["n"] += 1
        if state["n"] < self.temporal_kernel:
            return None
        return F.relu(_bn(self.bn, out))


class X3DBlock(nn.Module):
    """X3D bottleneck residual block (see the module docstring).

    ``shortcut`` (+ ``shortcut_bn``) exists where the block changes width or resolution.
    ``shortcut_norm=False`` leaves out the batch-norm of a shortcut that only strides (same width),
    as pytorchvideo's ``create_x3d`` does in the first block of ``res2``; SlowFast keeps it.
    """

    def __init__(self, dim_in: int, dim_inner: int, dim_out: int, stride: int = 1, se_width: int = 0,
                 temporal_kernel: int = BLOCK_TEMPORAL_KERNEL, temporal_padding: bool = True,
                 shortcut_norm: bool = True):
        super().__init__()
        if temporal_kernel < 1 or temporal_kernel % 2 == 0:
            raise ValueError(f"temporal kernel must be odd and positive, got {temporal_kernel}")
        self.stride, self.temporal_kernel = int(stride), int(temporal_kernel)
        self.half = self.temporal_kernel // 2
        self.temporal_padding = bool(temporal_padding)
        if dim_in != dim_out or stride != 1:
            self.shortcut = nn.Conv3d(dim_in, dim_out, 1, (1, stride, stride), bias=False)
            self.shortcut_bn = nn.BatchNorm3d(dim_out) if (dim_in != dim_out or shortcut_norm) else None
        else:
            self.shortcut, self.shortcut_bn = None, None
        self.conv_a = nn.Conv3d(dim_in, dim_inner, 1, bias=False)
        self.bn_a = nn.BatchNorm3d(dim_inner)
        self.conv_b = nn.Conv3d(dim_inner, dim_inner, (self.temporal_kernel, 3, 3), (1, stride, stride),
                                (self.half if temporal_padding else 0, 1, 1), groups=dim_inner, bias=False)
        self.bn_b = nn.BatchNorm3d(dim_inner)
        self.se = SqueezeExcitation(dim_inner, se_width) if se_width > 0 else None
        self.conv_c = nn.Conv3d(dim_inner, dim_out, 1, bias=False)
        self.bn_c = nn.BatchNorm3d(dim_out)

    def forward(self, x: Tensor, se_scope: str = "clip") -> Tensor:
        y = F.relu(self.bn_a(self.conv_a(x)))
        y = self.bn_b(self.conv_b(y))
        if self.se is not None:
            y = self.se(y, se_scope)
        y = self.bn_c(self.conv_c(F.silu(y)))
        r = x
        if not self.temporal_padding and self.half:
            r = x[:, :, self.half:x.shape[2] - self.half]
        if self.shortcut is not None:
            r = self.shortcut(r)
            if self.shortcut_bn is not None:
                r = self.shortcut_bn(r)
        return F.relu(y + r)

    # -- continual step ------------------------------------------------------------------------
    def _forward_step(self, x: Tensor, state: dict) -> Optional[Tensor]:
        """One frame ``(B, C_in, H, W)`` -> ``(B, C_out, H', W')`` or ``None`` (warm-up).

        ``state``: ``n`` (frames seen, the padded zeros included), ``acc`` (partial sums of the
        3x3x3 convolution) and ``prev`` (the inputs of the last ``half`` steps: the delayed
        residual).
        """
        y = F.relu(_bn(self.bn_a, F.conv2d(x, self.conv_a.weight[:, :, 0])))
        taps = _taps(y, self.conv_b.weight, self.stride, 1)
        if state["acc"] is None:
            state["acc"] = [torch.zeros_like(taps[:, :, 0]) for _ in range(self.temporal_kernel - 1)]
        z = _continual_sum(state["acc"], taps)
        prev = state["prev"]
        prev.append(x)
        r = prev.pop(0) if len(prev) > self.half else None
        state["n"] += 1
        if state["n"] < self.temporal_kernel:
            return None
        z = _bn(self.bn_b, z)
        if self.se is not None:
            z = z * self.se.excite(z.mean((2, 3)))[:, :, None, None]
        z = _bn(self.bn_c, F.conv2d(F.silu(z), self.conv_c.weight[:, :, 0]))
        if self.shortcut is not None:
            r = F.conv2d(r, self.shortcut.weight[:, :, 0], None, self.stride)
            if self.shortcut_bn is not None:
                r = _bn(self.shortcut_bn, r)
        return F.relu(z + r)


# --------------------------------------------------------------------------------------------
# Whole models
# --------------------------------------------------------------------------------------------


class X3D(nn.Module):
    """Regular X3D over clips ``(B, 3, T, S, S)`` -> logits ``(B, num_classes)``.

    Args:
        variant: ``"xs"``, ``"s"``, ``"m"`` or ``"l"`` (depths, and the clip it expects).
        num_classes: classes of the last layer (400 for Kinetics-400).
        temporal_padding: zero-pad the temporal convolutions (published) or not (the network
            the continual model equals).
        se_scope: ``"clip"`` (published) or ``"frame"`` (per-frame squeeze, as CoX3D).
        dropout: dropout rate before ``fc2`` (0.5 as published; inactive in ``eval()``).
        stride_shortcut_norm: batch-norm on a shortcut that only strides (same width: the first
            block of ``res2`` in the published sizes). True: SlowFast and the seed's models; False:
            pytorchvideo's ``create_x3d``. :func:`load_pytorchvideo_x3d` handles both.
        depths, widths, stem_width, head_width, bottleneck_factor, se_ratio, in_channels: override
            the published sizes (small networks for tests).
    """

    def __init__(self, variant: str = "s", num_classes: int = 400, *, temporal_padding: bool = True,
                 se_scope: str = "clip", dropout: float = 0.5, stride_shortcut_norm: bool = True,
                 depths: Optional[Sequence[int]] = None, widths: Optional[Sequence[int]] = None,
                 stem_width: int = STEM_WIDTH, head_width: int = HEAD_WIDTH,
                 bottleneck_factor: float = BOTTLENECK_FACTOR, se_ratio: float = SE_RATIO,
                 in_channels: int = 3):
        super().__init__()
        self.variant = _get_variant(variant)
        if se_scope not in ("clip", "frame"):
            raise ValueError(f"se_scope must be 'clip' or 'frame', got {se_scope!r}")
        depths = tuple(int(d) for d in (depths if depths is not None else self.variant.depths))
        widths = tuple(int(w) for w in (widths if widths is not None else WIDTHS))
        if len(depths) != 4 or len(widths) != 4 or min(depths) < 1 or min(widths) < 1:
            raise ValueError(f"need four positive stage depths and widths, got {depths}, {widths}")
        if num_classes < 1:
            raise ValueError("num_classes must be positive")
        self.num_classes, self.in_channels = int(num_classes), int(in_channels)
        self.temporal_padding, self.se_scope = bool(temporal_padding), se_scope
        self.depths, self.widths = depths, widths
        self.stem = X3DStem(in_channels, stem_width, temporal_padding=temporal_padding)
        dim_in = stem_width
        for s, (depth, width) in enumerate(zip(depths, widths)):
            inner = int(bottleneck_factor * width)
            se = _se_width(inner, se_ratio) if se_ratio > 0 else 0
            blocks = [X3DBlock(dim_in if i == 0 else width, inner, width, stride=2 if i == 0 else 1,
                               se_width=se if i % 2 == 0 else 0, temporal_padding=temporal_padding,
                               shortcut_norm=stride_shortcut_norm)
                      for i in range(depth)]
            self.add_module(f"res{s + 2}", nn.Sequential(*blocks))
            dim_in = width
        self.head_inner = int(bottleneck_factor * widths[-1])
        self.conv5 = nn.Conv3d(widths[-1], self.head_inner, 1, bias=False)
        self.bn5 = nn.BatchNorm3d(self.head_inner)
        self.fc1 = nn.Linear(self.head_inner, head_width, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(head_width, num_classes)

    # -- helpers -------------------------------------------------------------------------------
    @property
    def stages(self) -> List[nn.Sequential]:
        return [self.res2, self.res3, self.res4, self.res5]

    @property
    def blocks(self) -> List[X3DBlock]:
        return [b for stage in self.stages for b in stage]

    @property
    def clip_length(self) -> int:
        """Frames per clip of the published variant (XS 4, S 13, M/L 16)."""
        return self.variant.clip_length

    @property
    def crop_size(self) -> int:
        """Input resolution of the published variant (160/160/224/312)."""
        return self.variant.crop_size

    @property
    def temporal_shrink(self) -> int:
        """Frames lost by the unpadded network: ``4 + 2 * blocks`` (0 when padded)."""
        if self.temporal_padding:
            return 0
        return self.stem.temporal_kernel - 1 + sum(b.temporal_kernel - 1 for b in self.blocks)

    @property
    def temporal_padding_total(self) -> int:
        """Aggregated temporal padding of the published network (seed 3.6): 28 for S/M, 57 for L."""
        return self.stem.temporal_kernel // 2 + sum(b.half for b in self.blocks)

    def _check_clip(self, x: Tensor) -> None:
        if x.dim() != 5 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected a clip (B, {self.in_channels}, T, H, W), got shape {tuple(x.shape)}")
        if x.shape[2] <= self.temporal_shrink:
            raise ValueError(f"the unpadded network needs clips of more than {self.temporal_shrink} frames, "
                             f"got {x.shape[2]}")

    # -- forward -------------------------------------------------------------------------------
    def features(self, x: Tensor) -> Tensor:
        """Backbone features ``(B, 192, T', S/32, S/32)`` (before ``conv5``)."""
        self._check_clip(x)
        x = self.stem(x)
        for block in self.blocks:
            x = block(x, self.se_scope)
        return x

    def head(self, pooled: Tensor) -> Tensor:
        """Logits from the pooled ``conv5`` features ``(B, 432)``."""
        return self.fc2(self.dropout(F.relu(self.fc1(pooled))))

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(B, num_classes)`` of clips ``(B, 3, T, H, W)``."""
        f = F.relu(self.bn5(self.conv5(self.features(x))))
        return self.head(f.mean((2, 3, 4)))


class CoX3D(X3D):
    """Continual X3D: the unpadded, frame-SE X3D plus frame-by-frame inference.

    Args:
        variant, num_classes: as :class:`X3D`.
        pool_size: frames averaged by the continual global pooling; default the variant's clip
            length (4/13/16/16); the seed's extended pool is 64.
        warm_up: ``"full"`` (default; exact predictions from ``receptive_field - 1`` frames on) or
            ``"zeros"`` (the seed's zero initialisation; earlier, transient predictions).
        Other keyword arguments as :class:`X3D` (``temporal_padding`` is always off and
        ``se_scope`` always ``"frame"``).

    Properties: ``receptive_field`` (frames one prediction depends on), ``delay`` (steps that
    return ``None`` before the first prediction), ``stride`` (1: a prediction every step).
    """

    def __init__(self, variant: str = "s", num_classes: int = 400, *, pool_size: Optional[int] = None,
                 warm_up: str = "full", **kwargs):
        if kwargs.pop("temporal_padding", False):
            raise ValueError("continual models have no temporal padding")
        if kwargs.pop("se_scope", "frame") != "frame":
            raise ValueError("continual models squeeze each frame (se_scope='frame')")
        super().__init__(variant, num_classes, temporal_padding=False, se_scope="frame", **kwargs)
        if warm_up not in ("full", "zeros"):
            raise ValueError(f"warm_up must be 'full' or 'zeros', got {warm_up!r}")
        self.pool_size = int(pool_size if pool_size is not None else self.variant.clip_length)
        if self.pool_size < 1:
            raise ValueError(f"pool_size must be positive, got {self.pool_size}")
        self.warm_up = warm_up
        self._state: Optional[dict] = None

    # -- geometry ------------------------------------------------------------------------------
    stride = 1

    @property
    def receptive_field(self) -> int:
        """``1 + 4 + 2 * blocks + pool_size - 1``: 69/72/130 for S13/M16/L16."""
        return 1 + self.temporal_shrink + self.pool_size - 1

    @property
    def delay(self) -> int:
        """Steps returning ``None``: ``receptive_field - 1`` (``"full"``) or ``- p`` more (``"zeros"``)."""
        d = self.receptive_field - 1
        return d - self.temporal_padding_total if self.warm_up == "zeros" else d

    # -- state ---------------------------------------------------------------------------------
    def clean_state(self) -> None:
        """Forget the stream: the next ``delay`` steps return ``None`` again."""
        self._state = None

    def get_state(self) -> Optional[dict]:
        """The live continual state (``None`` before the first step).

        A dict of Python containers holding tensors; stepping updates it in place, so after
        ``set_state(s)`` the object ``s`` follows the stream. ``copy.deepcopy`` it for a snapshot.
        """
        return self._state

    def set_state(self, state: Optional[dict]) -> None:
        """Install a state returned by :meth:`get_state` (``None`` = fresh)."""
        if state is not None and (not isinstance(state, dict) or "blocks" not in state
                                  or len(state["blocks"]) != len(self.blocks) or "stem" not in state):
            raise ValueError("not a state of this model (use get_state() of the same architecture)")
        self._state = state

    def state_numel(self, state: Optional[dict] = None) -> int:
        """Floats held by a state (default: the current one), cf. seed Table 4."""
        state = self._state if state is None else state

        def count(obj) -> int:
            if isinstance(obj, Tensor):
                return obj.numel()
            if isinstance(obj, dict):
                return sum(count(v) for v in obj.values())
            if isinstance(obj, (list, tuple)):
                return sum(count(v) for v in obj)
            return 0

        return count(state) if state is not None else 0

    def _new_state(self, shape: Tuple[int, ...]) -> dict:
        zeros = self.warm_up == "zeros"
        return {
            "shape": shape,
            "stem": {"n": self.stem.temporal_kernel // 2 if zeros else 0, "acc": None},
            "blocks": [{"n": b.half if zeros else 0, "acc": None, "prev": []} for b in self.blocks],
            "pool": [],
            "steps": 0,
        }

    # -- step inference ------------------------------------------------------------------------
    @torch.no_grad()
    def forward_step(self, frame: Tensor) -> Optional[Tensor]:
        """One frame ``(B, 3, H, W)`` (or ``(B, 3, 1, H, W)``) -> logits ``(B, classes)`` or ``None``.

        Inference only: runs without autograd and needs ``eval()`` mode.
        """
        if self.training:
            raise RuntimeError("forward_step is an inference path; call model.eval() first")
        if frame.dim() == 5 and frame.shape[2] == 1:
            frame = frame[:, :, 0]
        if frame.dim() != 4 or frame.shape[1] != self.in_channels:
            raise ValueError(f"expected a frame (B, {self.in_channels}, H, W), got shape {tuple(frame.shape)}")
        state = self._state
        if state is None:
            state = self._state = self._new_state(tuple(frame.shape))
        elif state["shape"] != tuple(frame.shape):
            raise ValueError(f"the state was built for frames of shape {state['shape']}, got "
                             f"{tuple(frame.shape)}; call clean_state() or set_state() first")
        state["steps"] += 1
        h = self.stem._forward_step(frame, state["stem"])
        if h is None:
            return None
        for block, block_state in zip(self.blocks, state["blocks"]):
            h = block._forward_step(h, block_state)
            if h is None:
                return None
        f = F.relu(_bn(self.bn5, F.conv2d(h, self.conv5.weight[:, :, 0])))
        pool = state["pool"]
        pool.append(f.mean((2, 3)))
        if len(pool) > self.pool_size:
            pool.pop(0)
        if len(pool) < self.pool_size:
            return None
        return self.head(torch.stack(pool, 0).mean(0))

    def forward_steps(self, clip: Tensor) -> Optional[Tensor]:
        """Step through a clip ``(B, 3, T, H, W)``; the predictions stacked to ``(B, classes, n)`` or ``None``."""
        if clip.dim() != 5:
            raise ValueError(f"expected a clip (B, 3, T, H, W), got shape {tuple(clip.shape)}")
        outs = [y for y in (self.forward_step(clip[:, :, t]) for t in range(clip.shape[2])) if y is not None]
        return torch.stack(outs, dim=2) if outs else None


def seed_flops(model: X3D, crop_size: Optional[int] = None, frames: Optional[int] = None) -> int:
    """Operations per clip (:class:`X3D`) or per step (:class:`CoX3D`) in the seed's convention.

    The seed's "FLOPs" (Tables 1 and 3) are ``ptflops`` module counts: multiply-accumulates of
    convolutions and linear layers plus their bias additions, two operations per element of a
    batch-norm, one per element of a ReLU and one per input element of a pooling layer; swish,
    sigmoid and the SE / residual element-wise products and sums are not counted. This function
    applies that convention analytically at batch 1 (``crop_size`` and ``frames`` default to the
    variant's clip). It reproduces the seed's X3D-S/M/L figures (2,061,366 K / 4,970,008 K /
    19,166,052 K) to the rounding. For :class:`CoX3D` it counts one step (all layers on one frame,
    the spatial pooling of the frame and the continual temporal pooling over ``pool_size`` frames);
    the seed's per-frame CoX3D figures (166,565 K / 325,456 K / 1,245,549 K for S/M/L) are about
    4 % higher, a difference in how its continual modules were counted that could not be
    reproduced from the text (the multiply-accumulates are the same by construction).
    """
    S = int(crop_size if crop_size is not None else model.crop_size)
    continual = isinstance(model, CoX3D)
    T = 1 if continual else int(frames if frames is not None else model.clip_length)
    total = 0

    def conv(m: nn.Conv3d, t: int, hw: int) -> int:
        k = m.kernel_size[0] * m.kernel_size[1] * m.kernel_size[2]
        return m.out_channels * t * hw * (k * m.in_channels // m.groups + (m.bias is not None))

    def shrink(t: int, m: nn.Conv3d) -> int:
        return t if continual else t + 2 * m.padding[0] - m.kernel_size[0] + 1

    H = (S + 1) // 2
    stem = model.stem
    total += conv(stem.conv_xy, T, H * H)
    T = shrink(T, stem.conv_t)
    total += conv(stem.conv_t, T, H * H) + 3 * stem.bn.num_features * T * H * H  # BN (2) + ReLU (1)
    for b in model.blocks:
        ci, co = b.conv_a.out_channels, b.conv_c.out_channels
        h_in, H = H, (H - 1) // b.stride + 1
        total += conv(b.conv_a, T, h_in * h_in) + 3 * ci * T * h_in * h_in
        t_out = shrink(T, b.conv_b)
        total += conv(b.conv_b, t_out, H * H) + 2 * ci * t_out * H * H
        if b.se is not None:
            cse = b.se.fc1.out_features
            total += ci * t_out * H * H + (ci * cse + cse) + cse + (cse * ci + ci)  # pool, fc1, ReLU, fc2
        total += conv(b.conv_c, t_out, H * H) + 2 * co * t_out * H * H
        if b.shortcut is not None:
            total += conv(b.shortcut, t_out, H * H) + (2 * co * t_out * H * H if b.shortcut_bn is not None else 0)
        total += co * t_out * H * H  # ReLU
        T = t_out
    c5 = model.conv5.out_channels
    total += conv(model.conv5, T, H * H) + 3 * c5 * T * H * H + c5 * T * H * H  # conv5, BN, ReLU, pool
    if continual:
        total += c5 * model.pool_size  # continual temporal average
    total += model.fc1.in_features * model.fc1.out_features + model.fc1.out_features  # fc1 + ReLU
    total += model.fc2.in_features * model.fc2.out_features + model.fc2.out_features
    return int(total)


def build_x3d(name: str, num_classes: int = 400, **kwargs) -> X3D:
    """``"x3d_s"``, ``"x3d-m"``, ``"cox3d_l"``, ... -> the model (keyword arguments go to the class)."""
    key = str(name).lower().replace("-", "_")
    continual = key.startswith("co")
    variant = key[2:] if continual else key
    if not variant.startswith("x3d"):
        raise ValueError(f"unknown video model {name!r}; use x3d_<xs|s|m|l> or cox3d_<xs|s|m|l>")
    return (CoX3D if continual else X3D)(variant, num_classes, **kwargs)


# --------------------------------------------------------------------------------------------
# Published checkpoints: pytorchvideo and SlowFast key layouts
# --------------------------------------------------------------------------------------------

_BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def x3d_key_map(model: X3D, source: str = "pytorchvideo") -> Dict[str, str]:
    """This model's state-dict keys -> the keys of a published X3D checkpoint.

    ``source="pytorchvideo"``: ``create_x3d`` (torch.hub ``x3d_xs/s/m/l``): ``blocks.0`` stem
    (its ``conv.conv_t`` is the 1x3x3 *spatial* convolution and ``conv.conv_xy`` the 5x1x1 temporal
    one: pytorchvideo's ``Conv2plus1d`` names them that way round), ``blocks.1-4`` stages
    (``res_blocks.i.branch1_conv/branch1_norm/branch2.conv_a/norm_a/conv_b/norm_b.0/norm_b.1.block.0
    /norm_b.1.block.2/conv_c/norm_c``), ``blocks.5`` head (``pool.pre_conv/pre_norm/post_conv``,
    ``proj``). ``source="slowfast"``: SlowFast's ``s1.pathway0_stem.conv_xy/conv/bn``,
    ``s2-s5.pathway0_res{i}.branch1/branch1_bn/branch2.a/a_bn/b/b_bn/se.fc1/se.fc2/c/c_bn``,
    ``head.conv_5/conv_5_bn/lin_5/projection``. The norm of a stride-only shortcut (``res2.0`` in
    the published sizes), which the pytorchvideo layout lacks, is left out of that mapping.
    """
    if source not in ("pytorchvideo", "slowfast"):
        raise ValueError(f"source must be 'pytorchvideo' or 'slowfast', got {source!r}")
    pv = source == "pytorchvideo"
    out: Dict[str, str] = {}

    def bn(ours: str, theirs: str) -> None:
        for k in _BN_KEYS:
            out[f"{ours}.{k}"] = f"{theirs}.{k}"

    if pv:
        out["stem.conv_xy.weight"] = "blocks.0.conv.conv_t.weight"
        out["stem.conv_t.weight"] = "blocks.0.conv.conv_xy.weight"
        bn("stem.bn", "blocks.0.norm")
    else:
        out["stem.conv_xy.weight"] = "s1.pathway0_stem.conv_xy.weight"
        out["stem.conv_t.weight"] = "s1.pathway0_stem.conv.weight"
        bn("stem.bn", "s1.pathway0_stem.bn")
    for s, stage in enumerate(model.stages):
        for i, block in enumerate(stage):
            ours = f"res{s + 2}.{i}"
            if pv:
                theirs = f"blocks.{s + 1}.res_blocks.{i}"
                names = {"shortcut": "branch1_conv", "shortcut_bn": "branch1_norm", "conv_a": "branch2.conv_a",
                         "bn_a": "branch2.norm_a", "conv_b": "branch2.conv_b", "bn_b": "branch2.norm_b.0",
                         "se.fc1": "branch2.norm_b.1.block.0", "se.fc2": "branch2.norm_b.1.block.2",
                         "conv_c": "branch2.conv_c", "bn_c": "branch2.norm_c"}
            else:
                theirs = f"s{s + 2}.pathway0_res{i}"
                names = {"shortcut": "branch1", "shortcut_bn": "branch1_bn", "conv_a": "branch2.a",
                         "bn_a": "branch2.a_bn", "conv_b": "branch2.b", "bn_b": "branch2.b_bn",
                         "se.fc1": "branch2.se.fc1", "se.fc2": "branch2.se.fc2", "conv_c": "branch2.c",
                         "bn_c": "branch2.c_bn"}
            if block.shortcut is not None:
                out[f"{ours}.shortcut.weight"] = f"{theirs}.{names['shortcut']}.weight"
                stride_only = block.shortcut.in_channels == block.shortcut.out_channels
                if block.shortcut_bn is not None and not (pv and stride_only):
                    bn(f"{ours}.shortcut_bn", f"{theirs}.{names['shortcut_bn']}")
            for conv in ("conv_a", "conv_b", "conv_c"):
                out[f"{ours}.{conv}.weight"] = f"{theirs}.{names[conv]}.weight"
            for norm in ("bn_a", "bn_b", "bn_c"):
                bn(f"{ours}.{norm}", f"{theirs}.{names[norm]}")
            if block.se is not None:
                for fc in ("se.fc1", "se.fc2"):
                    for p in ("weight", "bias"):
                        out[f"{ours}.{fc}.{p}"] = f"{theirs}.{names[fc]}.{p}"
    if pv:
        out["conv5.weight"] = "blocks.5.pool.pre_conv.weight"
        bn("bn5", "blocks.5.pool.pre_norm")
        out["fc1.weight"] = "blocks.5.pool.post_conv.weight"
        out["fc2.weight"], out["fc2.bias"] = "blocks.5.proj.weight", "blocks.5.proj.bias"
    else:
        out["conv5.weight"] = "head.conv_5.weight"
        bn("bn5", "head.conv_5_bn")
        out["fc1.weight"] = "head.lin_5.weight"
        out["fc2.weight"], out["fc2.bias"] = "head.projection.weight", "head.projection.bias"
    return out


def _is_identity_bn(bn: nn.modules.batchnorm._BatchNorm) -> bool:
    scale = bn.weight / (bn.running_var + bn.eps).sqrt()
    return bool(torch.allclose(scale, torch.ones_like(scale)) and not bn.bias.any() and not bn.running_mean.any())


def _is_fc(key: str) -> bool:
    """Linear weights here that are 1x1x1 convolution weights in the checkpoints."""
    return key == "fc1.weight" or (".se.fc" in key and key.endswith(".weight"))


def to_pytorchvideo_state_dict(model: X3D, source: str = "pytorchvideo") -> Dict[str, Tensor]:
    """This model's weights in a published checkpoint's layout (the inverse of the loader).

    Linear weights become 1x1x1 convolution weights. A stride-only shortcut norm (absent from the
    pytorchvideo layout) must be the identity, else this raises.
    """
    sd = model.state_dict()
    mapping = x3d_key_map(model, source)
    for key in sorted(set(sd) - set(mapping)):
        name = key.rsplit(".", 1)[0]
        bn = model.get_submodule(name) if name.endswith(".shortcut_bn") else None
        if bn is None:  # pragma: no cover - every other parameter is mapped
            raise KeyError(f"no checkpoint key for {key}")
        if not _is_identity_bn(bn):
            raise ValueError(f"{name} is not the identity; the pytorchvideo layout has no place for it "
                             "(export with source='slowfast')")
    out = {}
    for ours, theirs in mapping.items():
        t = sd[ours]
        out[theirs] = t.reshape(*t.shape, 1, 1, 1) if _is_fc(ours) else t
    return out


def _detect_source(keys) -> str:
    keys = list(keys)
    if any(k.startswith("blocks.0.conv.") for k in keys):
        return "pytorchvideo"
    if any(k.startswith("s1.pathway0_stem.") for k in keys):
        return "slowfast"
    raise ValueError("not an X3D checkpoint of pytorchvideo (blocks.0.conv.*) or SlowFast (s1.pathway0_stem.*)")


def _unwrap(state_dict: Mapping) -> Mapping:
    for key in ("model_state", "state_dict", "model"):
        if key in state_dict and isinstance(state_dict[key], Mapping):
            return state_dict[key]
    return state_dict


def convert_x3d_state_dict(state_dict: Mapping, model: X3D, source: str = "auto") -> Dict[str, Tensor]:
    """A pytorchvideo / SlowFast X3D checkpoint -> this model's state-dict keys and shapes.

    Accepts the raw state dict or the checkpoint file's dict (``{"model_state": ...}``) and a
    ``module.`` prefix (DistributedDataParallel). Keys the model lacks (e.g. ``num_batches_tracked``
    when absent) are simply not produced; unknown checkpoint keys raise.
    """
    sd = _unwrap(state_dict)
    if any(k.startswith("module.") for k in sd):
        sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}
    if source == "auto":
        source = _detect_source(sd)
    mapping = x3d_key_map(model, source)
    inverse = {theirs: ours for ours, theirs in mapping.items()}
    unknown = sorted(k for k in sd if k not in inverse)
    if unknown:
        raise KeyError(f"{len(unknown)} checkpoint keys do not belong to this X3D ({model.variant.name}, "
                       f"{source} layout): {unknown[:5]}{' ...' if len(unknown) > 5 else ''}; check the variant "
                       "(depths) and, for SlowFast checkpoints, stride_shortcut_norm=True")
    target = model.state_dict()
    out = {}
    for theirs, v in sd.items():
        ours = inverse[theirs]
        v = torch.as_tensor(v)
        if _is_fc(ours):
            v = v.reshape(v.shape[0], -1)
        if v.shape != target[ours].shape:
            raise ValueError(f"{theirs} has shape {tuple(v.shape)}, {ours} needs {tuple(target[ours].shape)}")
        out[ours] = v
    return out


def load_pytorchvideo_x3d(model: X3D, state_dict: Mapping, source: str = "auto", strict: bool = True) -> X3D:
    """Load a published X3D checkpoint (pytorchvideo or SlowFast layout) into ``model``.

    ``model`` is an :class:`X3D` or :class:`CoX3D` of the checkpoint's variant and classes (e.g.
    ``CoX3D("m", 400, pool_size=64)`` for ``X3D_M.pyth``). The norm of a stride-only shortcut
    (``res2.0``) that the checkpoint lacks (pytorchvideo layout) is set to the identity
    (``running_var = 1 - eps``: exact up to one rounding); build the model with
    ``stride_shortcut_norm=False`` to avoid it.
    ``strict``: every other parameter and buffer of the model must be in the checkpoint
    (``num_batches_tracked`` may be missing). Returns ``model``.
    """
    converted = convert_x3d_state_dict(state_dict, model, source)
    missing = set(model.state_dict()) - set(converted)
    for name, block in model.named_modules():
        if not isinstance(block, X3DBlock) or block.shortcut_bn is None:
            continue
        keys = {f"{name}.shortcut_bn.{k}" for k in _BN_KEYS}
        stride_only = block.shortcut.in_channels == block.shortcut.out_channels
        if stride_only and not keys & set(converted):
            bn = block.shortcut_bn
            with torch.no_grad():
                bn.weight.fill_(1.0)
                bn.bias.zero_()
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0 - bn.eps)
            missing -= keys
    missing = sorted(k for k in missing if not k.endswith("num_batches_tracked"))
    if strict and missing:
        raise KeyError(f"checkpoint lacks {len(missing)} keys of the model: {missing[:5]}"
                       f"{' ...' if len(missing) > 5 else ''}")
    model.load_state_dict(converted, strict=False)
    return model
