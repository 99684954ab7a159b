"""DRL active vision for face recognition (OpenDR D3.3 §8.11): the seed's policy network and the
rule-based baseline.

Policy network (exactly the seed's; strides 4 and 2 as in the cited Mnih et al. 2013 net)::

    RGB 400x300 (uint8, /255) -> conv 16@8x8 stride 4, ReLU -> conv 32@4x4 stride 2, ReLU
      -> flatten (32x36x48 = 55,296) -> FC 256, ReLU
      -> actor: Linear(256, 5) + softmax        critic: Linear(256, 1) + tanh

Parameters at 400x300: 14,168,886 (:func:`count_parameters`; 14.16 M of them in FC 256).

Three forms of the same weights:

* :class:`ActiveVisionNet`: a plain torch module (no stable-baselines3) for the ROS node: ``act``
  takes an HxWx3 uint8 RGB frame and returns the action.
* :class:`SeedCnnExtractor` + :class:`SeedActorCriticPolicy`: the same layers as a stable-baselines3
  ``ActorCriticPolicy`` (features extractor = conv/conv/FC 256 shared by actor and critic, no extra
  MLP, ``action_net`` = Linear(256, 5) whose softmax is SB3's Categorical, ``value_net`` =
  Linear(256, 1) + tanh). Imported lazily: SB3 is only needed to train.
* :func:`save_policy` / :func:`load_policy`: ``.safetensors`` weights (the plain module's names)
  + a ``.json`` with the architecture and training metadata.

Note (the seed's choice, kept): a tanh critic bounds V to [-1, 1] while discounted returns of the
FRC reward can exceed 1; the critic then saturates. Not changed so as to stay exact.

Rule-based baseline (:class:`RuleBasedAgent`, as the seed's): BlazeFace on every frame; no face ->
STAY (or, once a face was recognised, back to where the FRC was best); face box off the image centre (more than ``center_tolerance`` of the width) -> arc toward it
(at most ``max_centering_arcs`` in a row: the simulator's arcs orbit the person and keep the bearing,
so centring could otherwise loop); otherwise recognise the face (FRC of the best gallery match) and
move FORWARD while the FRC rises. The simulated FRC is noisy from step to step (0.1 m), so "rises"
allows ``patience`` steps without a new best (and any number while nothing was recognised yet);
then it backs up to the best position (as many BACKWARD steps as it went past it) and STAYs.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn

# actions (shared with opendr_perception.sim.active_vision_env)
STAY, FORWARD, BACKWARD, LEFT, RIGHT = range(5)
ACTION_NAMES = ("stay", "forward", "backward", "left", "right")
N_ACTIONS = len(ACTION_NAMES)
OBS_WIDTH, OBS_HEIGHT = 400, 300
FEATURES_DIM = 256
POLICY_FORMAT = "opendr-active-vision-policy"


def _conv_trunk(in_channels: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, kernel_size=8, stride=4), nn.ReLU(),
        nn.Conv2d(16, 32, kernel_size=4, stride=2), nn.ReLU(),
        nn.Flatten())


def conv_output_size(width: int = OBS_WIDTH, height: int = OBS_HEIGHT) -> int:
    """Length of the flattened conv output for a ``width`` x ``height`` input."""
    h1, w1 = (height - 8) // 4 + 1, (width - 8) // 4 + 1
    h2, w2 = (h1 - 4) // 2 + 1, (w1 - 4) // 2 + 1
    if h2 < 1 or w2 < 1:
        raise ValueError(f"input {width}x{height} is too small for the seed's convolutions (>= 20x20)")
    return 32 * h2 * w2


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def to_tensor(frames_rgb, device="cpu") -> torch.Tensor:
    """(H, W, 3) or (N, H, W, 3) uint8 RGB -> (N, 3, H, W) float in [0, 1]."""
    x = torch.as_tensor(np.asarray(frames_rgb), device=device)
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected (N, H, W, 3) RGB frames, got shape {tuple(x.shape)}")
    return x.permute(0, 3, 1, 2).float().div_(255.0)


class ActiveVisionNet(nn.Module):
    """The seed's actor-critic network as a plain torch module (no stable-baselines3).

    ``forward(x)`` takes (N, 3, H, W) floats in [0, 1] and returns ``(probs (N, 5), value (N,))``.
    """

    def __init__(self, width: int = OBS_WIDTH, height: int = OBS_HEIGHT, n_actions: int = N_ACTIONS):
        super().__init__()
        self.width, self.height, self.n_actions = int(width), int(height), int(n_actions)
        self.cnn = _conv_trunk()
        self.fc = nn.Sequential(nn.Linear(conv_output_size(width, height), FEATURES_DIM), nn.ReLU())
        self.actor = nn.Linear(FEATURES_DIM, n_actions)
        self.critic = nn.Linear(FEATURES_DIM, 1)

    def forward(self, x: torch.Tensor):
        features = self.fc(self.cnn(x))
        return torch.softmax(self.actor(features), dim=-1), torch.tanh(self.critic(features)).squeeze(-1)

    @torch.no_grad()
    def act(self, frame_rgb: np.ndarray, deterministic: bool = True,
            generator: Optional[torch.Generator] = None) -> int:
        """The action for one (H, W, 3) uint8 RGB frame of the network's input size (argmax, or a
        sample of the softmax when ``deterministic`` is False)."""
        if frame_rgb.shape[:2] != (self.height, self.width):
            raise ValueError(f"frame is {frame_rgb.shape[1]}x{frame_rgb.shape[0]}, the network takes "
                             f"{self.width}x{self.height}: resize it first")
        device = next(self.parameters()).device
        probs, _ = self(to_tensor(frame_rgb, device))
        if deterministic:
            return int(probs[0].argmax())
        return int(torch.multinomial(probs[0], 1, generator=generator))


# ------------------------------------------------------------------ stable-baselines3 form
def _define_sb3():
    from gymnasium import spaces
    from stable_baselines3.common.policies import ActorCriticPolicy
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    class _SeedCnnExtractor(BaseFeaturesExtractor):
        """conv 16@8x8/4, ReLU, conv 32@4x4/2, ReLU, FC 256, ReLU (SB3 passes CHW floats in [0, 1])."""

        def __init__(self, observation_space: spaces.Box, features_dim: int = FEATURES_DIM):
            super().__init__(observation_space, features_dim)
            channels, height, width = observation_space.shape
            self.cnn = _conv_trunk(channels)
            self.fc = nn.Sequential(nn.Linear(conv_output_size(width, height), features_dim), nn.ReLU())

        def forward(self, observations: torch.Tensor) -> torch.Tensor:
            return self.fc(self.cnn(observations))

    class _SeedActorCriticPolicy(ActorCriticPolicy):
        """ActorCriticPolicy with the seed's network: shared extractor, no MLP, tanh critic."""

        def __init__(self, observation_space, action_space, lr_schedule, **kwargs):
            kwargs.setdefault("net_arch", [])
            kwargs.setdefault("features_extractor_class", _SeedCnnExtractor)
            kwargs.setdefault("share_features_extractor", True)
            super().__init__(observation_space, action_space, lr_schedule, **kwargs)

        def _build(self, lr_schedule) -> None:
            super()._build(lr_schedule)
            linear = nn.Linear(self.mlp_extractor.latent_dim_vf, 1)
            if self.ortho_init:
                nn.init.orthogonal_(linear.weight, gain=1.0)
                nn.init.zeros_(linear.bias)
            self.value_net = nn.Sequential(linear, nn.Tanh())
            self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    return _SeedCnnExtractor, _SeedActorCriticPolicy


