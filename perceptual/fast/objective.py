"""The loss networks and losses on the fast path (`FastFeatures`, `fast_objective`, `fast_style_loss_fn`,
`fast_feature_loss`): features in the fast layout and precision, every loss term computed in fp32."""
from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from perceptual.fast.config import CL, FastConfig, _autocast, _to_layout, best_config

if TYPE_CHECKING:
    from perceptual.losses import PerceptualObjective


def _features_upto(loss_net: nn.Module, x: torch.Tensor, tap: str) -> torch.Tensor:
    """One tap of a LossNetwork, running its VGG only as deep as that tap needs (identical values)."""
    from perceptual.vgg import TAPS, LossNetwork

    if not isinstance(loss_net, LossNetwork) or tap not in loss_net.taps:
        return loss_net(x)[tap]
    h = (x - loss_net.mean.to(x.dtype)) / loss_net.std.to(x.dtype)
    for layer in loss_net.features[:TAPS[tap] + 1]:
        h = layer(h)
    return h


class FastFeatures(nn.Module):
    """A loss network run in the fast path's layout and precision; returns fp32 features so every loss term (Gram
    matrices included) is computed in fp32. Holds its own channels_last copy when asked, so a loss network shared
    with the reference path keeps its layout."""

    def __init__(self, loss_net: nn.Module, config: FastConfig, device: torch.device | str | None = None):
        super().__init__()
        self.config = config
        if config.channels_last:
            loss_net = copy.deepcopy(loss_net).to(memory_format=CL)
        if device is not None:
            loss_net = loss_net.to(device)
        self.inner = loss_net
        self.taps = getattr(loss_net, "taps", None)

    def _device(self, x: torch.Tensor) -> torch.device:
        return x.device

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        with _autocast(self._device(x), self.config):
            feats = self.inner(_to_layout(x, self.config))
        return {k: v.float() for k, v in feats.items()}

    def upto(self, x: torch.Tensor, tap: str) -> torch.Tensor:
        """One tap, through the VGG prefix only when `truncate_content` (else the full network)."""
        with _autocast(self._device(x), self.config):
            if self.config.truncate_content:
                f = _features_upto(self.inner, _to_layout(x, self.config), tap)
            else:
                f = self.inner(_to_layout(x, self.config))[tap]
        return f.float()


def fast_objective(objective: nn.Module, config: FastConfig | None = None,
                   device: torch.device | str | None = None) -> _FastObjective:
    """The same Eq. 5 objective (same style Grams, weights and layers) with its loss network on the fast path.

    Works with `baselines.gatys.stylise` and as the style training loss (`fast_style_loss_fn`). The style Gram
    targets are shared with `objective` (not recomputed), so both objectives score an image against the same
    targets.
    """
    from perceptual.losses import PerceptualObjective

    if not isinstance(objective, PerceptualObjective):
        raise TypeError(f"fast_objective takes a perceptual.losses.PerceptualObjective, got {type(objective).__name__}")
    dev = torch.device(device) if device is not None else next(iter(objective.style_grams().values())).device
    cfg = config if config is not None else best_config(dev, "gatys")
    return _FastObjective(objective, cfg)


class _FastObjective(nn.Module):
    """PerceptualObjective's interface (forward, content_targets, style_grams, weights, layers) on FastFeatures."""

    def __init__(self, objective: PerceptualObjective, config: FastConfig):
        super().__init__()
        self.reference = [objective]  # a list: not registered as a submodule (its loss net stays where it is)
        self.config = config
        self.loss_net = FastFeatures(objective.loss_net, config)
        self.weights = objective.weights
        self.content_layer, self.style_layers = objective.content_layer, objective.style_layers
        for layer, gram in objective.style_grams().items():
            self.register_buffer(f"gram_{layer}", gram)

    def style_grams(self) -> dict[str, torch.Tensor]:
        return {layer: getattr(self, f"gram_{layer}") for layer in self.style_layers}

    @torch.no_grad()
    def content_targets(self, content: torch.Tensor) -> torch.Tensor:
        return self.loss_net.upto(content, self.content_layer).detach()

    def forward(self, y_hat: torch.Tensor, content_feat: torch.Tensor) -> dict[str, torch.Tensor]:
        from perceptual.losses import PerceptualObjective

        return PerceptualObjective.forward(self, y_hat, content_feat)  # type: ignore[arg-type]


def fast_style_loss_fn(objective: nn.Module, config: FastConfig | None = None) -> Callable[[nn.Module, torch.Tensor],
                                                                                          dict[str, torch.Tensor]]:
    """The style training loss (bench.style.harness.style_loss_fn's contract: loss(model, batch) -> per-image terms) on the
    fast path: content targets through the truncated loss network, Eq. 5 on fp32 features."""
    fobj = fast_objective(objective, config)

    def loss(model: nn.Module, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        return fobj(model(batch), fobj.content_targets(batch))

    loss.objective = fobj  # type: ignore[attr-defined]
    return loss


def fast_feature_loss(criterion: nn.Module, config: FastConfig) -> nn.Module:
    """perceptual.losses.FeatureReconstructionLoss with its loss network on the fast path (same layer and TV)."""
    from perceptual.losses import FeatureReconstructionLoss

    if not isinstance(criterion, FeatureReconstructionLoss):
        raise TypeError(f"fast_feature_loss takes a FeatureReconstructionLoss, got {type(criterion).__name__}")
    return FeatureReconstructionLoss(FastFeatures(criterion.loss_net, config), criterion.layer, criterion.tv_weight)
