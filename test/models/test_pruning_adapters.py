"""Structured Pruning Adapters: exactness of adapters, masks and fusion; criteria; a tiny transfer-prune run."""
import json
import math

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from opendr_perception.models import pruning_adapters as spa  # noqa: E402

torch.set_num_threads(1)
D = torch.float64


def _cnn(seed=0, classes=3):
    torch.manual_seed(seed)
    m = nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Conv2d(6, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(8 * 4 * 4, 10), nn.ReLU(), nn.Linear(10, classes)).to(D)
    # non-trivial BatchNorm statistics and affine parameters
    for bn in (m[1], m[4]):
        with torch.no_grad():
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
    return m.eval()


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 16), nn.BatchNorm1d(16), nn.ReLU(),
                         nn.Linear(16, 4)).to(D).eval()


def _randomize_adapters(model, scale=0.3):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (spa.SPLoRALinear, spa.SPLoRAConv2d)) and m.rank > 0:
                m.W_up.normal_(0, scale)
            if isinstance(m, spa.SPLoPALinear):
                m.B.normal_(0, scale)


@pytest.mark.parametrize("cls,src,x", [
    (spa.SPLoRALinear, lambda: nn.Linear(20, 7), lambda: torch.randn(5, 20)),
    (spa.SPLoRAConv2d, lambda: nn.Conv2d(3, 5, 3, stride=2, padding=1), lambda: torch.randn(2, 3, 9, 9)),
])
def test_adapted_layer_starts_equal_to_source(cls, src, x):
    torch.manual_seed(0)
    source, x = src().to(D), x().to(D)
    exact = cls(source, rank=4, init_range=0.0)
    assert torch.equal(exact(x), source(x))
    near = cls(source, rank=4)  # W_up ~ U(±1e-4)
    assert near.W_up.abs().max() <= 1e-4
    diff = (near(x) - source(x)).abs().max().item()
    assert 0 < diff < 1e-2
    assert not near.weight.requires_grad and near.W_down.requires_grad and near.W_up.requires_grad


@pytest.mark.parametrize("cls,src,x,rows,cols", [
    (spa.SPLoRALinear, lambda: nn.Linear(20, 7), lambda: torch.randn(5, 20), [1, 4], [0, 3, 19]),
    (spa.SPLoRAConv2d, lambda: nn.Conv2d(4, 6, 3, padding=1), lambda: torch.randn(2, 4, 7, 7), [0, 5], [2]),
])
def test_layer_masks_and_structured_fuse(cls, src, x, rows, cols):
    torch.manual_seed(1)
    layer = cls(src().to(D), rank=3)
    _randomize_adapters(layer)
    x = x().to(D)
    with torch.no_grad():
        for r in rows:
            layer.row_mask[r] = 0
        for c in cols:
            layer.col_mask[c] = 0
    y = layer(x)
    # pruned rows output exactly zero; pruned input columns have no influence
    assert torch.all(y[:, rows] == 0)
    x2 = x.clone()
    x2[:, cols] = torch.randn_like(x2[:, cols]) * 100
    assert torch.equal(layer(x2), y)
    # the masked adapted weight equals Eq. (4) of the seed (mask on both source and adapter)
    w = layer.weight.reshape(layer.weight.shape[0], -1)
    col = layer.col_mask.repeat_interleave(layer.kernel_numel)
    eq4 = w * torch.outer(layer.row_mask, col) + (layer.W_down * layer.row_mask[:, None]) @ (layer.W_up * col)
    assert torch.allclose(layer.adapted_weight().reshape_as(eq4), eq4, atol=1e-12)
    kept_r = [i for i in range(layer.row_mask.numel()) if i not in rows]
    kept_c = [i for i in range(layer.col_mask.numel()) if i not in cols]
    fused = layer.fuse()
    assert type(fused) in (nn.Linear, nn.Conv2d)
    assert fused.weight.shape[:2] == (len(kept_r), len(kept_c))
    assert torch.allclose(fused(x[:, kept_c]), y[:, kept_r], atol=1e-12, rtol=0)
    full = layer.fuse(structured=False)
    assert full.weight.shape == layer.weight.shape
    assert torch.allclose(full(x), y, atol=1e-12, rtol=0)


