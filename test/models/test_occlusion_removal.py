"""Direction network (D_m) and ratio regressor (R_m) for active occlusion removal."""
import numpy as np
import pytest
import torch

from opendr_perception.core import occlusion as occ
from opendr_perception.core import samples
from opendr_perception.models import occlusion_removal as orm

torch.set_num_threads(1)


@pytest.mark.parametrize("widths,size,side", [((16, 32, 32), 56, 7), ((8, 8), 20, 5)])
def test_direction_net_shapes(widths, size, side):
    torch.manual_seed(0)
    net = orm.DirectionNet(widths, size, hidden=32)
    assert net.map_shape == (widths[-1], side, side)  # a spatial map (the seed's 7x7 for 56 px)
    logits = net(torch.randn(3, 3, size, size))
    assert logits.shape == (3, 5)
    assert len(net.predict(torch.randn(2, 3, size, size))) == 2
    with pytest.raises(ValueError):
        net(torch.randn(3, 3, size + 1, size))
    assert orm.DIRECTIONS == occ.DIRECTIONS
    # the seed's two-layer head on the flattened map, after the same conv blocks as the ratio regressor
    assert sum(isinstance(m, torch.nn.Linear) for m in net.modules()) == 2
    assert net.fc1.in_features == widths[-1] * side * side
    assert type(net.features[0]) is type(orm.RatioRegressor().features[0])


def test_direction_net_sees_left_and_right_differently():
    """Unlike a pooled descriptor, the flattened map keeps positions: a mirrored input gives other logits."""
    torch.manual_seed(0)
    net = orm.DirectionNet().eval()
    x = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        assert not torch.allclose(net(x), net(x.flip(3)), atol=1e-4)


def test_regressor_shape_and_sigmoid_range():
    torch.manual_seed(0)
    net = orm.RatioRegressor().eval()
    for size in (64, 112):
        v1, v2 = torch.randn(4, 3, size, size) * 10, torch.randn(4, 3, size, size) * 10
        out = net(orm.stack_views(v1, v2))
        assert out.shape == (4,) and torch.all(out > 0) and torch.all(out < 1)
    assert net.features[0][0].in_channels == 6


def test_stage1_trains_direction_with_frozen_extractor():
    torch.manual_seed(0)
    extractor = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=4, padding=1), torch.nn.ReLU())
    before = [p.clone() for p in extractor.parameters()]
    net = orm.DirectionNet((8,), 8, hidden=16, dropout=0.0, in_channels=8)  # on the extractor's 8x8x8 map
    opt = orm.make_optimizer(net)
    x, y = torch.randn(10, 3, 32, 32), torch.arange(10) % 5
    losses = [orm.train_direction_step(net, opt, x, y, feature_extractor=extractor) for _ in range(15)]
    assert losses[-1] < losses[0]
    assert all(torch.equal(a, b) for a, b in zip(before, extractor.parameters()))
    assert not any(p.requires_grad for p in extractor.parameters())


def test_stage2_l1_step_reduces_loss_on_emulated_pairs():
    """Toy batch from the real generator + emulator: a few Adam steps lower the L1 loss."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    face = samples.astronaut()[60:180, 165:285]          # her face, 120x120
    v1, v2, t = [], [], []
    for i in range(8):
        s = occ.random_occlusion(face, rng, p_none=0)
        st = occ.random_step(face, s, rng)
        v1.append(st.view1), v2.append(st.view2), t.append(st.ratio)
    v1, v2 = orm.to_tensor(v1, 64), orm.to_tensor(v2, 64)
    target = torch.tensor(t, dtype=torch.float32)
    assert torch.all((target >= 0) & (target <= 1))
    net = orm.RatioRegressor(widths=(8, 16, 32))
    opt = orm.make_optimizer(net)
    first = orm.train_ratio_step(net, opt, v1, v2, target)
    for _ in range(25):
        last = orm.train_ratio_step(net, opt, v1, v2, target)
    net.eval()
    with torch.no_grad():
        final = float(orm.ratio_loss(net(orm.stack_views(v1, v2)), target))
    assert last < first and final < first
    assert float(orm.ratio_loss(torch.zeros(2), torch.ones(2), "mse")) == 1.0


def test_stage2_directions_random_and_predicted():
    rng = np.random.default_rng(0)
    d = orm.stage2_directions(100, rng)
    assert set(d) == {"up", "bottom", "right", "left"}
    net = orm.DirectionNet((4,), 4, hidden=8)
    with torch.no_grad():
        net.fc2.bias.copy_(torch.tensor([0, 0, 0, 0, 100.0]))   # always "none"
    p = orm.stage2_directions(5, rng, net, torch.randn(5, 3, 4, 4), mode="predicted")
    assert len(p) == 5 and "none" not in p
    assert not any(q.requires_grad for q in net.parameters())      # D_m frozen in stage 2