def __getattr__(name):  # lazy SB3 classes: SeedCnnExtractor, SeedActorCriticPolicy
    if name in ("SeedCnnExtractor", "SeedActorCriticPolicy"):
        extractor, policy = _define_sb3()
        globals().update(SeedCnnExtractor=extractor, SeedActorCriticPolicy=policy)
        return globals()[name]
    raise AttributeError(name)


def net_from_sb3(policy) -> ActiveVisionNet:
    """A plain :class:`ActiveVisionNet` (CPU) with the weights of a trained ``SeedActorCriticPolicy``."""
    channels, height, width = policy.observation_space.shape
    net = ActiveVisionNet(width, height, policy.action_space.n)
    extractor = policy.features_extractor
    state = {}
    for prefix, module in (("cnn.", extractor.cnn), ("fc.", extractor.fc), ("actor.", policy.action_net),
                           ("critic.", policy.value_net[0])):
        for key, value in module.state_dict().items():
            state[prefix + key] = value.detach().cpu()
    net.load_state_dict(state)
    return net.eval()


def net_to_sb3(net: ActiveVisionNet, policy) -> None:
    """Copy the weights of a plain :class:`ActiveVisionNet` into a ``SeedActorCriticPolicy`` (the inverse
    of :func:`net_from_sb3`; e.g. to fine-tune a behaviour-cloned network with PPO)."""
    extractor = policy.features_extractor
    state = {k: v.detach() for k, v in net.state_dict().items()}
    for prefix, module in (("cnn.", extractor.cnn), ("fc.", extractor.fc), ("actor.", policy.action_net),
                           ("critic.", policy.value_net[0])):
        device = next(module.parameters()).device
        module.load_state_dict({k[len(prefix):]: v.to(device) for k, v in state.items() if k.startswith(prefix)})


