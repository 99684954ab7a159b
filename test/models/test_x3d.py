"""X3D and Continual X3D (seed 3.2, appendix 8.1).

Equivalence tests run in float64 with random weights (batch-norm statistics and affines
randomised too) on narrow networks at small resolutions; full-size networks are built on the
``meta`` device (no arithmetic) for parameter, FLOP, delay and state-size checks.

Conventions of the FLOP checks: ``core.flops`` counts multiply-accumulates of convolutions and
matrix products only (the project's convention; SlowFast's model zoo publishes these MACs as
"GFLOPs": 0.60/1.96/4.73/18.37 for XS/S/M/L). The seed's "FLOPs" are ptflops counts (MACs plus
bias, batch-norm, ReLU and pooling element operations), reproduced analytically by
``x3d.seed_flops``: exact to the seed's 1 K rounding for the regular models, within 5 % for the
per-frame CoX3D figures (about 4 % lower here, see ``seed_flops``).
"""
import argparse
import copy

import pytest
import torch

from opendr_perception.core.flops import count_macs, macs_per_prediction
from opendr_perception.models.x3d import (
    VARIANTS, CoX3D, X3D, build_x3d, convert_x3d_state_dict, load_pytorchvideo_x3d, seed_flops,
    to_pytorchvideo_state_dict, x3d_key_map)

# narrow networks: real block structure, small widths; the head keeps its layout
TINY = dict(depths=(1, 2, 2, 1), widths=(8, 8, 16, 16), stem_width=8, head_width=32)
NARROW = dict(depths=(3, 5, 11, 7), widths=(8, 8, 8, 8), stem_width=8, head_width=16)  # real depths


@pytest.fixture(autouse=True)
def float64():
    old, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)  # small tensors: one thread is faster and immune to busy neighbours
    yield
    torch.set_default_dtype(old)
    torch.set_num_threads(threads)


