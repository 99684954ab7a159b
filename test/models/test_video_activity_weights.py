"""The shipped demo weights ``cox3d_xs_moving_shapes``: registry and sha256, rebuild from the manifest,
CoX3D streaming accuracy on fresh procedural streams, streaming = clip model numerically, and the
training tool that made them."""
import hashlib
import json

import numpy as np
import pytest
import torch
import yaml

from opendr_perception.core import moving_shapes as ms
from opendr_perception.core import registry
from opendr_perception.core.registry import ModelRegistry
from opendr_perception.models.x3d import CoX3D, X3D, build_x3d
from opendr_perception.tools import train_video_activity as tool

NAME = "cox3d_xs_moving_shapes"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Single-threaded torch: these small models only lose time to thread hand-offs on a loaded machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def spec():
    return registry.default_registry().spec(NAME)


@pytest.fixture(scope="module")
def state(spec):
    return registry.load_state_dict(NAME)  # resolve() checks the sha256


def build(spec, continual=True):
    e = spec.extra
    if continual:
        return build_x3d(e["architecture"], e["num_classes"], **e["model_options"])
    return build_x3d(e["regular_architecture"], e["num_classes"], **e["regular_options"])


def test_the_weights_are_registered_small_checked_and_described(spec):
    path = registry.resolve(NAME)
    assert path.suffix == ".safetensors" and path.stat().st_size < 5 * 1024 * 1024
    assert hashlib.sha256(path.read_bytes()).hexdigest() == spec.sha256
    assert spec.license == "Apache-2.0" and "train_video_activity" in spec.origin
    assert "procedural" in spec.training_data.lower() and "moving_shapes" in spec.training_data
    e = spec.extra
    assert e["labels"] == list(ms.CLASSES) and e["num_classes"] == len(ms.CLASSES)
    assert e["architecture"] == "cox3d_xs" and e["regular_architecture"] == "x3d_xs"
    assert e["fps"] == ms.FPS and e["normalization"]["mean"] == ms.MEAN and e["normalization"]["std"] == ms.STD
    assert {"heldout_clips", "heldout_streams"} <= set(spec.scores)
    from safetensors import safe_open
    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()["opendr"])
    assert meta["labels"] == e["labels"] and meta["model_options"] == e["model_options"]
    assert meta["input_size"] == e["input_size"]


def test_the_manifest_rebuilds_both_models(spec, state):
    co, clip = build(spec), build(spec, continual=False)
    assert isinstance(co, CoX3D) and type(clip) is X3D
    assert not clip.temporal_padding and clip.se_scope == "frame"
    assert co.receptive_field == spec.extra["receptive_field"] and co.delay == spec.extra["delay"]
    co.load_state_dict(state)  # strict: every key present, none left over
    clip.load_state_dict(state)


def test_cox3d_streaming_on_fresh_streams_is_accurate(spec, state):
    """16 fresh held-out streams (seed 77, 2 per class, 40 frames), one frame at a time as the node feeds
    them; every prediction after the warm-up counts.

    The tool measured the per-step accuracy on 64 such streams (seed 1002) that the manifest gives as
    ``scores.heldout_streams.cox3d_per_step``; the bound here is well below it (16 streams vary) and
    far above chance (0.125): it catches wrong weights, normalisation, colour order or layout.
    """
    co = build(spec).eval()
    co.load_state_dict(state)
    size = spec.extra["input_size"]
    clips, labels = ms.generate_dataset(2, 77, 40, size)
    x = ms.to_clip_tensor(clips)
    preds = []
    for t in range(x.shape[2]):
        out = co.forward_step(x[:, :, t])
        assert (out is None) == (t < co.delay)
        if out is not None:
            preds.append(out.argmax(1))
    pred = torch.stack(preds, 1)
    assert pred.shape == (16, 40 - co.delay)
    accuracy = (pred == torch.from_numpy(labels)[:, None]).float().mean().item()
    assert accuracy > 0.8, accuracy


def test_streaming_equals_the_clip_model_on_the_same_frames(spec, state):
    """CoX3D step outputs = regular unpadded X3D on the window of the last receptive field (float64)."""
    co, clip = build(spec).double().eval(), build(spec, continual=False).double().eval()
    co.load_state_dict(state)
    clip.load_state_dict(state)
    clips, _ = ms.generate_dataset(1, 78, 26, spec.extra["input_size"], classes=("grow", "move_up"))
    x = ms.to_clip_tensor(clips).double()
    L = co.receptive_field
    with torch.no_grad():
        steps = co.forward_steps(x)
        windows = torch.stack([clip(x[:, :, t - L + 1:t + 1]) for t in range(L - 1, x.shape[2])], 2)
    assert steps.shape == windows.shape == (2, len(ms.CLASSES), 26 - L + 1)
    torch.testing.assert_close(steps, windows, rtol=0, atol=1e-10)


def test_the_training_tool_help_and_a_deterministic_tiny_run(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        tool.main(["--help"])
    assert e.value.code == 0 and "--steps" in capsys.readouterr().out
    digests = []
    for run in ("one", "two"):
        out = tmp_path / run / "models" / "weights" / "tiny.safetensors"
        manifest = tmp_path / run / "models" / "manifest" / "tiny.yaml"
        manifest.parent.mkdir(parents=True)
        args = ["--output", str(out), "--manifest", str(manifest), "--manifest-path", "weights/tiny.safetensors",
                "--steps", "2", "--batch-size", "8", "--size", "32", "--depths", "1,1,1,1", "--eval-per-class", "1",
                "--stream-per-class", "1", "--stream-frames", "20", "--quiet"]
        assert tool.main(args) == 0
        metrics = json.loads(out.with_suffix(".json").read_text())
        assert metrics["weights"]["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
        assert metrics["heldout_streams"]["max_abs_logit_difference"] < 1e-4  # float32 streaming = clip
        entry = yaml.safe_load(manifest.read_text())[NAME]
        assert entry["project"] == "weights/tiny.safetensors" and entry["receptive_field"] == 1 + 4 + 8 + 3
        reg = ModelRegistry([manifest.parent], offline=True)
        assert reg.resolve(NAME) == out.resolve()
        digests.append(metrics["weights"]["sha256"])
    assert digests[0] == digests[1], "same seed, same weights"
    capsys.readouterr()
    assert np.isfinite(metrics["timing_batch1"]["cox3d_step_ms"])
