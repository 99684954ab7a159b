"""Networks for active occlusion removal in face recognition (OpenDR D3.3, appendix 8.12).

* :class:`DirectionNet` (D_m): a classification head on frozen face-recognition feature
  maps ``(B, C, H, W)`` (the paper: IR-50, 512x7x7) - two linear layers, 5 logits in the
  order of :data:`DIRECTIONS` (up, bottom, right, left, none; label = occluder side, see
  :mod:`opendr_perception.core.occlusion` for the camera-motion sign).
* :class:`RatioRegressor` (R_m): the paper's chosen variant takes the 6-channel stack of
  the two views (before / after the predefined step) and outputs one sigmoid value, the
  remaining move as a fraction of the step.  The paper's backbone is an ImageNet-initialised
  EfficientNet-B7; it is **not available offline here**, so this is a small CPU-sized CNN
  trained from scratch with the same 6-channel input, sigmoid output and L1 loss (eq. 3).
* Two-stage training helpers: stage 1 trains D_m with cross-entropy while the feature
  extractor stays frozen; stage 2 trains R_m with L1 while D_m stays frozen, the acted
  direction taken from D_m or (the paper's final "dagger" variant) random among the 4 sides.
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


class DirectionNet(nn.Module):
    """D_m: flatten(features) -> Linear(C*H*W, hidden) -> ReLU -> Dropout -> Linear(hidden, 5)."""

    def __init__(self, channels: int = 512, height: int = 7, width: int = 7, hidden: int = 256,
                 dropout: float = 0.2, num_classes: int = len(DIRECTIONS)):
        super().__init__()
        self.shape = (channels, height, width)
        self.fc1 = nn.Linear(channels * height * width, hidden)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.dim() != 4 or tuple(features.shape[1:]) != self.shape:
            raise ValueError(f"expected features (B, {self.shape[0]}, {self.shape[1]}, {self.shape[2]}), "
                             f"got {tuple(features.shape)}")
        return self.fc2(self.drop(F.relu(self.fc1(features.flatten(1)))))

    @torch.no_grad()
    def predict(self, features: torch.Tensor) -> list[str]:
        was = self.training
        self.eval()
        idx = self(features).argmax(1).tolist()
        self.train(was)
        return [DIRECTIONS[i] for i in idx]


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class RatioRegressor(nn.Module):
    """R_m, 6-channel variant: stack(I, I') -> small CNN -> global pool -> Linear -> sigmoid.

    Stand-in for the paper's EfficientNet-B7 (not available offline); any input size >= 16.
    """

    def __init__(self, widths: Sequence[int] = (16, 32, 64, 96), in_channels: int = 6):
        super().__init__()
        layers, cin = [], in_channels
        for w in widths:
            layers.append(_block(cin, w))
            cin = w
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(cin, 1)

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
