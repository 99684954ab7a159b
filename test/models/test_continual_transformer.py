"""Continual Transformer Encoders (seed 3.1, appendix 8.3) and the continual-inference fix.

All equivalence checks are float64, random weights (std 0.3, so attention is far from uniform),
dropout off, against ``torch.nn.TransformerEncoder`` over the window of the last ``n`` tokens.
"""
import copy

import pytest
import torch

from opendr_perception.core import continual_fixes
from opendr_perception.core.flops import count_macs
from opendr_perception.models.continual_transformer import (
    ContinualTransformerEncoder, RecyclingPositionalEncoding, encoder_step_macs, library_encoder,
    sda_step_flops, sda_step_ops)

N, D, H, FF = 8, 16, 4, 32


pytestmark = pytest.mark.usefixtures("float64_default")


def regular_encoder(num_layers, norm=False, seed=0, activation="relu"):
    torch.manual_seed(seed)
    layer = torch.nn.TransformerEncoderLayer(D, H, FF, dropout=0.0, activation=activation, batch_first=True)
    enc = torch.nn.TransformerEncoder(layer, num_layers, norm=torch.nn.LayerNorm(D) if norm else None,
                                      enable_nested_tensor=False)
    with torch.no_grad():
        for p in enc.parameters():
            p.normal_(0, 0.3)
    return enc.eval()


def step_errors(model, enc, x, n=N):
    """Max |continual - regular| per step after warm-up; checks the warm-up returns None."""
    errors = []
    with torch.no_grad():
        for t in range(x.shape[1]):
            y = model.forward_step(x[:, t])
            if t < n - 1:
                assert y is None
                continue
            ref = enc(x[:, t - n + 1:t + 1])[:, -1]
            errors.append((y.reshape(ref.shape) - ref).abs().max().item())
    return errors


# ------------------------------------------------------------------------------------------
# the continual-inference 1.2.4 two-block bug and its fix
# ------------------------------------------------------------------------------------------

def test_library_two_block_fix_regression():
    """Without the fix the library's two-block encoder drifts from step 2n-2 on; with it, exact."""
    assert continual_fixes.apply() and continual_fixes.is_applied()  # idempotent, active on 1.2.4
    assert not continual_fixes.retroactive_unity_is_buggy()
    enc = regular_encoder(2)
    x = torch.randn(1, 4 * N, D)
    fixed = step_errors(library_encoder(enc, N).eval(), enc, x)
    with continual_fixes.unpatched():
        assert continual_fixes.retroactive_unity_is_buggy()
        broken = step_errors(library_encoder(enc, N).eval(), enc, x)
    assert not continual_fixes.retroactive_unity_is_buggy()
    print(f"library b2: max error {max(fixed):.1e} with the fix, {max(broken):.2f} without")
    assert max(fixed) < 1e-9
    first_bad = next(i for i, e in enumerate(broken) if e > 1e-6) + N - 1  # step index
    assert first_bad == 2 * N - 2 and max(broken) > 1e-2
    # one block never used the buggy module
    enc1 = regular_encoder(1)
    with continual_fixes.unpatched():
        assert max(step_errors(library_encoder(enc1, N).eval(), enc1, x)) < 1e-9


# ------------------------------------------------------------------------------------------
# the vectorised continual encoder
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("num_layers,norm,activation", [(1, False, "relu"), (1, True, "gelu"),
                                                        (2, False, "relu"), (2, True, "gelu"),
                                                        (3, False, "relu")])
def test_continual_encoder_equals_regular(num_layers, norm, activation):
    enc = regular_encoder(num_layers, norm, seed=num_layers, activation=activation)
    model = ContinualTransformerEncoder.from_regular(enc, N).eval()
    assert model.delay == N - 1 and model.receptive_field == N
    x = torch.randn(3, 5 * N, D)
    errors = step_errors(model, enc, x)
    print(f"b{num_layers} (norm={norm}, {activation}): max error {max(errors):.1e} over {len(errors)} steps")
    assert len(errors) >= 4 * N and max(errors) < 1e-9
    # the regular forward of the continual module is the regular encoder
    with torch.no_grad():
        torch.testing.assert_close(model(x[:, :N]), enc(x[:, :N]), rtol=0, atol=1e-12)
    # the state dict is interchangeable with torch.nn.TransformerEncoder's
    fresh = ContinualTransformerEncoder(D, H, N, num_layers, FF, activation=activation, norm=norm)
    fresh.load_state_dict(enc.state_dict())
    fresh.eval()
    model.clean_state()
    torch.testing.assert_close(fresh.forward_steps(x[:, :N + 2]), model.forward_steps(x[:, :N + 2]), rtol=0, atol=0)


def test_recycling_positional_encoding_pipeline():
    """PE travels with the token: continual (PE step + encoder step) == PE(window, tau0) + regular."""
    T = 2 * N - 1
    pe = RecyclingPositionalEncoding(D, T).eval()
    with torch.no_grad():
        pe.pe.normal_()
    enc = regular_encoder(2, seed=7)
    model = ContinualTransformerEncoder.from_regular(enc, N).eval()
    x = torch.randn(2, 3 * T, D)  # positions wrap around several times
    worst = 0.0
    with torch.no_grad():
        for t in range(x.shape[1]):
            y = model.forward_step(pe.forward_step(x[:, t]))
            if t >= N - 1:
                window = pe(x[:, t - N + 1:t + 1], tau0=(t - N + 1) % T)
                worst = max(worst, (y - enc(window)[:, -1]).abs().max().item())
    assert worst < 1e-9 and pe.get_state() == x.shape[1] % T
    fixed = RecyclingPositionalEncoding(D, T, learned=False)
    assert not list(fixed.parameters()) and fixed.pe.shape == (T, D)
    fixed.train()
    assert fixed(x[:, :N]).shape == (2, N, D)  # random tau0 in training