def randomize(model, seed=0):
    """Random weights, BN statistics and affines, so that no layer is close to an identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            fan = max(1, p[0].numel()) if p.dim() > 1 else 1
            p.copy_(torch.randn(p.shape, generator=g) * (1.0 / fan ** 0.5 if p.dim() > 1 else 0.3))
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
    return model.eval()


def pair(pool_size=3, seed=0, **kw):
    """A random CoX3D and the unpadded, frame-SE regular X3D with the same weights."""
    kw = {**TINY, **kw}
    co = randomize(CoX3D("s", 5, pool_size=pool_size, **kw), seed)
    reg = X3D("s", 5, temporal_padding=False, se_scope="frame", **kw).eval()
    reg.load_state_dict(co.state_dict())
    return co, reg


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


def stream(co, x):
    return [co.forward_step(x[:, :, t]) for t in range(x.shape[2])]


def meta(cls, variant, **kw):
    with torch.device("meta"):
        return cls(variant, **kw).eval()


# ------------------------------------------------------------------------------------------
# architecture, parameters, FLOPs
# ------------------------------------------------------------------------------------------

def test_architecture_layout():
    m = meta(X3D, "m")
    assert m.depths == (3, 5, 11, 7) and meta(X3D, "l").depths == (5, 10, 25, 15)
    assert (m.stem.conv_xy.weight.shape, m.stem.conv_t.weight.shape) == ((24, 3, 1, 3, 3), (24, 1, 5, 1, 1))
    assert m.stem.conv_t.padding == (2, 0, 0) and m.stem.conv_xy.stride == (1, 2, 2)
    for stage, width, se in zip(m.stages, (24, 48, 96, 192), (8, 8, 16, 32)):
        inner = int(2.25 * width)
        for i, b in enumerate(stage):
            assert b.conv_a.weight.shape == (inner, 24 if (i == 0 and width == 24) else
                                             (width // 2 if i == 0 else width), 1, 1, 1)
            assert b.conv_b.weight.shape == (inner, 1, 3, 3, 3) and b.conv_b.groups == inner
            assert b.conv_b.stride == ((1, 2, 2) if i == 0 else (1, 1, 1)) and b.conv_b.padding == (1, 1, 1)
            assert b.conv_c.weight.shape == (width, inner, 1, 1, 1)
            assert (b.se is not None) == (i % 2 == 0)  # SE in every other block, starting with the first
            if b.se is not None:
                assert b.se.fc1.weight.shape == (se, inner)
            assert (b.shortcut is not None) == (i == 0)
    assert m.conv5.weight.shape == (432, 192, 1, 1, 1) and m.fc1.weight.shape == (2048, 432)
    assert m.fc1.bias is None and m.fc2.weight.shape == (400, 2048)
    assert {v: (c.clip_length, c.crop_size) for v, c in VARIANTS.items()} == {
        "xs": (4, 160), "s": (13, 160), "m": (16, 224), "l": (16, 312)}
    u = meta(X3D, "s", temporal_padding=False)
    assert u.stem.conv_t.padding == (0, 0, 0) and u.res2[0].conv_b.padding == (0, 1, 1)
    assert u.temporal_shrink == 4 + 2 * 26 and m.temporal_padding_total == 28
    assert meta(X3D, "l").temporal_padding_total == 57


def test_parameter_counts():
    counts = {v: sum(p.numel() for p in meta(X3D, v).parameters()) for v in VARIANTS}
    print("parameters:", counts)
    assert counts["xs"] == counts["s"] == counts["m"] == 3_794_322  # seed: 3.79M
    assert counts["l"] == 6_153_432  # seed: 6.15M
    assert round(counts["m"] / 1e6, 2) == 3.79 and round(counts["l"] / 1e6, 2) == 6.15
    # pytorchvideo's layout has no BN on res2's stride-only shortcut: 48 parameters fewer
    assert sum(p.numel() for p in meta(X3D, "m", stride_shortcut_norm=False).parameters()) == 3_794_322 - 48
    # continual models hold the very same parameters
    assert sum(p.numel() for p in meta(CoX3D, "l", pool_size=64).parameters()) == counts["l"]


def test_flops_per_clip_seed_convention():
    seed_k = {"s": 2_061_366, "m": 4_970_008, "l": 19_166_052}  # seed Table 3, FLOPs (K)
    for v, ref in seed_k.items():
        ours = seed_flops(meta(X3D, v))
        print(f"X3D-{v.upper()}: {ours / 1e3:,.0f} K (seed {ref:,} K)")
        assert round(ours / 1e3) == ref
    assert round(seed_flops(meta(X3D, "xs")) / 1e9, 2) == 0.64  # seed Table 1


def test_macs_per_clip_and_per_frame():
    """Counted MACs (core.flops) of the regular clip and of one continual step, full size, batch 1."""
    reg_macs, co_macs = {}, {}
    for v in ("s", "m", "l"):
        T, S = VARIANTS[v].clip_length, VARIANTS[v].crop_size
        reg_macs[v] = count_macs(meta(X3D, v), torch.empty(1, 3, T, S, S, device="meta")).total
        # one continual step costs what the padded network spends on a one-frame clip (every
        # temporal tap of every kernel once); checked against real stepping below for S
        co_macs[v] = count_macs(meta(X3D, v), torch.empty(1, 3, 1, S, S, device="meta")).total
    print("MACs per clip:", reg_macs, "per frame:", co_macs)
    # SlowFast model zoo (fvcore MACs): 1.96 / 4.73 / 18.37 G
    assert [round(reg_macs[v] / 1e9, 2) for v in ("s", "m", "l")] == [1.96, 4.73, 18.37]
    # the seed's ptflops "FLOPs" add 4-5 % element-wise operations to the same MACs
    for v, ref in {"s": 2.061366e9, "m": 4.970008e9, "l": 19.166052e9}.items():
        assert 1.04 < ref / reg_macs[v] < 1.051
    # reduction per prediction: seed 12.1x / 15.1x / 15.3x (Table 7, ptflops convention)
    ratios = {v: reg_macs[v] / co_macs[v] for v in reg_macs}
    print("MAC reductions:", ratios)
    assert 12.0 < ratios["s"] < 13.5 and 15.0 < ratios["m"] < 16.5 and 15.0 < ratios["l"] < 16.5
    # stepping the real continual model costs exactly that (S, zero warm-up and a 1-frame pool
    # shorten the warm-up; the pool adds no MACs)
    co = meta(CoX3D, "s", pool_size=1, warm_up="zeros")
    stepped = macs_per_prediction(co, torch.empty(1, 3, 160, 160, device="meta")).total
    assert stepped == co_macs["s"]


def test_flops_per_frame_seed_convention():
    seed_k = {("s", 13): 166_565, ("s", 64): 166_587, ("m", 16): 325_456, ("m", 64): 325_477,
              ("l", 16): 1_245_549, ("l", 64): 1_245_570}  # seed Table 3, CoX3D FLOPs (K)
    for (v, pool), ref in seed_k.items():
        co = meta(CoX3D, v, pool_size=pool)
        ours = seed_flops(co) / 1e3
        print(f"CoX3D-{v.upper()}{pool}: {ours:,.0f} K per frame (seed {ref:,} K, {ours / ref - 1:+.1%})")
        assert abs(ours / ref - 1) < 0.05
    # extending the pool costs 432 operations per pooled frame, as in the seed (S13 -> S64: +22 K)
    assert seed_flops(meta(CoX3D, "s", pool_size=64)) - seed_flops(meta(CoX3D, "s")) == 432 * 51
    # seed's FLOPs reduction S/M/L: 12.1 / 15.1 / 15.3 (ours in the same convention: 12.9 / 15.9 / 16.0)
    for v, (lo, hi) in {"s": (12.0, 13.5), "m": (15.0, 16.5), "l": (15.0, 16.5)}.items():
        assert lo < seed_flops(meta(X3D, v)) / seed_flops(meta(CoX3D, v)) < hi


def test_receptive_field_and_delay_full_size():
    expected = {"s": (69, 68, 40), "m": (72, 71, 43), "l": (130, 129, 72)}  # seed 3.6: 69/72/130, 40/43/72
    for v, (rf, delay, delay_zeros) in expected.items():
        co = meta(CoX3D, v)
        assert (co.receptive_field, co.delay) == (rf, delay)
        assert meta(CoX3D, v, warm_up="zeros").delay == delay_zeros == rf - co.temporal_padding_total - 1
        assert co.stride == 1
    assert meta(CoX3D, "m", pool_size=64).receptive_field == 120  # seed Table 3


# ------------------------------------------------------------------------------------------
# continual == unpadded regular over sliding windows
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kw,pool,batch,size", [
    (TINY, 3, 2, (32, 32)),
    (TINY, 1, 1, (40, 24)),  # non-square frames, one-frame pool
    (NARROW, 2, 1, (32, 32)),  # the real depths 3/5/11/7 (receptive field 58)
])
def test_continual_equals_unpadded_regular(kw, pool, batch, size):
    co, reg = pair(pool, seed=1, **kw)
    R, d = co.receptive_field, co.delay
    assert R == 1 + 4 + 2 * sum(co.depths) + pool - 1 and d == R - 1
    x = torch.randn(batch, 3, d + 4, *size)
    outs = stream(co, x)
    emitted = [t for t, y in enumerate(outs) if y is not None]
    assert emitted == list(range(d, x.shape[2]))  # warm-up = delay, then a prediction every step
    worst = 0.0
    with torch.no_grad():
        for t in emitted:
            ref = reg(x[:, :, t - R + 1:t + 1])
            assert outs[t].shape == ref.shape == (batch, 5)
            worst = max(worst, rel_err(outs[t], ref))
        # the continual model's clip forward is the unpadded regular forward
        torch.testing.assert_close(co(x[:, :, :R]), reg(x[:, :, :R]), rtol=0, atol=1e-12)
    print(f"depths {co.depths}, pool {pool}: receptive field {R}, max rel. error {worst:.1e}")
    assert worst < 1e-10


def test_padded_regular_and_clip_se_differ():
    co, reg = pair(3, seed=2)
    x = torch.randn(1, 3, co.receptive_field, 32, 32)
    padded = X3D("s", 5, se_scope="frame", **TINY).eval()
    padded.load_state_dict(co.state_dict())
    clip_se = X3D("s", 5, temporal_padding=False, **TINY).eval()
    clip_se.load_state_dict(co.state_dict())
    with torch.no_grad():
        y = stream(co, x)[-1]
        exact = reg(x)
        pad, clip = padded(x), clip_se(x)
    assert rel_err(y, exact) < 1e-10
    print(f"continual vs padded regular: {rel_err(pad, exact):.2e}, vs clip-wide SE: {rel_err(clip, exact):.2e}")
    assert rel_err(pad, exact) > 1e-3 and rel_err(clip, exact) > 1e-6
    # a padded clip of the published length keeps its length; the unpadded one shrinks by 4 + 2/block
    assert padded.features(x).shape[2] == x.shape[2]
    assert reg.features(x).shape[2] == co.pool_size


def test_zero_warm_up():
    co, _ = pair(3, seed=3)
    z = CoX3D("s", 5, pool_size=3, warm_up="zeros", **TINY).eval()
    z.load_state_dict(co.state_dict())
    p = 2 + sum(co.depths)
    assert z.delay == co.delay - p == co.receptive_field - p - 1
    x = torch.randn(1, 3, co.delay + 3, 32, 32)
    full, zeros = stream(co, x), stream(z, x)
    assert [t for t, y in enumerate(zeros) if y is not None] == list(range(z.delay, x.shape[2]))
    for t in range(z.delay, co.delay):  # transients: the padded zeros are still inside the field
        assert full[t] is None and torch.isfinite(zeros[t]).all()
    for t in range(co.delay, x.shape[2]):  # afterwards both modes agree exactly
        torch.testing.assert_close(zeros[t], full[t], rtol=0, atol=0)
    with pytest.raises(ValueError):
        CoX3D("s", 5, warm_up="replicate")


# ------------------------------------------------------------------------------------------
# stepping behaviour: reset, state, errors
# ------------------------------------------------------------------------------------------

def test_reset_and_forward_steps():
    co, _ = pair(2, seed=4)
    x = torch.randn(1, 3, co.delay + 4, 32, 32)
    first = stream(co, x)
    co.clean_state()
    assert co.get_state() is None
    again = stream(co, x)
    for a, b in zip(first, again):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    co.clean_state()
    stacked = co.forward_steps(x)
    assert stacked.shape == (1, 5, 4)
    torch.testing.assert_close(stacked[:, :, -1], first[-1], rtol=0, atol=0)
    co.clean_state()
    assert co.forward_steps(x[:, :, :co.delay]) is None


def test_state_round_trip_and_interleaved_streams():
    co, _ = pair(2, seed=5)
    x = torch.randn(1, 3, co.delay + 6, 32, 32)
    y = torch.randn(1, 3, co.delay + 6, 32, 32)
    ref_x, ref_y = stream(co, x), (co.clean_state(), stream(co, y))[1]
    # snapshot mid-stream, continue, restore the snapshot, continue again: same outputs
    co.clean_state()
    half = co.delay + 2
    for t in range(half):
        co.forward_step(x[:, :, t])
    snap = copy.deepcopy(co.get_state())
    tail = [co.forward_step(x[:, :, t]) for t in range(half, x.shape[2])]
    co.set_state(snap)
    again = [co.forward_step(x[:, :, t]) for t in range(half, x.shape[2])]
    for a, b, r in zip(tail, again, ref_x[half:]):
        torch.testing.assert_close(a, r, rtol=0, atol=0)
        torch.testing.assert_close(b, r, rtol=0, atol=0)
    # two streams through one model, switching states every frame
    states = {"x": None, "y": None}
    outs = {"x": [], "y": []}
    for t in range(x.shape[2]):
        for k, clip in (("x", x), ("y", y)):
            co.set_state(states[k])
            outs[k].append(co.forward_step(clip[:, :, t]))
            states[k] = co.get_state()
    for k, ref in (("x", ref_x), ("y", ref_y)):
        for a, r in zip(outs[k], ref):
            assert (a is None) == (r is None)
            if a is not None:
                torch.testing.assert_close(a, r, rtol=0, atol=0)
    with pytest.raises(ValueError):
        co.set_state({"blocks": []})
    co.clean_state()
    co.forward_step(x[:, :, 0])
    with pytest.raises(ValueError):  # the state was built for another frame size
        co.forward_step(torch.randn(1, 3, 24, 24))
    co.train()
    with pytest.raises(RuntimeError):
        co.forward_step(x[:, :, 0])


def test_state_memory():
    """State floats: (k-1) partial sums per temporal conv, one delayed input per block, the pool."""
    co, _ = pair(3, seed=6)
    x = torch.randn(1, 3, co.delay + 1, 32, 32)
    stream(co, x)
    expected = 4 * 8 * 16 * 16 + 3 * 16  # stem partial sums (24 -> 8 ch, 16x16) + pooled conv5 (16 -> 36 ch)
    expected = 4 * 8 * 16 * 16 + 3 * co.head_inner
    h, c_in = 16, 8
    for b in co.blocks:
        expected += c_in * h * h  # the delayed input (before a strided shortcut: input resolution)
        h = (h - 1) // b.stride + 1
        expected += 2 * b.conv_b.out_channels * h * h
        c_in = b.conv_c.out_channels
    assert co.state_numel() == expected
    # full-size CoX3D-M on the meta device: 5,280,096 floats. The seed's Table 4 lists 4,771,632:
    # its res2 rows keep (3-1-1) partial sums per 3x3x3 conv where res3-res5 (and Eq. 5) keep
    # (3-1) [+508,032 here], and its pool keeps 15 frames [+432 here for 16].
    m = meta(CoX3D, "m", warm_up="zeros")
    frame = torch.empty(1, 3, 224, 224, device="meta")
    for _ in range(m.delay + 1):
        m.forward_step(frame)
    assert m.state_numel() == 5_280_096 == 4_771_632 + 508_032 + 432


# ------------------------------------------------------------------------------------------
# published checkpoints
# ------------------------------------------------------------------------------------------

SE_WIDTH = {54: 8, 108: 8, 216: 16, 432: 32}  # round_width(inner, 1/16): multiple of 8, at least 8


def pytorchvideo_layout(depths, classes=400):
    """Keys and shapes of pytorchvideo's ``create_x3d`` state dict, written from its documented
    module tree (independently of ``x3d_key_map``)."""
    shapes = {}

    def bn(prefix, c):
        for k in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{k}"] = (c,)
        shapes[f"{prefix}.num_batches_tracked"] = ()

    shapes["blocks.0.conv.conv_t.weight"] = (24, 3, 1, 3, 3)  # Conv2plus1d(conv_t=<spatial conv>, ...)
    shapes["blocks.0.conv.conv_xy.weight"] = (24, 1, 5, 1, 1)  # ... conv_xy=<temporal conv>)
    bn("blocks.0.norm", 24)
    dim_in = 24
    for s, (depth, width) in enumerate(zip(depths, (24, 48, 96, 192))):
        inner = int(2.25 * width)
        for i in range(depth):
            p = f"blocks.{s + 1}.res_blocks.{i}"
            c_in = dim_in if i == 0 else width
            if i == 0:  # stride 2: a shortcut conv; its norm only where the width changes
                shapes[f"{p}.branch1_conv.weight"] = (width, c_in, 1, 1, 1)
                if c_in != width:
                    bn(f"{p}.branch1_norm", width)
            shapes[f"{p}.branch2.conv_a.weight"] = (inner, c_in, 1, 1, 1)
            bn(f"{p}.branch2.norm_a", inner)
            shapes[f"{p}.branch2.conv_b.weight"] = (inner, 1, 3, 3, 3)
            bn(f"{p}.branch2.norm_b.0", inner)
            if (i + 1) % 2:
                se = SE_WIDTH[inner]
                shapes[f"{p}.branch2.norm_b.1.block.0.weight"] = (se, inner, 1, 1, 1)
                shapes[f"{p}.branch2.norm_b.1.block.0.bias"] = (se,)
                shapes[f"{p}.branch2.norm_b.1.block.2.weight"] = (inner, se, 1, 1, 1)
                shapes[f"{p}.branch2.norm_b.1.block.2.bias"] = (inner,)
            shapes[f"{p}.branch2.conv_c.weight"] = (width, inner, 1, 1, 1)
            bn(f"{p}.branch2.norm_c", width)
        dim_in = width
    shapes["blocks.5.pool.pre_conv.weight"] = (432, 192, 1, 1, 1)
    bn("blocks.5.pool.pre_norm", 432)
    shapes["blocks.5.pool.post_conv.weight"] = (2048, 432, 1, 1, 1)
    shapes["blocks.5.proj.weight"] = (classes, 2048)
    shapes["blocks.5.proj.bias"] = (classes,)
    return shapes


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_pytorchvideo_key_layout(variant):
    m = meta(X3D, variant, stride_shortcut_norm=False)
    exported = to_pytorchvideo_state_dict(m)
    expected = pytorchvideo_layout(VARIANTS[variant].depths)
    assert set(exported) == set(expected)
    assert {k: tuple(v.shape) for k, v in exported.items()} == expected
    for key in ("blocks.0.conv.conv_t.weight", "blocks.1.res_blocks.0.branch2.conv_a.weight", "blocks.5.proj.weight"):
        assert key in exported  # key names quoted in the task and the pytorchvideo docs
    # the default model (SlowFast layout, with the res2 shortcut BN) maps every pytorchvideo key too
    default = meta(X3D, variant)
    assert set(default.state_dict()) - set(x3d_key_map(default)) == {
        f"res2.0.shortcut_bn.{k}" for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}


def test_slowfast_key_layout():
    sd = to_pytorchvideo_state_dict(meta(X3D, "m"), source="slowfast")
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    assert shapes["s1.pathway0_stem.conv_xy.weight"] == (24, 3, 1, 3, 3)
    assert shapes["s1.pathway0_stem.conv.weight"] == (24, 1, 5, 1, 1)
    assert shapes["s2.pathway0_res0.branch1.weight"] == (24, 24, 1, 1, 1)
    assert shapes["s2.pathway0_res0.branch1_bn.running_var"] == (24,)  # SlowFast keeps this BN
    assert shapes["s2.pathway0_res0.branch2.se.fc1.weight"] == (8, 54, 1, 1, 1)
    assert "s2.pathway0_res1.branch2.se.fc1.weight" not in shapes
    assert shapes["s5.pathway0_res6.branch2.c_bn.weight"] == (192,)
    assert shapes["head.conv_5.weight"] == (432, 192, 1, 1, 1) and shapes["head.lin_5.weight"] == (2048, 432, 1, 1, 1)
    assert shapes["head.projection.weight"] == (400, 2048) and "s5.pathway0_res7.branch2.a.weight" not in shapes
    assert len(sd) == len(meta(X3D, "m").state_dict())


@pytest.mark.parametrize("source,shortcut_norm", [("pytorchvideo", False), ("slowfast", True)])
def test_checkpoint_round_trip_into_continual(source, shortcut_norm):
    reg = randomize(X3D("s", 5, stride_shortcut_norm=shortcut_norm, **TINY), seed=7)
    ckpt = {"model_state": to_pytorchvideo_state_dict(reg, source)}  # as the .pyth files wrap it
    co = CoX3D("s", 5, pool_size=2, stride_shortcut_norm=shortcut_norm, **TINY).eval()
    load_pytorchvideo_x3d(co, ckpt)
    for k, v in reg.state_dict().items():
        torch.testing.assert_close(co.state_dict()[k], v, rtol=0, atol=0)
    ddp = {f"module.{k}": v for k, v in ckpt["model_state"].items()}
    assert set(convert_x3d_state_dict(ddp, co)) == set(reg.state_dict())
    # the loaded continual model equals the loaded weights' unpadded regular network
    unpadded = X3D("s", 5, temporal_padding=False, se_scope="frame", stride_shortcut_norm=shortcut_norm, **TINY)
    unpadded.load_state_dict(reg.state_dict())
    x = torch.randn(1, 3, co.receptive_field, 32, 32)
    with torch.no_grad():
        assert rel_err(stream(co, x)[-1], unpadded.eval()(x)) < 1e-10


def test_pytorchvideo_checkpoint_into_default_model():
    """pytorchvideo lacks res2's stride-only shortcut BN: the default model gets an identity BN."""
    pv = randomize(X3D("s", 5, stride_shortcut_norm=False, **TINY), seed=8)
    ours = X3D("s", 5, **TINY).eval()
    load_pytorchvideo_x3d(ours, to_pytorchvideo_state_dict(pv))
    x = torch.randn(1, 3, 6, 32, 32)
    with torch.no_grad():
        assert rel_err(ours(x), pv(x)) < 1e-12
    # and back: the identity BN has no place in the pytorchvideo layout, which is fine ...
    assert set(to_pytorchvideo_state_dict(ours)) == set(to_pytorchvideo_state_dict(pv))
    # ... unless it is not an identity
    with torch.no_grad():
        ours.res2[0].shortcut_bn.bias.fill_(0.1)
    with pytest.raises(ValueError):
        to_pytorchvideo_state_dict(ours)


