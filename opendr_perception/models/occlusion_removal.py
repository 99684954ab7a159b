"""Networks for active occlusion removal in face recognition (OpenDR D3.3, appendix 8.12).

* :class:`DirectionNet` (D_m): 5 logits in the order of :data:`DIRECTIONS` (up, bottom, right, left,
  none; label = occluder side in the image, see :mod:`opendr_perception.core.occlusion` for the
  camera-motion sign) from a SPATIAL feature map read by the seed's two-layer head.
  **Deviation from the seed**: the seed's head reads the frozen recogniser's 512x7x7 IR-50 map. The
  recogniser here (dlib ResNet) exposes only its 128-D descriptor, which is pooled over the face and
  nearly mirror-invariant (dlib trains with flipped faces), so a head on it cannot tell an occluder on
  the left from one on the right (measured: 28 of 86 held-out "left" called "right"; "right" for the
  simulator's left panel). D_m therefore computes its own map: the 56x56 face crop through a small
  conv trunk (:func:`conv_trunk`, the same stride-2 blocks as R_m) to a 32x7x7 map, flattened into
  the seed's Linear -> ReLU -> Dropout -> Linear head. The trunk is trained with the head (there is
  no frozen extractor with a spatial map to reuse), from scratch, on occluded crops of the 2D
  generator and of simulator renders; identity still comes from the dlib descriptor.
* :class:`RatioRegressor` (R_m): the paper's chosen variant takes the 6-channel stack of
  the two views (before / after the predefined step) and outputs one sigmoid value, the
  remaining move as a fraction of the step.  The paper's backbone is an ImageNet-initialised
  EfficientNet-B7; it is **not available offline here**, so this is a small CPU-sized CNN
  (:func:`conv_trunk`) trained from scratch with the same 6-channel input, sigmoid output and L1
  loss (eq. 3).
* Two-stage training helpers: stage 1 trains D_m with cross-entropy (``train_direction_step`` also
  takes a frozen feature extractor, the seed's set-up); stage 2 trains R_m with L1 while D_m stays
  frozen, the acted direction taken from D_m or (the paper's final "dagger" variant) random among
  the 4 sides.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

DIRECTIONS = ("up", "bottom", "right", "left", "none")
NONE_INDEX = DIRECTIONS.index("none")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def conv_trunk(widths: Sequence[int], in_channels: int) -> nn.Sequential:
    """Stride-2 conv blocks of the given widths, each halving the spatial size (both networks use it)."""
    layers, cin = [], in_channels
    for w in widths:
        layers.append(_block(cin, w))
        cin = w
    return nn.Sequential(*layers)


class DirectionNet(nn.Module):
    """D_m on a spatial map of the face crop: (B, 3, S, S) normalised crop -> :func:`conv_trunk`
    (``len(widths)`` stride-2 blocks: S=56 gives a C x 7 x 7 map, the seed's IR-50 map size) ->
    flatten (positions kept: the occluder's side is WHERE the map changes) -> Linear -> ReLU ->
    Dropout -> Linear(5), the seed's two-layer head."""

    def __init__(self, widths: Sequence[int] = (16, 32, 32), input_size: int = 56, hidden: int = 128,
                 dropout: float = 0.2, in_channels: int = 3, num_classes: int = len(DIRECTIONS)):
        super().__init__()
        self.shape = (int(in_channels), int(input_size), int(input_size))
        self.features = conv_trunk(widths, in_channels)
        side = int(input_size)
        for _ in widths:
            side = (side + 1) // 2  # 3x3 conv, stride 2, padding 1
        self.map_shape = (int(widths[-1]), side, side)
        self.fc1 = nn.Linear(int(np.prod(self.map_shape)), hidden)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or tuple(images.shape[1:]) != self.shape:
            raise ValueError(f"expected images (B, {self.shape[0]}, {self.shape[1]}, {self.shape[2]}), "
                             f"got {tuple(images.shape)}")
        return self.fc2(self.drop(F.relu(self.fc1(self.features(images).flatten(1)))))

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> list[str]:
        was = self.training
        self.eval()
        idx = self(images).argmax(1).tolist()
        self.train(was)
        return [DIRECTIONS[i] for i in idx]


class RatioRegressor(nn.Module):
    """R_m, 6-channel variant: stack(I, I') -> small CNN -> global pool -> Linear -> sigmoid.

    Stand-in for the paper's EfficientNet-B7 (not available offline); any input size >= 16.
    """

    def __init__(self, widths: Sequence[int] = (16, 32, 64, 96), in_channels: int = 6):
        super().__init__()
        self.features = conv_trunk(widths, in_channels)
        self.head = nn.Linear(int(widths[-1]), 1)

    def forward(self, stacked: torch.Tensor) -> torch.Tensor:
        """stacked: (B, 6, H, W) normalised views -> (B,) ratio in (0, 1)."""
        x = self.features(stacked)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return torch.sigmoid(self.head(x)).squeeze(1)


def to_tensor(images_bgr: Sequence[np.ndarray], size: Optional[int] = 112) -> torch.Tensor:
    """uint8 BGR HxWx3 images -> (B, 3, size, size) float, RGB, ImageNet-normalised."""
    import cv2
    out = []
    for im in images_bgr:
        if size is not None and im.shape[:2] != (size, size):
            im = cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA)
        out.append(im[..., ::-1].astype(np.float32) / 255.0)
    x = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def stack_views(view1: torch.Tensor, view2: torch.Tensor) -> torch.Tensor:
    """Two (B, 3, H, W) views -> (B, 6, H, W), the regressor's input."""
    if view1.shape != view2.shape:
        raise ValueError("both views must have the same shape")
    return torch.cat([view1, view2], dim=1)


def direction_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Eq. 2: cross-entropy over the 5 directions."""
    return F.cross_entropy(logits, labels)


def ratio_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    """Eq. 3: L1 (the paper's tables); ``kind="mse"`` for its implementation text."""
    if kind == "l1":
        return F.l1_loss(pred, target)
    if kind == "mse":
        return F.mse_loss(pred, target)
    raise ValueError("kind must be 'l1' or 'mse'")


def freeze(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        p.requires_grad_(False)
    module.eval()
    return module


def train_direction_step(direction_net: DirectionNet, optimizer: torch.optim.Optimizer,
                         inputs: torch.Tensor, labels: torch.Tensor,
                         feature_extractor: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> float:
    """Stage 1: one step of D_m with CE; ``feature_extractor`` (Feat_m) is run without
    gradients (frozen).  ``inputs`` are images when an extractor is given, else features."""
    direction_net.train()
    if feature_extractor is not None:
        if isinstance(feature_extractor, nn.Module):
            freeze(feature_extractor)
        with torch.no_grad():
            inputs = feature_extractor(inputs)
    loss = direction_loss(direction_net(inputs.detach()), labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def stage2_directions(batch: int, rng: np.random.Generator, direction_net: Optional[DirectionNet] = None,
                      features: Optional[torch.Tensor] = None, mode: str = "random") -> list[str]:
    """Acted direction for stage 2: ``"random"`` among the 4 sides (the paper's dagger
    variant, more robust) or ``"predicted"`` by the frozen D_m (``"none"`` replaced by a
    random side, since the step must move)."""
    sides = DIRECTIONS[:4]
    if mode == "random":
        return [sides[int(rng.integers(4))] for _ in range(batch)]
    if mode != "predicted" or direction_net is None or features is None:
        raise ValueError("mode 'predicted' needs direction_net and features")
    freeze(direction_net)
    pred = direction_net.predict(features)
    return [d if d != "none" else sides[int(rng.integers(4))] for d in pred]


def train_ratio_step(regressor: RatioRegressor, optimizer: torch.optim.Optimizer,
                     view1: torch.Tensor, view2: torch.Tensor, target: torch.Tensor,
                     kind: str = "l1") -> float:
    """Stage 2: one step of R_m on the 6-channel stack (D_m not involved in the gradient)."""
    regressor.train()
    loss = ratio_loss(regressor(stack_views(view1, view2)), target, kind)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def make_optimizer(module: nn.Module, lr: float = 1e-3) -> torch.optim.Optimizer:
    """The paper's optimiser: Adam, lr 1e-3, on the trainable parameters only."""
    return torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=lr)


# ----------------------------------------------------------------------------- shipped models
REGISTRY_NAME = "occlusion_removal_dlib_demo"  # "dlib": the recogniser the node pairs it with
#: D_m's input side: the 128 px face crop resized to 56 px (3 stride-2 blocks -> 7x7 map)
DIRECTION_INPUT_SIZE = 56
RATIO_INPUT_SIZE = 64


class OcclusionRemover:
    """The two trained parts together: ``direction(crop)`` (D_m on one face crop of
    :func:`opendr_perception.core.occlusion.face_crop`) and ``ratio(view1_crop, view2_crop)`` (R_m on
    the two face crops, before and after the predefined step).

    Load the shipped demo weights with :meth:`from_registry`; :meth:`state_dict`/:meth:`meta` are what
    :func:`save` writes."""

    def __init__(self, direction_net: DirectionNet, regressor: RatioRegressor, input_size: int = RATIO_INPUT_SIZE,
                 meta: Optional[dict] = None):
        self.direction_net = freeze(direction_net)
        self.regressor = freeze(regressor)
        self.input_size = int(input_size)
        self.meta = dict(meta or {})

    @torch.no_grad()
    def direction_probabilities(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """(N, 5) softmax over :data:`DIRECTIONS` for N BGR uint8 face crops (``face_crop`` output)."""
        x = to_tensor(crops, self.direction_net.shape[1])
        return torch.softmax(self.direction_net(x), dim=1).numpy()

    def direction(self, crop: np.ndarray) -> tuple[str, float]:
        """The occluder side (or ``"none"``) for one BGR face crop, and its probability."""
        p = self.direction_probabilities([crop])[0]
        i = int(p.argmax())
        return DIRECTIONS[i], float(p[i])

    @torch.no_grad()
    def ratios(self, views1: Sequence[np.ndarray], views2: Sequence[np.ndarray]) -> np.ndarray:
        """Remaining move, as a fraction of the first step, for pairs of BGR face crops."""
        v1, v2 = to_tensor(views1, self.input_size), to_tensor(views2, self.input_size)
        return self.regressor(stack_views(v1, v2)).numpy()

    def ratio(self, view1: np.ndarray, view2: np.ndarray) -> float:
        return float(self.ratios([view1], [view2])[0])

    def state_dict(self) -> dict:
        return {**{f"direction.{k}": v for k, v in self.direction_net.state_dict().items()},
                **{f"ratio.{k}": v for k, v in self.regressor.state_dict().items()}}

    @classmethod
    def from_state_dict(cls, state: dict, meta: dict) -> "OcclusionRemover":
        d = meta["direction_net"]
        direction_net = DirectionNet(tuple(d["widths"]), d["input_size"], hidden=d["hidden"])
        regressor = RatioRegressor(widths=tuple(meta["ratio_regressor"]["widths"]))
        direction_net.load_state_dict({k[len("direction."):]: v for k, v in state.items() if k.startswith("direction.")})
        regressor.load_state_dict({k[len("ratio."):]: v for k, v in state.items() if k.startswith("ratio.")})
        return cls(direction_net, regressor, meta["ratio_regressor"]["input_size"], meta)

    @classmethod
    def from_file(cls, path) -> "OcclusionRemover":
        """Weights written by :func:`save` (``.safetensors`` with the options as JSON metadata ``opendr``)."""
        import json

        from safetensors import safe_open
        from safetensors.torch import load_file
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("opendr", "{}"))
        if "direction_net" not in meta or "ratio_regressor" not in meta:
            raise ValueError(f"{path} has no occlusion-removal metadata")
        return cls.from_state_dict(load_file(str(path)), meta)

    @classmethod
    def from_registry(cls, name: str = REGISTRY_NAME, registry=None) -> "OcclusionRemover":
        if registry is None:
            from opendr_perception.core.registry import default_registry
            registry = default_registry()
        return cls.from_file(registry.resolve(name))


def model_meta(direction_net: DirectionNet, regressor: RatioRegressor, input_size: int, **extra) -> dict:
    """The options :meth:`OcclusionRemover.from_state_dict` needs to rebuild the two networks."""
    return {"labels": list(DIRECTIONS),
            "direction_net": {"widths": [blk[0].out_channels for blk in direction_net.features],
                              "input_size": direction_net.shape[1], "hidden": direction_net.fc1.out_features},
            "ratio_regressor": {"widths": [blk[0].out_channels for blk in regressor.features],
                                "input_size": int(input_size)}, **extra}
