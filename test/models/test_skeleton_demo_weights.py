"""The shipped demo weights ``costgcn_procedural_coco18``: registry, rebuild from the manifest, accuracy on
fresh procedural streams, continual = regular, and the training tool that made them."""
import dataclasses
import hashlib
import json

import pytest
import torch
import yaml

from opendr_perception.core import registry
from opendr_perception.core import skeleton_actions as sa
from opendr_perception.core.registry import ModelRegistry
from opendr_perception.models.skeleton_gcn import CoSTGCN
from opendr_perception.tools import train_skeleton_actions as tool

NAME = "costgcn_procedural_coco18"


@pytest.fixture(scope="module")
def spec():
    return registry.default_registry().spec(NAME)


@pytest.fixture(scope="module")
def model(spec):
    co = sa.build_model_from_manifest(spec.extra)
    co.load_state_dict(registry.load_state_dict(NAME))  # strict: every key present, none left over
    return co.eval()


def test_the_weights_are_registered_small_and_described(spec):
    path = registry.resolve(NAME)
    assert path.suffix == ".safetensors" and path.stat().st_size < 2 * 1024 * 1024
    assert spec.license == "Apache-2.0" and "train_skeleton_actions" in spec.origin
    assert "procedural" in spec.training_data.lower()
    extra = spec.extra
    assert extra["labels"] == list(sa.ACTIONS) and extra["num_classes"] == len(sa.ACTIONS)
    assert extra["layout"] == "coco18" and extra["architecture"] == "costgcn*"
    for key in ("base_channels", "temporal_kernel_size", "clip_len", "num_persons", "in_channels", "fps"):
        assert key in extra, key
    scores = spec.scores
    for held_out in ("heldout_clips", "unseen_proportions_clips", "noisy_clips"):
        assert {"a_strided", "b_stride1_same_weights", "c_stride1_finetuned"} <= set(scores[held_out])
    from safetensors import safe_open
    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()["opendr"])
    assert meta["labels"] == extra["labels"] and meta["architecture"] == extra["architecture"]
    assert meta["model_options"]["base_channels"] == extra["base_channels"]


def test_the_manifest_rebuilds_the_continual_stride1_model(spec, model):
    assert isinstance(model, CoSTGCN) and not model.strided and model.stride == 1
    assert model.layout.name == "coco18" and model.num_classes == spec.extra["num_classes"]
    assert model.receptive_field == spec.extra["clip_len"] and model.delay == spec.extra["delay"]


def _streams(frames, per_class, seed):
    kp, labels = sa.generate_dataset(per_class, seed, dataclasses.replace(sa.PRESETS["train"], frames=frames))
    return sa.to_clip_tensor(sa.normalize_keypoints(kp)), torch.from_numpy(labels)


def test_per_step_predictions_on_fresh_streams_are_accurate(model):
    """16 fresh held-out streams (seed 77, 2 per class, 72 frames): every per-step prediction after the
    47-step warm-up, made one pose at a time as the node will (normalise, to_step_tensor, forward_step).

    The tool measured 0.993 per-step accuracy on 64 such streams (seed 1004), its worst stream at 0.63.
    The bound 0.85 allows two of the 16 streams to be entirely wrong, far more than that measurement
    suggests, and is far above chance (0.125): it catches wrong weights, normalisation or layout, not
    a point of accuracy.
    """
    x, y = _streams(72, 2, seed=77)
    model.clean_state()
    outs = []
    with torch.no_grad():
        for t in range(x.shape[2]):
            out = model.forward_step(x[:, :, t])
            if t < model.delay:
                assert out is None
            else:
                outs.append(out.argmax(1))
    model.clean_state()
    pred = torch.stack(outs, 1)
    assert pred.shape == (16, 72 - model.delay)
    accuracy = (pred == y[:, None]).float().mean().item()
    assert accuracy > 0.85, accuracy


def test_continual_output_equals_the_regular_unpadded_model_on_each_window(spec, model):
    """CoST-GCN* step outputs = regular unpadded stride-1 ST-GCN on the window of the last clip_len poses
    (float64, the shipped weights)."""
    x, _ = _streams(60, 1, seed=78)
    x = x[::2].double()  # 4 streams
    co = sa.build_model_from_manifest(spec.extra).double().eval()
    co.load_state_dict(model.state_dict())
    extra = {**spec.extra, "architecture": spec.extra["regular_architecture"]}
    reg = sa.build_model_from_manifest(extra).double().eval()
    assert not reg.temporal_padding and not reg.strided
    reg.load_state_dict(model.state_dict())
    L = spec.extra["clip_len"]
    with torch.no_grad():
        steps = co.forward_steps(x)  # (B, classes, 60 - L + 1)
        windows = torch.stack([reg(x[:, :, t - L + 1:t + 1]) for t in range(L - 1, x.shape[2])], 2)
    assert steps.shape == windows.shape == (4, spec.extra["num_classes"], 60 - L + 1)
    torch.testing.assert_close(steps, windows, rtol=0, atol=1e-10)


def test_the_training_tool_help_and_a_deterministic_tiny_run(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        tool.main(["--help"])
    assert e.value.code == 0 and "--strided-steps" in capsys.readouterr().out
    digests = []
    for run in ("one", "two"):
        out = tmp_path / run / "models" / "weights" / "tiny.safetensors"
        manifest = tmp_path / run / "models" / "manifest" / "tiny.yaml"
        manifest.parent.mkdir(parents=True)
        args = ["--output", str(out), "--manifest", str(manifest), "--manifest-path", "weights/tiny.safetensors",
                "--strided-steps", "2", "--finetune-steps", "2", "--batch-size", "16", "--eval-per-class", "1",
                "--stream-per-class", "1", "--stream-frames", "52", "--quiet"]
        assert tool.main(args) == 0
        metrics = json.loads(out.with_suffix(".json").read_text())
        assert set(metrics["accuracy"]["heldout"]) == {"a_strided", "b_stride1_same_weights", "c_stride1_finetuned"}
        assert metrics["weights"]["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
        entry = yaml.safe_load(manifest.read_text())[NAME]
        assert entry["project"] == "weights/tiny.safetensors" and entry["clip_len"] == 48
        reg = ModelRegistry([manifest.parent], offline=True)
        assert reg.resolve(NAME) == out.resolve()
        digests.append(metrics["weights"]["sha256"])
    assert digests[0] == digests[1], "same seed, same weights"
    capsys.readouterr()