def test_loader_rejects_mismatches():
    reg = X3D("s", 5, **TINY)
    sd = to_pytorchvideo_state_dict(reg, "slowfast")
    with pytest.raises(ValueError):  # 5 classes into a 7-class model
        load_pytorchvideo_x3d(X3D("s", 7, **TINY), sd)
    with pytest.raises(KeyError):  # a deeper checkpoint into a shallower model
        load_pytorchvideo_x3d(X3D("s", 5, **{**TINY, "depths": (1, 1, 2, 1)}), sd)
    partial = {k: v for k, v in sd.items() if not k.startswith("head.")}
    with pytest.raises(KeyError):
        load_pytorchvideo_x3d(X3D("s", 5, **TINY), partial)
    load_pytorchvideo_x3d(X3D("s", 5, **TINY), partial, strict=False)
    no_counts = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    load_pytorchvideo_x3d(X3D("s", 5, **TINY), no_counts)
    with pytest.raises(ValueError):
        load_pytorchvideo_x3d(X3D("s", 5, **TINY), {"conv1.weight": torch.zeros(1)})


def test_build_and_errors():
    assert type(build_x3d("x3d_m", 10, depths=(1, 1, 1, 1))) is X3D
    co = build_x3d("CoX3D-L", 10, depths=(1, 1, 1, 1), pool_size=64)
    assert type(co) is CoX3D and co.variant.name == "l" and co.pool_size == 64
    assert CoX3D("m", 10, depths=(1, 1, 1, 1)).pool_size == 16 and CoX3D("xs", 10, depths=(1, 1, 1, 1)).pool_size == 4
    with pytest.raises(ValueError):
        build_x3d("resnet50")
    with pytest.raises(ValueError):
        X3D("xxl")
    with pytest.raises(ValueError):
        CoX3D("s", temporal_padding=True)
    with pytest.raises(ValueError):
        CoX3D("s", se_scope="clip")
    reg = X3D("s", 5, temporal_padding=False, **TINY)
    with pytest.raises(ValueError):  # shorter than the unpadded network's temporal extent
        reg(torch.randn(1, 3, 4 + 2 * sum(TINY["depths"]), 32, 32))


def test_benchmark_smoke(capsys):
    from opendr_perception.bench import continual_video as bench

    assert bench.NAME == "continual-video" and bench.HELP
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    figures = bench.run(parser.parse_args(["--variants", "xs", "--size", "32", "--predictions", "1", "--steps", "2",
                                           "--rounds", "1", "--classes", "5"]))
    co, reg = figures["variants"]["xs"]["continual"], figures["variants"]["xs"]["regular"]
    assert co["delay"] == 59 and co["receptive_field"] == 60 and co["timed_predictions"] == 2
    assert co["preds_per_s"] > 0 and reg["preds_per_s"] > 0 and co["mac_ratio"] > 1
    assert "CoX3D-XS4" in capsys.readouterr().out
