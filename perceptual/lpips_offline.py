"""LPIPS (Zhang et al. 2018, v0.1) that works offline, and the LPIPS distance of an SR image to its ground truth.

The model is the `lpips` package's own, with its own linear layers, and the AlexNet / VGG-16 ImageNet backbone
loaded from perceptual.weights instead of torchvision's download.

Why: `lpips.LPIPS()` downloads its backbone through torchvision at construction, which fails without internet.
"""
from __future__ import annotations

import inspect
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from data.files import sha256_file
from perceptual.weights import record_used, state_dict

if TYPE_CHECKING:
    import lpips

__all__ = ["LPIPS_NETS", "lpips_distance", "lpips_model"]

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


def _to_lpips_input(img: np.ndarray | torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """uint8 HxW(x3) numpy, or float (1)CHW tensor in [0, 1] -> 1x3xHxW float tensor in [-1, 1]."""
    if isinstance(img, np.ndarray):
        if img.dtype != np.uint8:
            raise TypeError(f"lpips_distance: numpy images must be uint8, got {img.dtype}")
        arr = img[..., None] if img.ndim == 2 else img
        t = torch.from_numpy(arr.astype(np.float32)).permute(2, 0, 1) / 255.0  # a copy: inputs may be read-only
    elif isinstance(img, torch.Tensor):
        t = img.detach().float()
        t = t[0] if t.ndim == 4 and t.shape[0] == 1 else t
        if t.ndim != 3:
            raise ValueError(f"lpips_distance: tensor must be CHW or 1CHW, got shape {tuple(img.shape)}")
    else:
        raise TypeError(f"lpips_distance: expected numpy array or torch tensor, got {type(img).__name__}")
    if t.shape[0] == 1:  # gray: LPIPS networks take RGB
        t = t.expand(3, -1, -1)
    if t.shape[0] != 3:
        raise ValueError(f"lpips_distance: expected 1 or 3 channels, got {t.shape[0]}")
    return (t * 2.0 - 1.0)[None].to(device)


def lpips_distance(model: Any, sr: np.ndarray | torch.Tensor, hr: np.ndarray | torch.Tensor,
                   crop: int = 0) -> float:
    """LPIPS of SR vs HR on RGB in [-1, 1] with a given model (e.g. lpips_model('vgg')).

    Images: uint8 HxW(x3) numpy (as scored) or float CHW tensors in [0, 1]; `crop` drops that many border
    pixels (pass the scale to match the PSNR/SSIM region). The model is an argument so tests can pass a stand-in.
    """
    try:
        device = next(model.parameters()).device
    except (AttributeError, StopIteration):
        device = torch.device("cpu")
    x, y = _to_lpips_input(sr, device), _to_lpips_input(hr, device)
    if x.shape != y.shape:
        raise ValueError(f"lpips_distance: shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    if crop:
        x, y = x[..., crop:-crop, crop:-crop], y[..., crop:-crop, crop:-crop]
    with torch.no_grad():
        return float(model(x, y).reshape(-1)[0])
