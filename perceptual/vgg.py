"""The paper's loss network: ImageNet VGG-16, frozen, read out at named ReLU taps (relu1_2, relu2_2, ...).

Why a module of its own: every loss (feature reconstruction, Gram/style) and the Gatys baseline must see the
same network, the same input normalisation and the same taps. Inputs are RGB in [0, 1] (the suite's image
convention); the ImageNet mean/std normalisation of torchvision's weights happens inside.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import torch
from torch import nn

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PAPER_CONTENT_TAP",
    "PAPER_STYLE_TAPS",
    "TAPS",
    "LossNetwork",
    "vgg16_features",
]

# torchvision's VGG-16 configuration "D": conv widths, "M" = 2x2 max pool.
_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _tap_indices() -> dict[str, int]:
    """relu<block>_<k> -> index of that ReLU in torchvision's `vgg16().features`."""
    taps: dict[str, int] = {}
    idx, block, k = 0, 1, 0
    for v in _CFG:
        if v == "M":
            idx, block, k = idx + 1, block + 1, 0
        else:
            k += 1
            taps[f"relu{block}_{k}"] = idx + 1  # conv at idx, its ReLU at idx + 1
            idx += 2
    return taps


# relu1_2 -> 3, relu2_2 -> 8, relu3_3 -> 15, relu4_3 -> 22, relu5_3 -> 29 (and the other ReLUs)
TAPS: dict[str, int] = _tap_indices()
PAPER_CONTENT_TAP = "relu2_2"
PAPER_STYLE_TAPS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")


def vgg16_features(n_layers: int | None = None) -> nn.Sequential:
    """torchvision-compatible `vgg16().features` (same indices, so `features.<idx>` keys load), truncated to
    its first `n_layers` modules; randomly initialised."""
    layers: list[nn.Module] = []
    c_in = 3
    for v in _CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(c_in, int(v), kernel_size=3, padding=1), nn.ReLU(inplace=False)]
            c_in = int(v)
    return nn.Sequential(*layers[:n_layers])


class LossNetwork(nn.Module):
    """Frozen VGG-16 returning {tap: activation} for the taps named at construction.

    `weights="imagenet"` loads conv weights via perceptual.weights (offline, hash-checked); `"random"` keeps a
    random init (unit tests that must not touch the weights). The network is truncated after the deepest
    tap, its parameters never require grad, and it stays in eval mode whatever `train()` is asked. Gradients
    flow to the input.
    """

    mean: torch.Tensor  # buffers, registered in __init__
    std: torch.Tensor

    def __init__(
        self,
        taps: Iterable[str] = PAPER_STYLE_TAPS,
        weights: Literal["imagenet", "random"] = "imagenet",
        device: torch.device | str | None = None,
    ):
        super().__init__()
        taps = tuple(taps.split(",")) if isinstance(taps, str) else tuple(taps)
        if not taps:
            raise ValueError("LossNetwork(taps=...): give at least one tap, e.g. ('relu2_2',)")
        unknown = [t for t in taps if t not in TAPS]
        if unknown:
            raise ValueError(f"LossNetwork(taps=...): unknown tap(s) {unknown}; valid: {', '.join(TAPS)}")
        if len(set(taps)) != len(taps):
            raise ValueError(f"LossNetwork(taps=...): duplicate taps in {taps}")
        if weights not in ("imagenet", "random"):
            raise ValueError(f"LossNetwork(weights={weights!r}): use 'imagenet' or 'random'")
        self.taps: tuple[str, ...] = taps
        self.weights = weights
        self._tap_at = {TAPS[t]: t for t in taps}
        depth = max(self._tap_at) + 1
        self.features = vgg16_features(depth)
        if weights == "imagenet":
            from perceptual.weights import vgg16_state_dict

            sd = {k.removeprefix("features."): v for k, v in vgg16_state_dict().items()
                  if int(k.split(".")[1]) < depth}
            self.features.load_state_dict(sd, strict=True)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        super().train(False)
        if device is not None:
            self.to(device)

    def train(self, mode: bool = True) -> LossNetwork:
        """Always eval: the loss network is fixed, and a caller's `model.train()` on a parent module must not
        change that."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: (N, 3, H, W) RGB in [0, 1] -> {tap: (N, C, h, w)} in the order of `self.taps`."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"LossNetwork expects (N, 3, H, W) RGB in [0, 1], got shape {tuple(x.shape)}")
        h = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        out: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in self._tap_at:
                out[self._tap_at[i]] = h
        return {t: out[t] for t in self.taps}

    def extra_repr(self) -> str:
        return f"taps={self.taps}, weights={self.weights!r}"