def test_splopa_block_formula_and_fuse():
    torch.manual_seed(2)
    src = nn.Linear(70, 40).to(D)  # not multiples of the block: padded grid
    layer = spa.SPLoPALinear(src, block=(8, 16), prototypes=4, rank=2)
    x = torch.randn(6, 70, dtype=D)
    assert (layer(x) - src(x)).abs().max() < 1e-2  # B ~ U(±1e-4): starts near the source
    _randomize_adapters(layer)
    kept = spa.prune_blocks(layer, 0.5)
    assert kept == math.ceil(0.5 * 5 * 5)
    # Eq. (6) written out block by block
    w = layer.adapted_weight()
    P = layer.p @ layer.q.transpose(1, 2)
    for a in range(layer.grid[0]):
        for b in range(layer.grid[1]):
            blk = w[a * 8:(a + 1) * 8, b * 16:(b + 1) * 16]
            if layer.block_mask[a, b] == 0:
                assert torch.all(blk == 0)
            expect = (layer.weight * layer.element_mask())[a * 8:(a + 1) * 8, b * 16:(b + 1) * 16] + \
                torch.einsum("r,rij->ij", layer.B[:, a, b] * layer.block_mask[a, b], P)[:blk.shape[0], :blk.shape[1]]
            assert torch.allclose(blk, expect, atol=1e-12)
    fused = layer.fuse()
    assert isinstance(fused, nn.Linear) and torch.allclose(fused(x), layer(x), atol=1e-12, rtol=0)
    assert layer.learned_parameters() == 4 * (8 + 16) * 2 + 4 * kept


