"""ST-GCN / AGCN / S-TR and their continual versions (seed 3.3, appendix 8.4).

Equivalence tests run in float64 with random weights (batch-norm statistics, affine parameters
and edge importances randomised too) on narrow networks (``base_channels=8``) with the real depth
(10 blocks), temporal kernel 9 and strides; full-size networks are only built for parameter and
MAC counts.
"""
import copy

import numpy as np
import pytest
import torch

from opendr_perception.core.flops import count_macs, macs_per_prediction
from opendr_perception.models.skeleton_gcn import (
    AGCN, COCO18, LAYOUTS, MODEL_NAMES, NTU25, STGCN, STR, CoSTGCN, build_skeleton_model,
    spatial_partitions)

SMALL = dict(base_channels=8, attention_heads=2)


pytestmark = pytest.mark.usefixtures("float64_default")


def randomize(model, seed=0):
    """Random BN statistics/affines and edge weights, so that no term is an identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.5 / max(1, p[0].numel()) ** 0.5 if p.dim() > 1 else 0.3))
        for name, p in model.named_parameters():
            if "graph_attn" in name:
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
    return model.eval()


def continual_and_regular(name, layout, clip_len, **kw):
    co = randomize(build_skeleton_model(name, 5, layout, clip_len=clip_len, **SMALL, **kw))
    reg = build_skeleton_model(name.replace("co", "", 1), 5, layout, temporal_padding=False,
                               strided=co.strided, frame_attention=True, **SMALL, **kw).eval()
    reg.load_state_dict(co.state_dict())
    return co, reg


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1.0)).item()


def stream(co, x):
    with torch.no_grad():
        return [co.forward_step(x[:, :, t]) for t in range(x.shape[2])]


# ------------------------------------------------------------------------------------------
# graphs
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", [COCO18, NTU25])
def test_spatial_partitions(layout):
    V = layout.num_nodes
    assert V == {"coco18": 18, "ntu25": 25}[layout.name]
    assert len(layout.edges) == V - 1  # both skeletons are trees
    A = spatial_partitions(layout)
    assert A.shape == (3, V, V)
    adj = np.eye(V)
    for a, b in layout.edges:
        adj[a, b] = adj[b, a] = 1
    # column normalisation: the messages into every joint sum to one; support = 1-hop graph
    np.testing.assert_allclose(A.sum((0, 1)), np.ones(V))
    np.testing.assert_array_equal(A.sum(0) > 0, adj > 0)
    np.testing.assert_allclose(np.diag(A[0]), 1 / adj.sum(0))
    assert not (A[0] - np.diag(np.diag(A[0]))).any()  # root partition = the joint itself
    # centripetal (1) and centrifugal (2) partitions are transposes of each other's support
    np.testing.assert_array_equal(A[1] > 0, (A[2] > 0).T)
    S = spatial_partitions(layout, "symmetric")
    np.testing.assert_allclose(S.sum(0), S.sum(0).T)
    with pytest.raises(ValueError):
        spatial_partitions(layout, "rows")


def test_partition_directions():
    A = spatial_partitions("coco18")
    j = COCO18.joints.index
    # the elbow's message to the shoulder flows towards the neck (centripetal) and vice versa
    assert A[1, j("right_elbow"), j("right_shoulder")] > 0 and A[2, j("right_shoulder"), j("right_elbow")] > 0
    assert A[1, j("nose"), j("neck")] > 0 and A[2, j("left_eye"), j("left_ear")] > 0
    # same joint order as the pose estimators' coco18 keypoints
    from opendr_perception.core.keypoints import LAYOUTS as KEYPOINT_LAYOUTS
    assert COCO18.joints == KEYPOINT_LAYOUTS["coco18"].names
    A = spatial_partitions("ntu25")
    k = NTU25.joints.index
    assert NTU25.center == k("spine_shoulder")
    assert A[1, k("head"), k("neck")] > 0 and A[2, k("spine_mid"), k("spine_base")] > 0
    assert set(LAYOUTS) == {"coco18", "ntu25"}


# ------------------------------------------------------------------------------------------
# continual == unpadded regular over sliding windows
# ------------------------------------------------------------------------------------------

CASES = [  # (name, layout, clip_len): stride-4 models need long clips (receptive field 153)
    ("costgcn", "ntu25", 166),
    ("costgcn*", "coco18", 90),
    ("costgcn*", "ntu25", 88),
    ("coagcn*", "ntu25", 90),
    ("costr*", "coco18", 90),
    ("coagcn", "coco18", 160),
    ("costr", "ntu25", 160),
]


@pytest.mark.parametrize("name,layout,clip_len", CASES)
def test_continual_equals_unpadded_regular(name, layout, clip_len):
    torch.manual_seed(1)
    co, reg = continual_and_regular(name, layout, clip_len)
    R, s, d = co.receptive_field, co.stride, co.delay
    assert s == (1 if name.endswith("*") else 4) and d == R - 1
    assert reg.output_length(R) == co.pool_size and R <= clip_len
    x = torch.randn(2, 3, d + 3 * s + 2, co.layout.num_nodes, 2)
    outs = stream(co, x)
    emitted = [t for t, y in enumerate(outs) if y is not None]
    # warm-up = delay, then one prediction every `stride` steps
    assert emitted == list(range(d, x.shape[2], s)) and len(emitted) >= 3
    worst = 0.0
    with torch.no_grad():
        for t in emitted:
            ref = reg(x[:, :, t - R + 1:t + 1])
            assert outs[t].shape == ref.shape == (2, 5)
            worst = max(worst, rel_err(outs[t], ref))
        # the continual model's own clip forward is the unpadded regular forward
        torch.testing.assert_close(co(x[:, :, :R]), reg(x[:, :, :R]), rtol=0, atol=1e-12)
    print(f"{name} {layout}: receptive field {R}, delay {d}, stride {s}, max rel. error {worst:.1e}")
    assert worst < 1e-10


def test_padded_regular_differs():
    torch.manual_seed(2)
    co, reg = continual_and_regular("costgcn*", "coco18", 90)
    padded = build_skeleton_model("stgcn*", 5, "coco18", temporal_padding=True, **SMALL).eval()
    padded.load_state_dict(co.state_dict())
    x = torch.randn(1, 3, co.receptive_field, 18, 2)
    with torch.no_grad():
        y = stream(co, x)[-1]
        exact, pad = reg(x), padded(x)
    assert rel_err(y, exact) < 1e-10
    print(f"padded regular vs continual: max rel. difference {rel_err(pad, exact):.2e}")
    assert rel_err(pad, exact) > 1e-3


def test_clip_attention_agcn_differs_from_frame_attention():
    torch.manual_seed(3)
    co, reg = continual_and_regular("coagcn*", "coco18", 90)
    clip_attn = build_skeleton_model("agcn*", 5, "coco18", frame_attention=False, **SMALL).eval()
    clip_attn.load_state_dict(co.state_dict())
    assert AGCN(5, "coco18").layers.layer1.gcn.frame_attention is False
    x = torch.randn(1, 3, co.receptive_field, 18, 2)
    with torch.no_grad():
        assert rel_err(clip_attn(x), reg(x)) > 1e-6


# ------------------------------------------------------------------------------------------
# stepping behaviour: reset, per-person state, errors
# ------------------------------------------------------------------------------------------

def test_reset_and_forward_steps():
    torch.manual_seed(4)
    co, _ = continual_and_regular("costgcn*", "coco18", 84)
    x = torch.randn(1, 3, co.delay + 4, 18, 2)
    first = stream(co, x)
    co.clean_state()
    assert co.get_state() is None
    again = stream(co, x)
    assert [o is None for o in first] == [o is None for o in again]
    for a, b in zip(first, again):
        if a is not None:
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    co.clean_state()
    with torch.no_grad():
        stacked = co.forward_steps(x)
    assert stacked.shape == (1, 5, 4)
    torch.testing.assert_close(stacked[:, :, -1], first[-1], rtol=0, atol=0)
    co.clean_state()
    with torch.no_grad():
        assert co.forward_steps(x[:, :, :co.delay]) is None


def test_state_per_person_interleaved():
    """Two tracked persons through one model with get/set_state == two separate models."""
    torch.manual_seed(5)
    co, _ = continual_and_regular("costgcn", "coco18", 160)
    T = co.delay + 9
    xp, xq = torch.randn(1, 3, T, 18, 1), torch.randn(1, 3, T, 18, 1)
    ref_p, ref_q = stream(copy.deepcopy(co), xp), stream(copy.deepcopy(co), xq)
    states = {}
    got = {"p": [], "q": []}
    with torch.no_grad():
        for t in range(T):
            for pid, x in (("p", xp), ("q", xq)):
                co.set_state(states.get(pid))
                got[pid].append(co.forward_step(x[:, :, t]))
                states[pid] = co.get_state()
    for out, ref in ((got["p"], ref_p), (got["q"], ref_q)):
        assert [o is None for o in out] == [r is None for r in ref]
        assert sum(o is not None for o in out) == 3
        for o, r in zip(out, ref):
            if r is not None:
                torch.testing.assert_close(o, r, rtol=0, atol=0)
    # a deep copy of a state is a snapshot that can be resumed later
    snap = copy.deepcopy(states["p"])
    x_next = torch.randn(1, 3, 4, 18, 1)
    co.set_state(states["p"])
    a = stream(co, x_next)
    co.set_state(snap)
    b = stream(co, x_next)
    torch.testing.assert_close(a[-1], b[-1], rtol=0, atol=0)


def test_step_errors():
    co = CoSTGCN(5, "coco18", clip_len=90, strided=False, **SMALL)
    with pytest.raises(RuntimeError, match="eval"):
        co.forward_step(torch.randn(1, 3, 18, 1))
    co.eval()
    with pytest.raises(ValueError, match="joints|expected"):
        co.forward_step(torch.randn(1, 3, 25, 1))
    with torch.no_grad():
        co.forward_step(torch.randn(1, 3, 18, 2))
        with pytest.raises(ValueError, match="clean_state"):
            co.forward_step(torch.randn(1, 3, 18, 1))
        with pytest.raises(ValueError, match="persons"):
            co.clean_state()
            co.forward_step(torch.randn(1, 3, 18, 3))
    with pytest.raises(ValueError, match="shorter"):
        CoSTGCN(5, "coco18", clip_len=60, strided=False, **SMALL)
    with pytest.raises(ValueError, match="padding"):
        build_skeleton_model("costgcn", 5, temporal_padding=True)
    with pytest.raises(ValueError, match="unknown"):
        build_skeleton_model("x3d", 5)
    with pytest.raises(ValueError, match="layout"):
        build_skeleton_model("stgcn", 5, "mpii16")


def test_factory_names():
    for name in ("stgcn", "agcn", "str", "costgcn", "costgcn*", "coagcn*", "costr*"):
        assert name in MODEL_NAMES
    m = build_skeleton_model("costr*", 7, "coco18", in_channels=2, clip_len=100, **SMALL)
    assert m.arch == "str" and m.stride == 1 and m.in_channels == 2 and m.layout is COCO18
    assert type(m.layers.layer4.gcn).__name__ == "SpatialAttentionUnit"
    assert type(m.layers.layer3.gcn).__name__ == "GraphConv"
    assert build_skeleton_model("CoST-GCN", 7).stride == 4
    x = torch.randn(2, 2, 100, 18, 2)
    assert m.eval()(x).shape == (2, 7)


# ------------------------------------------------------------------------------------------
# full-size parameter and MAC counts (seed Table II: 3.14M / 3.47M / 3.09M; 16.73 / 0.16 GFLOPs)
# ------------------------------------------------------------------------------------------

def test_parameter_counts_ntu60():
    counts = {cls.__name__: sum(p.numel() for p in cls(60, "ntu25").parameters()) for cls in (STGCN, AGCN, STR)}
    print("parameters (NTU-25, 60 classes):", counts)
    assert abs(counts["STGCN"] / 3.14e6 - 1) < 0.005
    assert abs(counts["AGCN"] / 3.47e6 - 1) < 0.005
    # the seed's S-TR also counts an unused 3x25x25 adjacency parameter in blocks 4-10 (13,125)
    assert abs((counts["STR"] + 7 * 3 * 25 * 25) / 3.09e6 - 1) < 0.005
    co = build_skeleton_model("costgcn*", 60, "ntu25")
    assert sum(p.numel() for p in co.parameters()) == counts["STGCN"]
    assert co.delay == 299 and co.receptive_field == 300 and co.pool_size == 220
    co = build_skeleton_model("costgcn", 60, "ntu25")
    assert co.stride == 4 and co.receptive_field == 297 and co.pool_size == 37


def _stgcn_macs(T, V=25, M=2, strided=True, padded=True):
    """Closed-form MACs of ST-GCN: (1x1 and temporal convolutions, graph aggregation)."""
    widths = [(3, 64, 1), (64, 64, 1), (64, 64, 1), (64, 64, 1), (64, 128, 2), (128, 128, 1),
              (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 256, 1)]
    conv = agg = 0
    t = T
    for i, (ci, co, s) in enumerate(widths):
        s = s if strided else 1
        conv += (3 * ci * co + (ci * co if ci != co else 0)) * V * t  # partition convs, GC residual
        agg += 3 * ci * V * V * t
        t = (t - 1) // s + 1 if padded else (t - 9) // s + 1
        conv += 9 * co * co * V * t + (ci * co * V * t if i > 0 and (ci != co or s != 1) else 0)
    return conv * M, agg * M


def test_macs_stgcn_clip_and_costgcn_step():
    """MACs (see core.flops): every matrix product and convolution, nothing element-wise.

    Seed Table II (ptflops): ST-GCN 16.73 GFLOPs per 300-frame clip, CoST-GCN* 0.16 (= 16.73 /
    107.7 = 0.1553). ptflops counts the convolution MACs (16.600 G here) plus 0.128 G of bias,
    batch-norm and ReLU element operations (+0.8 %), and does not see ST-GCN's graph aggregation
    (a functional matmul, 0.651 G here). So the convolution part must match to within 1 %.
    """
    with torch.device("meta"):
        reg = STGCN(60, "ntu25").eval()
        clip = torch.randn(1, 3, 300, 25, 2)
    c = count_macs(reg, clip)
    conv, agg = _stgcn_macs(300)
    assert c.by_op["convolution"] == conv and c.by_op["bmm"] == agg and c.total == conv + agg + 256 * 60
    # CoST-GCN*: per-step MACs do not depend on the pooling window (pooling is element-wise), so
    # a pool of one step keeps the warm-up short
    co = build_skeleton_model("costgcn*", 60, "ntu25", pool_size=1).eval()
    s = macs_per_prediction(co, torch.randn(1, 3, 25, 2))
    assert (s.by_op["convolution"], s.by_op["bmm"]) == _stgcn_step_macs()
    cs = build_skeleton_model("costgcn", 60, "ntu25", pool_size=1).eval()
    s4 = macs_per_prediction(cs, torch.randn(1, 3, 25, 2))
    print(f"ST-GCN clip (300 frames, 2 persons): conv {c.by_op['convolution'] / 1e9:.3f} G + graph "
          f"aggregation {agg / 1e9:.3f} G = {c.total / 1e9:.3f} GMACs (seed 16.73 GFLOPs)")
    print(f"CoST-GCN* step: conv {s.by_op['convolution'] / 1e9:.4f} G, total {s.total / 1e9:.4f} GMACs "
          f"(seed 0.16); reduction {c.total / s.total:.1f}x (conv only {conv / s.by_op['convolution']:.1f}x, "
          f"seed 107.7x)")
    print(f"CoST-GCN per prediction (4 steps): {s4.total / 1e9:.4f} GMACs (seed 0.27 with partial "
          f"products every step; here strided layers only compute on their output steps)")
    assert abs(conv / 16.73e9 - 1) < 0.01
    assert abs(s.by_op["convolution"] / (16.73e9 / 107.7) - 1) < 0.01
    assert abs((conv / s.by_op["convolution"]) / 107.7 - 1) < 0.01
    assert s4.total < 0.27e9 and s4.total > s.total


def _stgcn_step_macs(V=25, M=2):
    """Closed-form MACs of one CoST-GCN* step: (convolutions, graph aggregation)."""
    widths = [(3, 64), (64, 64), (64, 64), (64, 64), (64, 128), (128, 128), (128, 128), (128, 256),
              (256, 256), (256, 256)]
    conv = agg = 0
    for i, (ci, co) in enumerate(widths):
        conv += 3 * ci * co + (ci * co if ci != co else 0) + 9 * co * co  # GC, GC residual, TC
        conv += ci * co if i > 0 and ci != co else 0  # block residual
        agg += 3 * ci * V
    return conv * V * M, agg * V * M


def test_published_checkpoint_layout_loads_into_regular_and_continual(float64_default):
    """An OpenDR-layout ST-GCN checkpoint (no ``A`` saved, DataParallel ``module.`` prefix, wrapped in
    ``state_dict``) loads into the unpadded regular model and the continual model; both then compute
    the same logits, and a checkpoint for another class count is refused with the key named."""
    from opendr_perception.models.skeleton_gcn import build_skeleton_model, load_published_state_dict
    source = build_skeleton_model("stgcn", 6, "coco18", base_channels=8, num_persons=2)
    for m in source.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    published = {"state_dict": {f"module.{k}": v.clone() for k, v in source.state_dict().items()
                                if not k.endswith("gcn.A")}}
    expected = {"data_bn.weight", "layers.layer1.gcn.g_conv.0.weight", "layers.layer1.gcn.graph_attn",
                "layers.layer5.gcn.gcn_residual.0.weight", "layers.layer5.gcn.gcn_residual.1.running_var",
                "layers.layer5.tcn.t_conv.weight", "layers.layer5.residual.t_conv.weight",
                "layers.layer10.tcn.bn.bias", "fc.weight"}  # names of OpenDR's stgcn.py
    assert expected <= {k[len("module."):] for k in published["state_dict"]}
    regular = load_published_state_dict(
        build_skeleton_model("stgcn", 6, "coco18", base_channels=8, num_persons=2, temporal_padding=False), published)
    continual = load_published_state_dict(
        build_skeleton_model("costgcn", 6, "coco18", base_channels=8, num_persons=2), published)
    regular.eval(), continual.eval()
    clip = torch.randn(1, 3, continual.receptive_field, 18, 2)
    with torch.no_grad():
        outputs = [continual.forward_step(clip[:, :, t]) for t in range(clip.shape[2])]
        torch.testing.assert_close(outputs[-1], regular(clip))
    with pytest.raises(ValueError, match="fc.weight"):
        load_published_state_dict(build_skeleton_model("stgcn", 60, "coco18", base_channels=8), published)
    with pytest.raises(ValueError, match="no state dict"):
        load_published_state_dict(build_skeleton_model("stgcn", 6, "coco18"), {"epoch": 3})