def save_policy(net: ActiveVisionNet, path, metadata: Optional[dict] = None,
                dtype: torch.dtype = torch.float32) -> tuple[Path, Path]:
    """Write ``<path>.safetensors`` (weights, stored as ``dtype``: float16 halves the file, 28 MB at
    400x300) and ``<path>.json`` (architecture + ``metadata``)."""
    from safetensors.torch import save_file

    base = Path(path)
    if base.suffix in (".safetensors", ".json"):
        base = base.with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    weights, info = base.with_suffix(".safetensors"), base.with_suffix(".json")
    save_file({k: v.detach().cpu().to(dtype).contiguous() for k, v in net.state_dict().items()}, str(weights))
    description = {
        "format": POLICY_FORMAT, "format_version": 1,
        "input": {"width": net.width, "height": net.height, "channels": 3, "color": "RGB", "dtype": "uint8",
                  "scale": "x / 255", "layout": "HWC frame -> NCHW tensor"},
        "actions": list(ACTION_NAMES[:net.n_actions]),
        "architecture": "conv16@8x8/4-relu-conv32@4x4/2-relu-fc256-relu; actor softmax; critic tanh",
        "parameters": count_parameters(net),
        "weights": weights.name,
        "weights_dtype": str(dtype).replace("torch.", ""),
        "metadata": metadata or {},
    }
    info.write_text(json.dumps(description, indent=2, default=str) + "\n", encoding="utf-8")
    return weights, info


def resolve_policy(name_or_path) -> Path:
    """A policy file: an existing ``.safetensors``/``.json`` path (or the path without extension), else a
    model name of the registry (:mod:`opendr_perception.core.registry`, checksum verified) whose
    ``.json`` description lies next to its weights."""
    base = Path(name_or_path)
    if base.suffix in (".safetensors", ".json"):
        base = base.with_suffix("")
    if base.with_suffix(".json").is_file() or base.with_suffix(".safetensors").is_file():
        return base
    if "/" in str(name_or_path) or "\\" in str(name_or_path):
        raise FileNotFoundError(f"no policy at {base}.safetensors / .json")
    from opendr_perception.core.registry import resolve
    return resolve(str(name_or_path)).with_suffix("")


