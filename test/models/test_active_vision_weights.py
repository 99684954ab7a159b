"""The shipped active-vision policy (models/manifest/active_vision.yaml, card
models/cards/active_vision_policy.md): registered, checksum verified, stored float16 and loaded float32,
a distribution over the 5 actions, and the behaviour the card claims on simulator frames: approach a
centred face in front (FORWARD), do nothing while no face is in view (STAY: the rule-based teacher's
answer, which the imitation copied)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from opendr_perception.core import registry  # noqa: E402
from opendr_perception.models.active_vision_policy import (ACTION_NAMES, FORWARD, STAY,  # noqa: E402
                                                            count_parameters, load_policy, to_tensor)

NAME = "active_vision_policy"
SEED_PARAMETERS = 14_168_886


@pytest.fixture(scope="module")
def policy():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_policy(NAME)
    torch.set_num_threads(threads)


def test_registered_with_checksum_license_and_card():
    spec = registry.default_registry().spec(NAME)
    assert spec.source == "project" and spec.license == "Apache-2.0"
    assert spec.origin and spec.training_data and spec.scores
    path = registry.resolve(NAME)  # verifies the sha256
    assert registry.sha256_of(path) == spec.sha256
    assert path.with_suffix(".json").is_file()
    card = registry.default_manifest_dirs()[0].parent / spec.extra["card"]
    assert card.is_file()


def test_float16_file_loads_as_float32(policy):
    from safetensors.torch import load_file
    stored = load_file(str(registry.resolve(NAME)))
    assert {t.dtype for t in stored.values()} == {torch.float16}
    net, info = policy
    assert info["weights_dtype"] == "float16" and info["actions"] == list(ACTION_NAMES)
    assert all(p.dtype == torch.float32 for p in net.parameters())
    assert count_parameters(net) == SEED_PARAMETERS
    for name, tensor in net.state_dict().items():
        assert torch.equal(tensor, stored[name].float())


def test_output_is_a_distribution_over_the_five_actions(policy):
    net, _ = policy
    frames = np.random.default_rng(0).integers(0, 256, (3, 300, 400, 3), dtype=np.uint8)
    with torch.no_grad():
        probs, value = net(to_tensor(frames))
    assert probs.shape == (3, 5) and torch.all(probs >= 0)
    assert torch.allclose(probs.sum(1), torch.ones(3), atol=1e-5)
    assert value.shape == (3,) and torch.all(value.abs() <= 1)


@pytest.fixture(scope="module")
def env():
    pytest.importorskip("mujoco")
    from opendr_perception.sim.active_vision_env import ActiveVisionEnv
    e = ActiveVisionEnv(room_size=8.0, max_steps=5)
    yield e
    e.close()


@pytest.mark.parametrize("identity", ["astronaut", "grace_hopper", "cameraman"])
def test_forward_to_a_centred_face_in_front_stay_without_a_face(policy, env, identity):
    """Measured for the card: 45/45 FORWARD at 1 m in front and 45/45 STAY at 2.5 m behind (3 people x
    rooms 8/12/18 m x seeds 100-104); at 2.5 m in front only 34/45 FORWARD (the rest STAY), not asserted."""
    net, _ = policy
    for seed in (100, 101):
        obs, info = env.reset(seed=seed, options={"identity": identity, "distance": 1.0, "angle_deg": 0.0})
        assert info["visible"]
        assert net.act(obs) == FORWARD, "a centred face in front: approach"
        obs, _ = env.reset(seed=seed, options={"identity": identity, "distance": 2.5, "angle_deg": 180.0})
        assert net.act(obs) == STAY, "the back of the head, no face: stay (as the teacher)"