def test_model_masks_remove_expected_channels_and_fuse_exactly():
    model = spa.add_adapters(_cnn(), kind="splora", rank=2)
    _randomize_adapters(model)
    groups = spa.channel_groups(model)
    assert [(g.producer, g.consumer, g.norms, g.spatial) for g in groups] == \
        [(0, 3, [1], 1), (3, 8, [4], 16), (8, 10, [], 1)]
    masks = {0: torch.tensor([1, 0, 1, 1, 0, 1.]), 3: torch.tensor([0, 1, 1, 0, 1, 1, 1, 0.]),
             8: torch.ones(10)}
    masks[8][[2, 7]] = 0
    spa.apply_channel_masks(model, masks)
    assert torch.equal(model[3].col_mask, masks[0].to(D))
    assert torch.equal(model[8].col_mask, masks[3].to(D).repeat_interleave(16))
    x = torch.randn(4, 1, 8, 8, dtype=D)
    y = model(x)
    fused = spa.fuse_adapters(model)
    shapes = [tuple(m.weight.shape) for m in fused if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert shapes == [(4, 1, 3, 3), (5, 4, 3, 3), (8, 5 * 16), (3, 8)]
    assert fused[1].num_features == 4 and fused[4].num_features == 5
    assert all(type(m).__module__.startswith("torch.nn") for m in fused)
    assert torch.allclose(fused(x), y, atol=1e-12, rtol=0)
    # the architecture round-trips through JSON and a plain state dict
    rebuilt = spa.build_sequential(json.loads(json.dumps(spa.describe_sequential(fused)))).to(D)
    rebuilt.load_state_dict(fused.state_dict())
    assert torch.allclose(rebuilt.eval()(x), y, atol=1e-12, rtol=0)


@pytest.mark.parametrize("criterion", spa.CRITERIA)
def test_criteria_rank_a_zeroed_channel_first(criterion):
    torch.manual_seed(3)
    model = spa.add_adapters(_mlp(), kind="masked")
    with torch.no_grad():  # channel 5 of the second layer: incoming row, bias and outgoing column zero
        model[2].weight[5] = 0
        model[2].bias[5] = 0
        model[5].weight[:, 5] = 0
    data = [(torch.randn(32, 12, dtype=D), torch.randint(0, 4, (32,))) for _ in range(3)]
    scores = spa.channel_scores(model, criterion, data)
    assert set(scores) == {0, 2}
    flat = sorted((float(s[c]), p, c) for p, s in scores.items() for c in range(s.numel()))
    assert flat[0][1:] == (2, 5) and flat[0][0] < 1e-12 < flat[1][0]
    spa.prune_step(model, scores, fraction=1 / 32)  # one channel
    assert model[2].row_mask[5] == 0 and model[5].col_mask[5] == 0
    assert int(model[2].row_mask.sum()) + int(model[0].row_mask.sum()) == 31
    assert math.isinf(spa.channel_scores(model)[2][5])


def test_iterative_pruning_reaches_density_and_counts_parameters():
    model = spa.add_adapters(_mlp(), kind="splora", rank=2)
    while spa.weight_density(model) > 0.4:
        assert spa.prune_step(model, spa.channel_scores(model), 0.05, 0.4) > 0
    assert 0.3 < spa.weight_density(model) <= 0.4
    r0, r2 = int(model[0].row_mask.sum()), int(model[2].row_mask.sum())
    kept = 12 * r0 + r0 * r2 + r2 * 4
    assert spa.weight_density(model) == pytest.approx(kept / (12 * 16 + 16 * 16 + 16 * 4))
    # adapters of the two hidden layers + BatchNorm (2 per kept channel) + the trained head
    assert spa.learned_parameter_count(model) == 2 * (r0 + 12) + 2 * (r2 + r0) + 2 * r2 + (4 * r2 + 4)
    fused = spa.fuse_adapters(model)
    assert sum(p.numel() for p in fused.parameters()) == kept + r0 + r2 + 2 * r2 + 4


def test_unsupported_models_are_rejected():
    with pytest.raises(ValueError):
        spa.channel_groups(spa.add_adapters(nn.Sequential(nn.Linear(4, 4), nn.Sigmoid(), nn.Linear(4, 2))))
    with pytest.raises(ValueError):
        spa.SPLoRAConv2d(nn.Conv2d(4, 4, 3, groups=2))


def test_transfer_prune_cli_on_digits(tmp_path):
    """Tiny MLP run: source on digits 0-4, transfer to 5-9, 30% density, fused and reloaded.

    Measured with these settings (seeds 0-2): 0.978-0.989 test accuracy for both methods (269 test
    images);
    chance is 0.2 for five classes, so 0.85 leaves a wide margin for platform differences.
    """
    pytest.importorskip("sklearn")
    pytest.importorskip("safetensors")
    from safetensors.torch import load_file

    from opendr_perception.tools import transfer_prune as tp
    out = tmp_path / "pruned.safetensors"
    for method in ("splora", "fine-prune"):
        assert tp.main(["--builtin", "mlp", "--source-epochs", "15", "--epochs", "8", "--final-epochs", "4",
                        "--density", "0.3", "--method", method, "--rank", "4", "--quiet",
                        "--output", str(out)]) == 0
        meta = json.loads(out.with_suffix(".json").read_text())
        assert meta["density"] <= 0.3 and meta["accuracy"] > 0.85, meta
        model = tp.load(out)
        state = load_file(str(out))
        assert set(state) == set(model.state_dict())
        hidden = [m.out_features for m in model if isinstance(m, nn.Linear)][:-1]
        assert all(h < 128 for h in hidden)
        data = tp.load_digits_split([5, 6, 7, 8, 9], 0.3, 0, image=False)
        assert tp.accuracy(model, data[2], data[3]) == pytest.approx(meta["accuracy"])
        if method == "splora":
            assert meta["learned_parameters"] < meta["fused_parameters"]
        else:
            assert meta["learned_parameters"] == meta["fused_parameters"]


def test_transfer_prune_registers_a_model_nodes_load_by_name(tmp_path, monkeypatch):
    """--register writes weights + a manifest entry; with OPENDR_MODEL_MANIFESTS the registry loads the
    fused, pruned model by name (checksum verified) and it scores what the run reported; a registered
    model is also accepted as the source of a further transfer."""
    pytest.importorskip("sklearn")
    pytest.importorskip("safetensors")
    from opendr_perception.core import registry
    from opendr_perception.tools import transfer_prune as tp
    common = ["--builtin", "mlp", "--source-epochs", "10", "--epochs", "5", "--final-epochs", "3",
              "--density", "0.3", "--rank", "4", "--quiet", "--model-dir", str(tmp_path)]
    assert tp.main([*common, "--register", "digits_5to9_splora"]) == 0
    manifest = tmp_path / "manifest"
    reg = registry.ModelRegistry([manifest], cache_dir=tmp_path / "cache", offline=True)
    spec = reg.spec("digits_5to9_splora")
    assert spec.extra["classes"] == [5, 6, 7, 8, 9] and spec.scores["density"] <= 0.3
    model = spa.load_registered("digits_5to9_splora", reg)
    data = tp.load_digits_split([5, 6, 7, 8, 9], 0.3, 0, image=False)
    assert tp.accuracy(model, data[2], data[3]) == pytest.approx(spec.scores["test_accuracy"], abs=1e-4)

    (tmp_path / "weights" / "digits_5to9_splora.safetensors").write_bytes(b"damaged")
    with pytest.raises(registry.ModelError):
        spa.load_registered("digits_5to9_splora", reg)  # the checksum guards the file like any model's

    assert tp.main([*common, "--register", "again"]) == 0  # a second entry beside the first
    monkeypatch.setenv("OPENDR_MODEL_MANIFESTS", str(manifest))
    monkeypatch.setattr(registry, "_default", None)
    assert tp.main(["--model", "again", "--target-classes", "0,1,2", "--epochs", "3", "--final-epochs", "1",
                    "--density", "0.8", "--quiet", "--output", str(tmp_path / "third.safetensors")]) == 0
    with pytest.raises(SystemExit, match="neither a file nor"):
        tp.main(["--model", "no_such_model", "--quiet"])