def test_state_reset_and_per_stream_states():
    enc = regular_encoder(2, seed=3)
    model = ContinualTransformerEncoder.from_regular(enc, N).eval()
    xa, xb = torch.randn(1, 3 * N, D), torch.randn(1, 3 * N, D)
    ref_a = copy.deepcopy(model).forward_steps(xa)
    ref_b = copy.deepcopy(model).forward_steps(xb)
    states, outs = {}, {"a": [], "b": []}
    for t in range(xa.shape[1]):
        for key, x in (("a", xa), ("b", xb)):
            model.set_state(states.get(key))
            y = model.forward_step(x[:, t])
            states[key] = model.get_state()
            if y is not None:
                outs[key].append(y)
    torch.testing.assert_close(torch.stack(outs["a"], 1), ref_a, rtol=0, atol=0)
    torch.testing.assert_close(torch.stack(outs["b"], 1), ref_b, rtol=0, atol=0)
    model.clean_state()
    assert model.get_state() is None and model.forward_steps(xa[:, :N - 1]) is None
    with pytest.raises(ValueError, match="batch"):
        model.forward_step(torch.randn(2, D))
    with pytest.raises(ValueError, match="token"):
        model.forward_step(torch.randn(2, D + 1))
    with pytest.raises(ValueError, match="layers"):
        ContinualTransformerEncoder(D, H, N, 1).set_state(states["a"])


# ------------------------------------------------------------------------------------------
# operation counts
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n,d", [(2, 1), (8, 16), (64, 12), (120, 192), (1000, 1000)])
def test_seed_sda_tables_match_the_text_formulas(n, d):
    """Seed appendix A.1 Tables 5-7 (per equation) add up to the formulas of sections 3.1-3.3."""
    assert sda_step_ops("regular", n, d) == {"mul": 2 * n * n * d + 2 * n * d,
                                             "add": 2 * n * n * d - n * d - n, "exp": n * n}
    assert sda_step_ops("retroactive", n, d) == {"mul": 7 * n * d + 2 * n - 3 * d,
                                                 "add": 6 * n * d + 3 * n - 6 * d - 3, "exp": 3 * n - 2}
    assert sda_step_ops("single_output", n, d) == {"mul": 2 * n * d + 2 * d,
                                                   "add": 2 * n * d - d - 1, "exp": n}


def test_seed_reduction_claims_and_b1_ratio():
    """Seed 3.4: FLOPs (mul + add + exp) fall 31x / 308x (retroactive) and 100x / 1000x
    (single-output) at n = d = 100 / 1000. For n = 120, d = 192 (the GTZAN setting) the same
    formulas give 120x for one SDA and exactly n = 120x for a whole one-block encoder step."""
    for n, retro, single in ((100, 31, 100), (1000, 308, 1000)):
        reg = sda_step_flops("regular", n, n)
        assert round(reg / sda_step_flops("retroactive", n, n)) == retro
        assert round(reg / sda_step_flops("single_output", n, n)) == single
    n, d, f = 120, 192, 384
    sda_mul = sda_step_ops("regular", n, d)["mul"] / sda_step_ops("single_output", n, d)["mul"]
    sda_all = sda_step_flops("regular", n, d) / sda_step_flops("single_output", n, d)
    block = encoder_step_macs(n, d, f, 1, continual=False) / encoder_step_macs(n, d, f, 1)
    two = encoder_step_macs(n, d, f, 2, continual=False) / encoder_step_macs(n, d, f, 2)
    print(f"n=120, d=192, f=384: SDA multiplications {sda_mul:.1f}x, SDA mul+add+exp {sda_all:.1f}x, "
          f"one block (matrix MACs) {block:.1f}x, two blocks {two:.2f}x (seed: 51.5x for b1, 1.76x for b2)")
    assert abs(sda_mul - 120) < 0.5 and abs(sda_all - 120) < 0.5 and block == n
    assert 2.5 < two < 2.7


@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_measured_step_macs_match_formula(num_layers):
    """The counter (core.flops) sees exactly the matrix products the formula lists."""
    n, d, h, f = 12, 24, 4, 40
    torch.manual_seed(0)
    enc = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(d, h, f, 0.0, batch_first=True),
                                      num_layers, enable_nested_tensor=False).eval()
    model = ContinualTransformerEncoder.from_regular(enc, n).eval()
    x = torch.randn(1, n + 1, d)
    model.forward_steps(x[:, :n])  # fill the window, then count one steady-state step
    step = count_macs(model.forward_step, x[:, n])
    regular = count_macs(enc, x[:, 1:])  # gradients enabled: the counted (non-fused) path
    assert step.result is not None
    assert step.total == encoder_step_macs(n, d, f, num_layers)
    assert regular.total == encoder_step_macs(n, d, f, num_layers, continual=False)
