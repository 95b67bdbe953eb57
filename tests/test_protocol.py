"""The SR evaluation protocol, checked end to end on the real test sets against the published bicubic rows.

Bicubic x4 must land within 0.02 dB PSNR-Y and 0.002 SSIM-Y of the published (ESRGAN Table 2) values; x8 is
compared with values marked `recalled` in published.csv (not checked against a PDF), with a looser tolerance
of 0.05 dB and 0.005 SSIM. A miss here is a protocol bug (border, rounding, Y, gray handling, SSIM filtering).
"""
from __future__ import annotations

import csv
import os
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch

from baselines.bicubic import bicubic_upscale, imresize, quantize_uint8
from bench.metrics import evaluate_pair
from data.degrade import make_lr, modcrop, training_degradation
from data.files import sha256_file
from data.images import load_image_uint8

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("PERCEPTUAL_DATA", ROOT.parent / "shared" / "data"))
PUBLISHED = ROOT.parent / "shared" / "reference" / "published.csv"
DATASETS = ("Set5", "Set14", "BSD100")
TOLERANCE = {  # (psnr dB, ssim) per confidence of the target
    "published": (0.02, 0.002),
    "recalled": (0.05, 0.005),
}


def _targets() -> dict[tuple[int, str], dict[str, tuple[float, str]]]:
    """{(scale, dataset): {metric: (value, confidence)}} for the bicubic rows of published.csv."""
    out: dict[tuple[int, str], dict[str, tuple[float, str]]] = {}
    with open(PUBLISHED, newline="") as f:
        for row in csv.DictReader(f):
            if row["task"] == "sr" and row["method"] == "bicubic":
                key = (int(row["scale"]), row["dataset"])
                out.setdefault(key, {})[row["metric"]] = (float(row["value"]), row["confidence"])
    return out


def _manifest() -> dict[str, str]:
    with open(DATA / "MANIFEST.tsv", newline="") as f:
        return {r["relative_path"]: r["sha256"] for r in csv.DictReader(f, delimiter="\t")}


@cache
def bicubic_scores(scale: int, dataset: str) -> dict[str, float]:
    """Mean PSNR-Y / SSIM-Y of bicubic: HR -> modcrop -> 8-bit MATLAB LR -> bicubic up (8-bit) -> score."""
    files = sorted((DATA / "sr" / dataset).iterdir())
    manifest = _manifest()
    scores = []
    for path in files:
        rel = path.relative_to(DATA).as_posix()
        assert sha256_file(path) == manifest[rel], f"{path} differs from MANIFEST.tsv: not the canonical file"
        hr = load_image_uint8(path, keep_gray=True)  # 1-channel files stay HxW: scored on their gray values
        gray = hr.ndim == 2
        hr = modcrop(hr, scale)
        sr = bicubic_upscale(make_lr(hr, scale), scale)
        scores.append(evaluate_pair(sr, hr, scale, gray))
    return {"n": len(scores), **{m: float(np.mean([s[m] for s in scores])) for m in ("psnr_y", "ssim_y")}}


needs_data = pytest.mark.skipif(not (DATA / "sr" / "Set5").is_dir() or not PUBLISHED.is_file(),
                                reason=f"SR test sets not found under {DATA} (set PERCEPTUAL_DATA)")


@needs_data
@pytest.mark.parametrize("scale", [4, 8])
@pytest.mark.parametrize("dataset", DATASETS)
def test_bicubic_matches_published(dataset, scale):
    targets = _targets()[(scale, dataset)]
    got = bicubic_scores(scale, dataset)
    assert got["n"] == {"Set5": 5, "Set14": 14, "BSD100": 100}[dataset]
    print(f"\nbicubic x{scale} {dataset}: PSNR-Y {got['psnr_y']:.4f} (target {targets['psnr_y'][0]}, "
          f"{targets['psnr_y'][1]}), SSIM-Y {got['ssim_y']:.4f} (target {targets['ssim_y'][0]})")
    for i, metric in enumerate(("psnr_y", "ssim_y")):
        value, confidence = targets[metric]
        tol = TOLERANCE[confidence][i]
        assert abs(got[metric] - value) <= tol, (
            f"bicubic x{scale} {dataset} {metric} = {got[metric]:.4f}, {confidence} {value} "
            f"(tolerance {tol})")


@needs_data
def test_gray_file_is_detected_and_scored_as_is():
    assert load_image_uint8(DATA / "sr" / "Set14" / "bridge.bmp", keep_gray=True).ndim == 2
    # An RGB file with gray content stays RGB (scored through the Y formula).
    assert load_image_uint8(DATA / "sr" / "Set14" / "man.bmp", keep_gray=True).shape[2] == 3


def test_make_lr_is_8bit_matlab_downscale_of_modcropped_hr():
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, size=(35, 42, 3), dtype=np.uint8)
    lr = make_lr(hr, 4)
    assert lr.dtype == np.uint8 and lr.shape == (8, 10, 3)
    expected = quantize_uint8(imresize(hr[:32, :40].astype(np.float64), scale_factor=0.25))
    np.testing.assert_array_equal(lr, expected)
    # torch float path gives the same 8-bit values.
    t = torch.from_numpy(hr).permute(2, 0, 1)[None].double() / 255
    lr_t = (make_lr(t, 4)[0].permute(1, 2, 0) * 255).round().numpy().astype(np.uint8)
    np.testing.assert_array_equal(lr_t, lr)
    assert make_lr(hr[..., 0], 8).shape == (4, 5)  # gray, odd size


def test_training_degradation_blurs_then_downscales():
    from torchvision.transforms.functional import gaussian_blur

    hr = torch.rand(2, 3, 32, 48, generator=torch.Generator().manual_seed(0))
    lr = training_degradation(hr, 4)
    assert lr.shape == (2, 3, 8, 12) and lr.dtype == torch.float32
    assert torch.equal(lr * 255, (lr * 255).round())  # on the 8-bit grid, like the evaluation LR files
    ref = imresize(gaussian_blur(hr, [9, 9], [1.0, 1.0]), scale_factor=0.25)
    assert torch.allclose(training_degradation(hr, 4, quantize=False), ref, atol=1e-6)
    assert (training_degradation(hr, 4, quantize=False) - imresize(hr, scale_factor=0.25)).abs().max() > 1e-3
    assert training_degradation(hr[0], 8, sigma=1.0).shape == (3, 4, 6)
    with pytest.raises(ValueError, match="multiple of scale"):
        training_degradation(hr[..., :30, :], 4)
