"""Skeleton-based action recognition: ST-GCN, AGCN, S-TR and their continual versions.

ROS-free model cores for the seed's section 3.3 / appendix 8.4 ("Online Skeleton-based
Action Recognition with Continual Spatio-Temporal Graph Convolutional Networks").

Regular (clip) models take ``(B, C, T, V, M)`` tensors: batch, coordinate channels, frames,
joints and persons, and return class logits ``(B, num_classes)`` averaged over persons.

* :class:`STGCN` -- 10 spatio-temporal blocks (channels 64x4, 128x3, 256x3, temporal kernel 9,
  stride 2 at blocks 5 and 8), 3-partition spatial graph convolution with a normalised adjacency
  and learnable edge importance (seed Eq. 2, 4), data batch-norm, global pooling and a linear
  classifier.
* :class:`AGCN` -- as ST-GCN with the adaptive graph convolution of seed Eq. 5-7: a learned
  additive graph ``B_p`` and a data-dependent similarity graph ``C_p``.
* :class:`STR` -- S-TR: blocks 4-10 replace the graph convolution by spatial multi-head
  self-attention between the joints of a frame (seed Eq. 8-10).

``temporal_padding=True`` (default) gives the published layout: temporal convolutions are
zero-padded to keep the clip length. ``temporal_padding=False`` removes the padding and
centre-crops the residuals accordingly; this is the regular network that the continual network
equals exactly ("conversion-optimal", ``Reg^{p=0}`` in the seed's Table I). ``strided=False``
sets every temporal stride to one (the ``*`` variants).

Continual models (:class:`CoSTGCN`, :class:`CoAGCN`, :class:`CoSTR`) hold the same parameters
under the same names as the regular models (``load_state_dict`` transfers weights), compute
``forward`` exactly like the unpadded regular model and add step-wise inference:

* ``forward_step(x)`` with ``x`` of shape ``(B, C, V, M)`` (or ``(B, C, V)`` for one person) takes
  one skeleton per person, returns logits ``(B, num_classes)`` averaged over persons, or ``None``
  during warm-up (the first ``delay`` steps) and on the steps a temporal stride skips.
* Temporal convolutions keep a FIFO of their last ``kernel_size`` inputs (no padding, ``p=0``),
  residuals are delayed by ``(kernel_size - 1) // 2`` steps to stay aligned (seed Eq. 13, 16),
  and global average pooling becomes a continual average over the last ``pool_size`` steps.
* After warm-up, the output at step ``t`` equals the unpadded regular model applied to the last
  ``receptive_field`` frames ``x[:, :, t - receptive_field + 1 : t + 1]``. With the ST-GCN strides
  (CoST-GCN) an output comes every 4th step, with ``strided=False`` (CoST-GCN*, CoAGCN*, CoS-TR*)
  every step.
* ``get_state()`` / ``set_state()`` return and install the whole continual state, so a caller
  can keep one state per tracked person; ``clean_state()`` resets.

Step inference is inference only: it uses batch-norm running statistics, needs
``model.eval()`` and runs without autograd.

State-dict keys follow the seed authors' public code, the OpenDR toolkit's
``skeleton_based_action_recognition`` models (``data_bn``, ``layers.layer{i}.gcn.g_conv.{p}``,
``gcn.graph_attn``, ``gcn.gcn_residual.{0,1}``, ``gcn.bn``, ``tcn.t_conv``, ``tcn.bn``,
``residual.t_conv/bn``, ``fc``); :func:`load_published_state_dict` loads such checkpoints (wrapped
or with ``module.``/``model.`` prefixes; the fixed graph ``A``, which that code does not save, is
rebuilt here) into the regular and the continual models alike. The original ST-GCN repository
(yysijie/st-gcn) uses a block without the graph-convolution residual of seed Eq. 2 and does not
load here.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "SkeletonLayout",
    "LAYOUTS",
    "get_layout",
    "spatial_partitions",
    "GraphConv",
    "AdaptiveGraphConv",
    "SpatialAttention",
    "SpatialAttentionUnit",
    "TemporalConv",
    "SpatioTemporalBlock",
    "SkeletonActionModel",
    "ContinualSkeletonActionModel",
    "STGCN",
    "AGCN",
    "STR",
    "CoSTGCN",
    "CoAGCN",
    "CoSTR",
    "MODEL_NAMES",
    "build_skeleton_model",
    "load_published_state_dict",
]


# --------------------------------------------------------------------------------------------
# Skeleton layouts and the spatial-partition adjacency
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SkeletonLayout:
    """A skeleton: joint names (their order is the tensor order), bones, and the centre joint.

    ``edges`` are 0-based joint index pairs. ``center`` is the joint whose hop distance defines
    the centripetal / centrifugal partitions (ST-GCN's stand-in for the centre of gravity).
    """

    name: str
    joints: Tuple[str, ...]
    edges: Tuple[Tuple[int, int], ...]
    center: int

    @property
    def num_nodes(self) -> int:
        return len(self.joints)


COCO18 = SkeletonLayout(
    name="coco18",
    joints=("nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
            "left_elbow", "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip",
            "left_knee", "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear"),
    # OpenPose COCO-18 order (as core.keypoints' "coco18"); the bones are ST-GCN's graph for
    # Kinetics-Skeleton, which attaches the hips to the shoulders (OpenPose draws them to the neck)
    edges=((4, 3), (3, 2), (7, 6), (6, 5), (13, 12), (12, 11), (10, 9), (9, 8), (11, 5),
           (8, 2), (5, 1), (2, 1), (0, 1), (15, 0), (14, 0), (17, 15), (16, 14)),
    center=1,  # neck
)

NTU25 = SkeletonLayout(
    name="ntu25",
    joints=("spine_base", "spine_mid", "neck", "head", "left_shoulder", "left_elbow", "left_wrist",
            "left_hand", "right_shoulder", "right_elbow", "right_wrist", "right_hand", "left_hip",
            "left_knee", "left_ankle", "left_foot", "right_hip", "right_knee", "right_ankle",
            "right_foot", "spine_shoulder", "left_hand_tip", "left_thumb", "right_hand_tip",
            "right_thumb"),
    # Kinect v2 / NTU RGB+D bones (1-based in the dataset documentation, 0-based here)
    edges=tuple((a - 1, b - 1) for a, b in (
        (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9),
        (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17),
        (19, 18), (20, 19), (22, 23), (23, 8), (24, 25), (25, 12))),
    center=20,  # spine_shoulder
)

LAYOUTS: Dict[str, SkeletonLayout] = {"coco18": COCO18, "ntu25": NTU25}


def get_layout(layout: Union[str, SkeletonLayout]) -> SkeletonLayout:
    """Return a :class:`SkeletonLayout` by name (``"coco18"`` or ``"ntu25"``) or pass one through."""
    if isinstance(layout, SkeletonLayout):
        return layout
    try:
        return LAYOUTS[str(layout).lower()]
    except KeyError:
        raise ValueError(f"unknown skeleton layout {layout!r}; choose one of {sorted(LAYOUTS)}") from None


def spatial_partitions(layout: Union[str, SkeletonLayout], normalization: str = "column") -> np.ndarray:
    """Spatial-configuration partitioning of ST-GCN: three ``(V, V)`` adjacency matrices.

    The 1-hop neighbourhood of every joint (itself included) is split into
    ``0``: the root (same hop distance to the centre joint, i.e. the joint itself on a tree),
    ``1``: centripetal neighbours (closer to the centre than the joint they feed), and
    ``2``: centrifugal neighbours (farther away). ``A[p, v, w]`` weights the message from joint
    ``v`` to joint ``w``; a graph convolution computes ``y[..., w] = sum_v x[..., v] A[p, v, w]``.

    ``normalization`` is applied to the whole 1-hop adjacency (with self loops) before the split:
    ``"column"`` divides column ``w`` by the degree of ``w`` (``A D^-1``, the public ST-GCN and
    2s-AGCN code), ``"symmetric"`` uses ``D^-1/2 A D^-1/2`` (seed Eq. 1).
    """
    layout = get_layout(layout)
    num = layout.num_nodes
    adj = np.eye(num)
    for a, b in layout.edges:
        adj[a, b] = adj[b, a] = 1.0
    # hop distance of every joint to the centre (breadth-first search)
    dist = np.full(num, np.inf)
    dist[layout.center] = 0
    frontier = [layout.center]
    while frontier:
        nxt = []
        for v in frontier:
            for w in np.flatnonzero(adj[v]):
                if dist[w] == np.inf:
                    dist[w] = dist[v] + 1
                    nxt.append(w)
        frontier = nxt
    if np.isinf(dist).any():
        raise ValueError(f"skeleton layout {layout.name!r} is not connected")
    deg = adj.sum(0)
    if normalization == "column":
        norm = adj / deg[None, :]
    elif normalization == "symmetric":
        norm = adj / np.sqrt(deg[:, None] * deg[None, :])
    else:
        raise ValueError(f"normalization must be 'column' or 'symmetric', got {normalization!r}")
    A = np.zeros((3, num, num))
    for v, w in zip(*np.nonzero(adj)):
        p = 0 if dist[v] == dist[w] else (1 if dist[v] > dist[w] else 2)
        A[p, v, w] = norm[v, w]
    return A


# --------------------------------------------------------------------------------------------
# Spatial (per-frame) modules. All take (N, C, T, V) and never mix frames, except the original
# clip-wide AGCN attention (``frame_attention=False``).
# --------------------------------------------------------------------------------------------


class GraphConv(nn.Module):
    """ST-GCN spatial graph convolution (seed Eq. 2).

    ``relu(BN(sum_p W_p(x (A_p * M_p))) + Res(x))`` with fixed partitions ``A`` (buffer), learnable
    edge importance ``M`` (``graph_attn``, initialised to ones), one 1x1 convolution per partition
    (``g_conv``) and a 1x1 convolution + BN residual (``gcn_residual``) when channels change.
    """

    def __init__(self, in_channels: int, out_channels: int, A: Tensor):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.register_buffer("A", torch.as_tensor(A, dtype=torch.get_default_dtype()).clone())
        self.graph_attn = nn.Parameter(torch.ones_like(self.A))
        self.g_conv = nn.ModuleList(nn.Conv2d(in_channels, out_channels, 1) for _ in range(self.A.shape[0]))
        self.gcn_residual = (nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels))
                             if in_channels != out_channels else None)
        self.bn = nn.BatchNorm2d(out_channels)

    def aggregate(self, x: Tensor) -> Tensor:
        """``x (N, C, T, V)`` -> ``(N, K, C, T, V)``: messages along each partition's edges."""
        N, C, T, V = x.shape
        A = self.A * self.graph_attn
        return torch.matmul(x.reshape(N, 1, C * T, V), A).reshape(N, -1, C, T, V)

    def forward(self, x: Tensor) -> Tensor:
        xa = self.aggregate(x)
        y = self.g_conv[0](xa[:, 0])
        for k in range(1, len(self.g_conv)):
            y = y + self.g_conv[k](xa[:, k])
        y = self.bn(y)
        y = y + (x if self.gcn_residual is None else self.gcn_residual(x))
        return F.relu(y)


class AdaptiveGraphConv(GraphConv):
    """AGCN adaptive graph convolution (seed Eq. 5-7).

    The adjacency of partition ``p`` is ``A_p + B_p + C_p``: ``B_p`` (``graph_attn``) is learned,
    initialised to 1e-6; ``C_p = softmax(theta(x)^T phi(x))`` is a data-dependent joint similarity
    (1x1 embeddings ``a_conv``/``b_conv`` with ``out_channels // embed_factor`` channels, softmax over
    the source joint). With ``frame_attention=False`` (original AGCN) ``C_p`` is computed once from
    all frames of the clip; with ``True`` it is computed per frame, which is what a continual
    network can do causally (CoAGCN) and what the unpadded regular model must use to equal it.
    """

    def __init__(self, in_channels: int, out_channels: int, A: Tensor, frame_attention: bool = False,
                 embed_factor: int = 4):
        super().__init__(in_channels, out_channels, A)
        nn.init.constant_(self.graph_attn, 1e-6)
        self.frame_attention = bool(frame_attention)
        self.inter_channels = max(1, out_channels // embed_factor)
        K = self.A.shape[0]
        self.a_conv = nn.ModuleList(nn.Conv2d(in_channels, self.inter_channels, 1) for _ in range(K))
        self.b_conv = nn.ModuleList(nn.Conv2d(in_channels, self.inter_channels, 1) for _ in range(K))

    def forward(self, x: Tensor) -> Tensor:
        N, C, T, V = x.shape
        A = self.A + self.graph_attn
        y = None
        for k in range(A.shape[0]):
            a, b = self.a_conv[k](x), self.b_conv[k](x)  # (N, c, T, V)
            if self.frame_attention:
                sim = torch.einsum("nctv,nctw->ntvw", a, b) / self.inter_channels
                graph = torch.softmax(sim, dim=-2) + A[k]  # (N, T, V, V)
                xa = torch.einsum("nctv,ntvw->nctw", x, graph)
            else:
                sim = torch.einsum("nctv,nctw->nvw", a, b) / (self.inter_channels * T)
                graph = torch.softmax(sim, dim=-2) + A[k]  # (N, V, V)
                xa = torch.matmul(x.reshape(N, C * T, V), graph).reshape(N, C, T, V)
            z = self.g_conv[k](xa)
            y = z if y is None else y + z
        y = self.bn(y)
        y = y + (x if self.gcn_residual is None else self.gcn_residual(x))
        return F.relu(y)


class SpatialAttention(nn.Module):
    """Multi-head self-attention between the joints of each frame (S-TR, seed Eq. 8-10).

    ``qkv_conv`` (1x1) gives queries/keys (``dk`` channels each) and values (``dv``), split into
    ``heads``; ``softmax_j(q_i k_j / sqrt(dk_h)) v_j`` per head, heads concatenated and mixed by
    ``attn_out`` (1x1). ``(N, C, T, V) -> (N, dv, T, V)``.
    """

    def __init__(self, in_channels: int, dk: int, dv: int, heads: int):
        super().__init__()
        if heads < 1 or dk % heads or dv % heads or dk == 0:
            raise ValueError(f"spatial attention needs dk ({dk}) and dv ({dv}) divisible by heads ({heads})")
        self.dk, self.dv, self.heads = dk, dv, heads
        self.qkv_conv = nn.Conv2d(in_channels, 2 * dk + dv, 1)
        self.attn_out = nn.Conv2d(dv, dv, 1)

    def forward(self, x: Tensor) -> Tensor:
        N, _, T, V = x.shape
        h = self.heads
        q, k, v = torch.split(self.qkv_conv(x), [self.dk, self.dk, self.dv], dim=1)
        q = q.reshape(N, h, self.dk // h, T, V) * (self.dk // h) ** -0.5
        k = k.reshape(N, h, self.dk // h, T, V)
        v = v.reshape(N, h, self.dv // h, T, V)
        weights = torch.softmax(torch.einsum("nhctv,nhctw->nhtvw", q, k), dim=-1)
        out = torch.einsum("nhtvw,nhctw->nhctv", weights, v).reshape(N, self.dv, T, V)
        return self.attn_out(out)


class SpatialAttentionUnit(nn.Module):
    """S-TR's replacement of the graph convolution in blocks 4-10.

    ``relu(BN(SSA(data_bn(x)) + x))`` (the skip only when channels are equal), with a per-unit
    batch-norm over (channel, joint) pairs (``data_bn``). The seed authors' code also registers the
    adjacency as a parameter that attention-only units never use; it is left out here.
    """

    def __init__(self, in_channels: int, out_channels: int, num_nodes: int, heads: int = 8,
                 dk_factor: float = 0.25):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.data_bn = nn.BatchNorm1d(in_channels * num_nodes)
        self.attention_conv = SpatialAttention(in_channels, int(out_channels * dk_factor), out_channels, heads)
        self.bn = nn.BatchNorm2d(out_channels)
        self.skip = in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        N, C, T, V = x.shape
        xn = self.data_bn(x.permute(0, 1, 3, 2).reshape(N, C * V, T)).reshape(N, C, V, T).permute(0, 1, 3, 2)
        y = self.attention_conv(xn)
        if self.skip:
            y = y + x
        return F.relu(self.bn(y))


# --------------------------------------------------------------------------------------------
# Temporal convolution and the spatio-temporal block
# --------------------------------------------------------------------------------------------


class TemporalConv(nn.Module):
    """``BN(Conv2d(kernel (k, 1), stride (s, 1), padding (p, 0)))`` over ``(N, C, T, V)``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 9, stride: int = 1,
                 padding: int = 0):
        super().__init__()
        self.t_conv = nn.Conv2d(in_channels, out_channels, (kernel_size, 1), (stride, 1), (padding, 0))
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.t_conv(x))


def _bn_step(bn: nn.BatchNorm2d, x: Tensor) -> Tensor:
    """A BatchNorm2d applied to one step ``(N, C, V)`` (running statistics)."""
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)


class SpatioTemporalBlock(nn.Module):
    """One spatio-temporal block (seed Eq. 4 / Eq. 16): ``relu(Res(x) + BN(TC(GC(x))))``.

    ``gcn`` is any per-frame module ``(N, C_in, T, V) -> (N, C_out, T, V)``. The residual is
    nothing (``residual=False``), the identity (same channels, stride 1) or a strided 1x1
    :class:`TemporalConv`. Without temporal padding the temporal convolution shortens the clip by
    ``kernel_size - 1`` frames and the residual is centre-cropped by ``(kernel_size - 1) // 2``
    frames per side, which keeps both branches aligned.

    Step inference (``_forward_step``, used by the continual models) needs
    ``temporal_padding=False``: the block keeps its last ``kernel_size`` GC outputs and its inputs
    of the last ``(kernel_size - 1) // 2`` steps (the delayed residual), and returns an output on the
    steps where the strided temporal convolution produces one.
    """

    def __init__(self, gcn: nn.Module, in_channels: int, out_channels: int, stride: int = 1,
                 residual: bool = True, kernel_size: int = 9, temporal_padding: bool = True):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"temporal kernel_size must be odd and positive, got {kernel_size}")
        self.kernel_size, self.stride = int(kernel_size), int(stride)
        self.temporal_padding = bool(temporal_padding)
        self.half = (kernel_size - 1) // 2
        self.gcn = gcn
        self.tcn = TemporalConv(out_channels, out_channels, kernel_size, stride,
                                self.half if temporal_padding else 0)
        if not residual:
            self.residual_mode = "none"
            self.residual = None
        elif in_channels == out_channels and stride == 1:
            self.residual_mode = "identity"
            self.residual = None
        else:
            self.residual_mode = "conv"
            self.residual = TemporalConv(in_channels, out_channels, 1, stride, 0)

    def output_length(self, t: int) -> int:
        """Temporal length of the output for an input of ``t`` frames."""
        pad = self.half if self.temporal_padding else 0
        return (t + 2 * pad - self.kernel_size) // self.stride + 1

    def forward(self, x: Tensor) -> Tensor:
        T = x.shape[2]
        if self.output_length(T) < 1:
            raise ValueError(f"a clip of {T} frames is shorter than the temporal kernel ({self.kernel_size})")
        z = self.tcn(self.gcn(x))
        if self.residual_mode == "none":
            return F.relu(z)
        xr = x if self.temporal_padding or self.half == 0 else x[:, :, self.half:T - self.half]
        r = xr if self.residual_mode == "identity" else self.residual(xr)
        return F.relu(z + r)

    # -- continual step ------------------------------------------------------------------------
    def init_state(self) -> dict:
        return {"n": 0, "gc": deque(maxlen=self.kernel_size), "res": deque(maxlen=self.half + 1)}

    def _forward_step(self, x: Tensor, state: Optional[dict]) -> Tuple[Optional[Tensor], dict]:
        """One step ``(N, C_in, V)`` -> ``(N, C_out, V)`` or ``None``; ``state`` is updated in place."""
        if self.temporal_padding:
            raise RuntimeError("step inference needs a block without temporal padding")
        if state is None:
            state = self.init_state()
        state["gc"].append(self.gcn(x.unsqueeze(2)).squeeze(2))
        if self.residual_mode != "none":
            state["res"].append(x)
        i = state["n"]
        state["n"] = i + 1
        first = self.kernel_size - 1
        if i < first or (i - first) % self.stride:
            return None, state
        window = torch.stack(tuple(state["gc"]), dim=2)  # (N, C, K, V), oldest first
        conv = self.tcn.t_conv
        z = F.conv2d(window, conv.weight, conv.bias).squeeze(2)
        z = _bn_step(self.tcn.bn, z)
        if self.residual_mode == "none":
            return F.relu(z), state
        xr = state["res"][0]  # the input of `half` steps ago: centre of the temporal window
        if self.residual_mode == "conv":
            rc = self.residual.t_conv
            xr = _bn_step(self.residual.bn, F.conv2d(xr.unsqueeze(2), rc.weight, rc.bias).squeeze(2))
        return F.relu(z + xr), state


# --------------------------------------------------------------------------------------------
# Whole models
# --------------------------------------------------------------------------------------------

ARCHS = ("stgcn", "agcn", "str")
_STRIDES = (1, 1, 1, 1, 2, 1, 1, 2, 1, 1)
_WIDTH_MULT = (1, 1, 1, 1, 2, 2, 2, 4, 4, 4)


class SkeletonActionModel(nn.Module):
    """Regular ST-GCN-family action recogniser over clips ``(B, C, T, V, M)``.

    Args:
        num_classes: number of action classes.
        layout: ``"coco18"``, ``"ntu25"`` or a :class:`SkeletonLayout`.
        arch: ``"stgcn"``, ``"agcn"`` or ``"str"``.
        in_channels: input channels per joint (3: x, y, z or x, y, confidence).
        num_persons: persons per clip ``M`` the data batch-norm is built for (2 for NTU and
            Kinetics-Skeleton). Inputs with fewer persons use the statistics of the first ones.
        temporal_padding: zero-pad the temporal convolutions (published models) or not (the
            network the continual model equals).
        strided: temporal stride 2 in blocks 5 and 8 (True) or stride 1 everywhere (``*`` models).
        base_channels: width of blocks 1-4 (64); blocks 5-7 and 8-10 use 2x and 4x.
        temporal_kernel_size: temporal kernel (9).
        normalization: adjacency normalisation, see :func:`spatial_partitions`.
        frame_attention: AGCN only: compute the data-dependent graph per frame (needed to equal
            CoAGCN) instead of once per clip.
        attention_heads: S-TR only: heads of the spatial self-attention (8).
    """

    arch: str = "stgcn"

    def __init__(self, num_classes: int, layout: Union[str, SkeletonLayout] = "ntu25", *,
                 arch: Optional[str] = None, in_channels: int = 3, num_persons: int = 2,
                 temporal_padding: bool = True, strided: bool = True, base_channels: int = 64,
                 temporal_kernel_size: int = 9, normalization: str = "column",
                 frame_attention: bool = False, attention_heads: int = 8):
        super().__init__()
        if arch is not None:
            self.arch = arch
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}")
        if num_classes < 1 or in_channels < 1 or num_persons < 1 or base_channels < 1:
            raise ValueError("num_classes, in_channels, num_persons and base_channels must be positive")
        self.layout = get_layout(layout)
        self.num_classes, self.in_channels, self.num_persons = int(num_classes), int(in_channels), int(num_persons)
        self.temporal_padding, self.strided = bool(temporal_padding), bool(strided)
        self.frame_attention = bool(frame_attention)
        V = self.layout.num_nodes
        A = torch.as_tensor(spatial_partitions(self.layout, normalization), dtype=torch.get_default_dtype())

        self.data_bn = nn.BatchNorm1d(num_persons * in_channels * V)
        layers = {}
        c_in = in_channels
        for i, (mult, stride) in enumerate(zip(_WIDTH_MULT, _STRIDES)):
            c_out = base_channels * mult
            if self.arch == "stgcn" or (self.arch == "str" and i < 3):
                gcn = GraphConv(c_in, c_out, A)
            elif self.arch == "agcn":
                gcn = AdaptiveGraphConv(c_in, c_out, A, frame_attention=frame_attention)
            else:
                gcn = SpatialAttentionUnit(c_in, c_out, V, heads=attention_heads)
            layers[f"layer{i + 1}"] = SpatioTemporalBlock(
                gcn, c_in, c_out, stride=stride if strided else 1, residual=i > 0,
                kernel_size=temporal_kernel_size, temporal_padding=temporal_padding)
            c_in = c_out
        self.layers = nn.ModuleDict(layers)
        self.fc = nn.Linear(c_in, num_classes)

    # -- helpers -----------------------------------------------------------------------------
    @property
    def blocks(self) -> List[SpatioTemporalBlock]:
        return list(self.layers.values())

    def _data_norm(self, x: Tensor, persons: int) -> Tensor:
        """Data batch-norm of ``(B, M*V*C[, T])`` features for ``persons <= num_persons``."""
        bn = self.data_bn
        if persons == self.num_persons:
            return bn(x)
        if persons > self.num_persons:
            raise ValueError(f"input has {persons} persons; the model was built for at most {self.num_persons}")
        n = x.shape[1]
        return F.batch_norm(x, bn.running_mean[:n], bn.running_var[:n], bn.weight[:n], bn.bias[:n],
                            bn.training, bn.momentum if bn.momentum is not None else 0.1, bn.eps)

    def _check_clip(self, x: Tensor) -> Tensor:
        if x.dim() == 4:
            x = x.unsqueeze(-1)
        if x.dim() != 5:
            raise ValueError(f"expected a clip (B, C, T, V, M), got shape {tuple(x.shape)}")
        _, C, _, V, _ = x.shape
        if C != self.in_channels or V != self.layout.num_nodes:
            raise ValueError(f"expected {self.in_channels} channels and {self.layout.num_nodes} joints "
                             f"({self.layout.name}), got shape {tuple(x.shape)}")
        return x

    def output_length(self, frames: int) -> int:
        """Temporal length after the 10 blocks for a clip of ``frames`` frames."""
        t = frames
        for block in self.blocks:
            t = block.output_length(t)
            if t < 1:
                return 0
        return t

    def features(self, x: Tensor) -> Tensor:
        """Block features ``(B*M, C_last, T', V)`` of a clip ``(B, C, T, V, M)``."""
        x = self._check_clip(x)
        B, C, T, V, M = x.shape
        x = self._data_norm(x.permute(0, 4, 3, 1, 2).reshape(B, M * V * C, T), M)
        x = x.reshape(B, M, V, C, T).permute(0, 1, 3, 4, 2).reshape(B * M, C, T, V)
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(B, num_classes)`` of clips ``(B, C, T, V, M)`` (``M`` may be omitted)."""
        x = self._check_clip(x)
        B, M = x.shape[0], x.shape[-1]
        f = self.features(x)
        f = f.reshape(B, M, f.shape[1], -1).mean(3).mean(1)
        return self.fc(f)


class ContinualSkeletonActionModel(SkeletonActionModel):
    """Continual ST-GCN-family model: the unpadded regular model plus step-wise inference.

    Args:
        clip_len: clip length (frames) the weights were trained on (300 for NTU/Kinetics); it
            fixes the continual pooling window ``pool_size`` = the temporal length that the unpadded
            regular model has after its blocks for such a clip.
        pool_size: set the pooling window directly instead (overrides ``clip_len``).
        Other arguments as :class:`SkeletonActionModel` (``temporal_padding`` is always off;
        AGCN computes its data-dependent graph per frame).

    Properties: ``stride`` (steps per prediction), ``receptive_field`` (frames one output sees),
    ``delay`` (= ``receptive_field - 1``: the number of leading steps that return ``None``).
    """

    def __init__(self, num_classes: int, layout: Union[str, SkeletonLayout] = "ntu25", *,
                 clip_len: int = 300, pool_size: Optional[int] = None, **kwargs):
        if kwargs.pop("temporal_padding", False):
            raise ValueError("continual models have no temporal padding")
        kwargs.pop("frame_attention", None)
        super().__init__(num_classes, layout, temporal_padding=False, frame_attention=True, **kwargs)
        if pool_size is None:
            pool_size = self.output_length(int(clip_len))
            if pool_size < 1:
                raise ValueError(f"clip_len={clip_len} is shorter than the blocks' receptive field "
                                 f"({self._blocks_receptive_field()} frames)")
        if pool_size < 1:
            raise ValueError(f"pool_size must be positive, got {pool_size}")
        self.pool_size = int(pool_size)
        self._state: Optional[dict] = None

    # -- geometry ------------------------------------------------------------------------------
    def _blocks_receptive_field(self) -> int:
        r, s = 1, 1
        for block in self.blocks:
            r += (block.kernel_size - 1) * s
            s *= block.stride
        return r

    @property
    def stride(self) -> int:
        """Network stride: a prediction every ``stride`` steps after warm-up (seed Eq. 14)."""
        return int(np.prod([block.stride for block in self.blocks]))

    @property
    def receptive_field(self) -> int:
        """Frames that one output depends on: blocks' receptive field + pooling window."""
        return self._blocks_receptive_field() + (self.pool_size - 1) * self.stride

    @property
    def delay(self) -> int:
        """Steps that return ``None`` before the first prediction."""
        return self.receptive_field - 1

    # -- state ---------------------------------------------------------------------------------
    def clean_state(self) -> None:
        """Forget the stream: the next ``delay`` steps return ``None`` again."""
        self._state = None

    def get_state(self) -> Optional[dict]:
        """The live continual state (or ``None`` before the first step).

        It is a dict of Python containers holding tensors; stepping the model updates it in
        place, so after ``set_state(s)`` the object ``s`` follows the stream. Keep one per tracked
        person; use ``copy.deepcopy`` for a snapshot.
        """
        return self._state

    def set_state(self, state: Optional[dict]) -> None:
        """Install a state returned by :meth:`get_state` (``None`` = fresh)."""
        if state is not None and (not isinstance(state, dict) or "layers" not in state
                                  or len(state["layers"]) != len(self.layers)):
            raise ValueError("not a state of this model (use get_state() of the same architecture)")
        self._state = state

    # -- step inference ------------------------------------------------------------------------
    @torch.no_grad()
    def forward_step(self, x: Tensor) -> Optional[Tensor]:
        """One skeleton per person ``(B, C, V, M)`` or ``(B, C, V)`` -> logits ``(B, classes)`` or ``None``.

        Inference only: runs without autograd and needs ``eval()`` mode.
        """
        if self.training:
            raise RuntimeError("forward_step is an inference path; call model.eval() first")
        if x.dim() == 3:
            x = x.unsqueeze(-1)
        if x.dim() != 4 or x.shape[1] != self.in_channels or x.shape[2] != self.layout.num_nodes:
            raise ValueError(f"expected a step (B, {self.in_channels}, {self.layout.num_nodes}, M), "
                             f"got shape {tuple(x.shape)}")
        B, C, V, M = x.shape
        state = self._state
        if state is None:
            state = self._state = {"batch": (B, M), "layers": [None] * len(self.layers),
                                   "pool": deque(maxlen=self.pool_size)}
        elif state["batch"] != (B, M):
            raise ValueError(f"the state was built for (batch, persons)={state['batch']}, got {(B, M)}; "
                             "call clean_state() or set_state() first")
        h = self._data_norm(x.permute(0, 3, 2, 1).reshape(B, M * V * C), M)
        h = h.reshape(B, M, V, C).permute(0, 1, 3, 2).reshape(B * M, C, V)
        layer_states = state["layers"]
        for i, block in enumerate(self.blocks):
            h, layer_states[i] = block._forward_step(h, layer_states[i])
            if h is None:
                return None
        pool = state["pool"]
        pool.append(h.mean(-1))
        if len(pool) < self.pool_size:
            return None
        f = torch.stack(tuple(pool), 0).mean(0)
        return self.fc(f.reshape(B, M, -1).mean(1))

    def forward_steps(self, x: Tensor) -> Optional[Tensor]:
        """Step through a clip ``(B, C, T, V, M)``; the outputs stacked to ``(B, classes, n)`` or ``None``."""
        x = self._check_clip(x)
        outs = [y for y in (self.forward_step(x[:, :, t]) for t in range(x.shape[2])) if y is not None]
        return torch.stack(outs, dim=2) if outs else None


class STGCN(SkeletonActionModel):
    """ST-GCN (Yan et al. 2018) as specified by seed Eq. 2 and 4."""

    arch = "stgcn"


class AGCN(SkeletonActionModel):
    """AGCN (Shi et al. 2019) adaptive-graph variant, seed Eq. 5-7."""

    arch = "agcn"


class STR(SkeletonActionModel):
    """S-TR (Plizzari et al. 2021): spatial self-attention in blocks 4-10."""

    arch = "str"


class CoSTGCN(ContinualSkeletonActionModel):
    """Continual ST-GCN; ``strided=False`` gives CoST-GCN*."""

    arch = "stgcn"


class CoAGCN(ContinualSkeletonActionModel):
    """Continual AGCN (per-frame data-dependent graph); ``strided=False`` gives CoAGCN*."""

    arch = "agcn"


class CoSTR(ContinualSkeletonActionModel):
    """Continual S-TR; ``strided=False`` gives CoS-TR*."""

    arch = "str"


_FACTORY = {
    "stgcn": (STGCN, {}), "agcn": (AGCN, {}), "str": (STR, {}),
    "stgcn*": (STGCN, {"strided": False, "temporal_padding": False}),
    "agcn*": (AGCN, {"strided": False, "temporal_padding": False, "frame_attention": True}),
    "str*": (STR, {"strided": False, "temporal_padding": False}),
    "costgcn": (CoSTGCN, {}), "coagcn": (CoAGCN, {}), "costr": (CoSTR, {}),
    "costgcn*": (CoSTGCN, {"strided": False}), "coagcn*": (CoAGCN, {"strided": False}),
    "costr*": (CoSTR, {"strided": False}),
}
MODEL_NAMES = tuple(_FACTORY)


def build_skeleton_model(name: str, num_classes: int, layout: Union[str, SkeletonLayout] = "ntu25",
                         in_channels: int = 3, **kwargs) -> SkeletonActionModel:
    """Build a skeleton action model by name.

    ``name``: ``"stgcn"``, ``"agcn"``, ``"str"`` (regular, padded, strided as published);
    ``"stgcn*"``, ``"agcn*"``, ``"str*"`` (regular, unpadded, stride 1: the networks the ``*``
    continual models equal); ``"costgcn"``, ``"coagcn"``, ``"costr"`` (continual, an output every
    4th step); ``"costgcn*"``, ``"coagcn*"``, ``"costr*"`` (continual, an output every step).
    Further keyword arguments go to the model class (e.g. ``clip_len``, ``num_persons``,
    ``base_channels``, ``temporal_padding``).
    """
    key = str(name).lower().replace("-", "")
    if key not in _FACTORY:
        raise ValueError(f"unknown skeleton model {name!r}; choose one of {list(MODEL_NAMES)}")
    cls, defaults = _FACTORY[key]
    return cls(num_classes, layout, in_channels=in_channels, **{**defaults, **kwargs})


_WRAPPERS = ("state_dict", "model_state_dict", "model")
_PREFIXES = ("module.", "model.")


def load_published_state_dict(model: SkeletonActionModel, checkpoint, strict: bool = True) -> SkeletonActionModel:
    """Load an OpenDR / seed-authors ST-GCN-family checkpoint into ``model`` (regular or continual).

    ``checkpoint``: a state dict, or a dict holding one under ``state_dict``, ``model_state_dict`` or
    ``model`` (``torch.load`` output); ``module.`` (DataParallel) and ``model.`` (Lightning) prefixes
    are removed. The checkpoint's layout does not store the fixed partition adjacency ``A`` (a
    plain tensor in that code), so the model keeps its own. Continual and regular models share the
    names, so one checkpoint serves both; the continual model computes the UNPADDED network, so
    the weights of a padded (published) model give slightly different outputs at the clip ends,
    which the seed's Table I measures. Raises ``ValueError`` naming the missing, unexpected or
    mis-shaped keys (e.g. a checkpoint for 60 classes loaded into a 400-class model).
    """
    state = checkpoint
    while isinstance(state, dict) and len(state) and any(k in state for k in _WRAPPERS) \
            and not any(isinstance(v, torch.Tensor) for v in state.values()):
        state = next(state[k] for k in _WRAPPERS if k in state)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError("the checkpoint holds no state dict of tensors")
    renamed = {}
    for key, value in state.items():
        for prefix in _PREFIXES:
            while key.startswith(prefix):
                key = key[len(prefix):]
        renamed[key] = value
    own = model.state_dict()
    for key, value in own.items():  # the fixed graphs the published code keeps out of its state dict
        if key.endswith("gcn.A") and key not in renamed:
            renamed[key] = value
    missing = sorted(set(own) - set(renamed))
    unexpected = sorted(set(renamed) - set(own))
    shapes = sorted(f"{k}: checkpoint {tuple(renamed[k].shape)} vs model {tuple(own[k].shape)}"
                    for k in set(own) & set(renamed) if renamed[k].shape != own[k].shape)
    problems = ([f"missing {missing[:8]}{' ...' if len(missing) > 8 else ''}"] if missing and strict else []) + \
               ([f"unexpected {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}"] if unexpected and strict else []) + \
               ([f"shape mismatch {shapes[:4]}"] if shapes else [])
    if problems:
        raise ValueError(f"checkpoint does not fit {type(model).__name__} ({model.layout.name}, "
                         f"{model.num_classes} classes, {model.in_channels} channels, {model.num_persons} persons): "
                         + "; ".join(problems))
    model.load_state_dict({k: v for k, v in renamed.items() if k in own}, strict=strict)
    return model
