"""The shipped occlusion-removal demo weights: they load through the registry and, on freshly generated
held-out occlusions (held-out images and occluders, a seed the trainer never used), the direction net's
accuracy and the ratio regressor's mean absolute error stay within the bounds measured at training
(models/manifest/occlusion_removal.yaml scores) with margin for the small samples drawn here."""
import numpy as np
import pytest

pytest.importorskip("opendr_perception.sim.face_world")

from opendr_perception.core.registry import default_registry  # noqa: E402
from opendr_perception.core.types import BoundingBox  # noqa: E402
from opendr_perception.models import occlusion_removal as orm  # noqa: E402
from opendr_perception.tools import train_occlusion_removal as tor  # noqa: E402

SEED = 4242
# measured at training (manifest scores): direction accuracy 0.735 on 400, ratio MAE 0.078 on 400
MIN_DIRECTION_ACCURACY = 0.6     # on 60 samples (binomial std ~0.05)
MAX_RATIO_MAE = 0.18             # on 100 samples


@pytest.fixture(scope="module")
def remover():
    return orm.OcclusionRemover.from_registry()


@pytest.fixture(scope="module")
def heldout_views():
    return tor.face_views("heldout")


def test_registry_entry_and_file(remover):
    spec = default_registry().spec(orm.REGISTRY_NAME)
    assert spec.source == "project" and spec.license == "Apache-2.0"
    path = default_registry().resolve(orm.REGISTRY_NAME)  # verifies the sha256
    assert path.suffix == ".safetensors" and path.stat().st_size < 2_000_000
    assert remover.meta["labels"] == list(orm.DIRECTIONS)
    assert tuple(remover.direction_net.shape) == orm.DLIB_FEATURE_SHAPE
    assert not remover.direction_net.training and not remover.regressor.training


def test_direction_accuracy_on_fresh_heldout_occlusions(remover, heldout_views):
    from opendr_perception.models.face_recognition import DlibResNetEmbedder
    x, y = tor.direction_set(heldout_views, 60, SEED, tor.occluder_photos("heldout"), DlibResNetEmbedder(),
                             "held-out", quiet=True)
    pred = remover.direction_probabilities(x).argmax(1)
    assert (pred == y).mean() >= MIN_DIRECTION_ACCURACY


def test_ratio_mae_on_fresh_heldout_steps(remover, heldout_views):
    rng = np.random.default_rng(SEED)
    v1, v2, t = tor.ratio_batch(heldout_views, 100, rng, tor.occluder_photos("heldout"), p_true=1.0)
    r = remover.ratios(v1, v2)
    assert r.shape == t.shape and ((r >= 0) & (r <= 1)).all()
    assert np.abs(r - t).mean() <= MAX_RATIO_MAE
    assert np.abs(r - t).mean() < np.abs(t.mean() - t).mean()  # better than always answering the mean


def test_direction_on_a_clean_face_is_none(remover, heldout_views):
    from opendr_perception.models.face_recognition import DlibResNetEmbedder
    embedder = DlibResNetEmbedder()
    frontal = [v for v in heldout_views if ":pan0:d1.0:dz0.0" in v.source]
    assert frontal
    names = [remover.direction(embedder.embed(v.image, BoundingBox(*v.box)))[0] for v in frontal]
    assert names.count("none") >= len(names) - 1
