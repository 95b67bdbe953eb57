"""LPIPS (Zhang et al. 2018, v0.1) that works offline: the `lpips` package's own linear layers, with the
AlexNet / VGG-16 ImageNet backbone loaded from perceptual.weights instead of torchvision's download.

Why: `lpips.LPIPS()` downloads its backbone through torchvision at construction, which fails without internet.
"""
from __future__ import annotations

import inspect
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from data.files import sha256_file
from perceptual.weights import record_used, state_dict

if TYPE_CHECKING:
    import lpips

__all__ = ["LPIPS_NETS", "lpips_model"]

LPIPS_NETS = {"vgg": "vgg16", "alex": "alexnet"}


def _lin_weights_file(net: str) -> Path:
    import lpips

    return Path(inspect.getfile(lpips.LPIPS)).parent / "weights" / "v0.1" / f"{net}.pth"


def lpips_model(net: str = "vgg", device: torch.device | str = "cpu") -> lpips.LPIPS:
    """A frozen, eval-mode `lpips.LPIPS(net=net)` with ImageNet backbone weights, on `device`.

    Inputs to the returned model are RGB in [-1, 1] (lpips' convention), or in [0, 1] when called with
    `normalize=True`: `model(x, y, normalize=True)`.
    """
    if net not in LPIPS_NETS:
        raise ValueError(f"lpips_model(net={net!r}): choose one of {', '.join(LPIPS_NETS)}")
    import lpips

    with warnings.catch_warnings():  # lpips passes torchvision's deprecated `pretrained=False`
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
    backbone = state_dict(LPIPS_NETS[net])
    # lpips splits torchvision's `features` into slices but keeps each module's original index as its name:
    # `slice2.5.weight` is `features.5.weight`.
    mapped = {name: backbone[f"features.{name.split('.', 1)[1]}"] for name in model.net.state_dict()}
    model.net.load_state_dict(mapped, strict=True)
    lin_file = _lin_weights_file(net)
    record_used(f"lpips-{version('lpips')}/weights/v0.1/{lin_file.name}", sha256_file(lin_file))
    model.requires_grad_(False)
    return model.eval().to(device)