def load_policy(path) -> tuple[ActiveVisionNet, dict]:
    """The network (float32, eval mode) and its JSON description from ``<path>.safetensors`` /
    ``<path>.json``; ``path`` may also be a registry model name (:func:`resolve_policy`). Weights stored
    as float16 are cast to float32."""
    from safetensors.torch import load_file

    base = resolve_policy(path)
    info = json.loads(base.with_suffix(".json").read_text(encoding="utf-8"))
    if info.get("format") != POLICY_FORMAT:
        raise ValueError(f"{base.with_suffix('.json')}: not an active-vision policy (format {info.get('format')!r})")
    net = ActiveVisionNet(info["input"]["width"], info["input"]["height"], len(info["actions"]))
    state = load_file(str(base.with_suffix(".safetensors")))
    net.load_state_dict({k: v.float() for k, v in state.items()})
    return net.eval(), info


# ------------------------------------------------------------------ rule-based baseline
class RuleBasedAgent:
    """The seed's rule-based baseline (see the module doc).

    Args:
        detector: an object with ``detect(image_bgr) -> [Detection]`` (BlazeFace full range).
        recognizer: a :class:`~opendr_perception.models.face_recognition.FaceRecognizer`.
        center_tolerance: face-box centre offset, as a share of the image width, that counts as centred.
        max_centering_arcs: at most this many centring arcs in a row.

    ``act(frame_bgr)`` takes the full-resolution camera frame (BGR) and returns an action;
    ``reset()`` before each episode. ``last_frc`` is the FRC it measured on the last frame.
    """

    def __init__(self, detector, recognizer, center_tolerance: float = 0.1, max_centering_arcs: int = 3,
                 patience: int = 5):
        self.detector, self.recognizer = detector, recognizer
        self.center_tolerance = float(center_tolerance)
        self.max_centering_arcs = int(max_centering_arcs)
        self.patience = max(1, int(patience))
        self.reset()

    def reset(self) -> None:
        self.best_frc = 0.0
        self.since_best = 0
        self.backing = 0
        self.done = False
        self.arcs_in_row = 0
        self.last_frc = 0.0

    def act(self, frame_bgr: np.ndarray) -> int:
        if self.backing:
            self.backing -= 1
            self.done = self.backing == 0
            return BACKWARD
        if self.done:
            return STAY
        faces = self.detector.detect(frame_bgr)
        if not faces:
            self.last_frc = 0.0
            if self.best_frc > 0.0:  # lost the face after recognising it (too close): back to the best
                self.backing = self.since_best
                self.done = self.backing == 0
                return BACKWARD
            return STAY
        face = max(faces, key=lambda d: d.score)
        width = frame_bgr.shape[1]
        offset = (face.box.center[0] - (width - 1) / 2.0) / width
        if abs(offset) > self.center_tolerance and self.arcs_in_row < self.max_centering_arcs:
            self.arcs_in_row += 1
            return LEFT if offset < 0 else RIGHT
        self.arcs_in_row = 0
        frc = self.recognizer.recognize(frame_bgr, face.box).frc
        self.last_frc = frc
        if frc > self.best_frc:
            self.best_frc, self.since_best = frc, 0
            return FORWARD
        if self.best_frc == 0.0:  # nothing recognised yet: keep approaching
            return FORWARD
        self.since_best += 1
        if self.since_best < self.patience:
            return FORWARD
        # FRC has not risen for `patience` steps: back to the best position, then stay
        self.backing = self.since_best - 1
        self.done = self.backing == 0
        return BACKWARD


def decision_fps(decide, frames: Sequence[np.ndarray], repeats: int = 1) -> float:
    """Decisions per second of ``decide(frame)`` over ``frames`` (rendering excluded)."""
    start = time.perf_counter()
    n = 0
    for _ in range(repeats):
        for frame in frames:
            decide(frame)
            n += 1
    return n / (time.perf_counter() - start)
