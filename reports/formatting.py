"""How each metric is printed, so the HTML, the Markdown and the tests agree on one rendering of a number."""
from __future__ import annotations

import math
from collections.abc import Collection

# Decimals per metric: PSNR to 0.01 dB and SSIM to 1e-4, the precision the published tables use.
DECIMALS = {"psnr_y": 2, "ssim_y": 4, "lpips_vgg": 4, "lpips_alex": 4, "ratio": 0, "ratio_extrapolated": 0,
            "iters_to_match": 1}
SIGNIFICANT = {"seconds": 4, "seconds_extrapolated": 4, "objective": 4, "objective_final": 4, "objective_std": 4,
               "seconds_to_match": 4}
METRIC_LABELS = {
    "psnr_y": "PSNR-Y (dB)", "ssim_y": "SSIM-Y", "lpips_vgg": "LPIPS-VGG", "lpips_alex": "LPIPS-Alex",
    "seconds": "seconds", "ratio": "speedup", "seconds_extrapolated": "seconds (extrapolated)",
    "ratio_extrapolated": "speedup (extrapolated)", "objective": "objective", "objective_final": "final objective",
    "objective_std": "objective std", "iters_to_match": "L-BFGS iters to match", "seconds_to_match": "seconds to match",
    "time_ratio": "time ratio",
}
# Larger is better for these; smaller for the rest of the image-quality metrics.
HIGHER_IS_BETTER = {"psnr_y": True, "ssim_y": True, "lpips_vgg": False, "lpips_alex": False}
METHOD_LABELS = {
    "bicubic": "bicubic", "srcnn": "SRCNN", "johnson_pixel": "ours-pixel (raw)",
    "johnson_pixel_histmatch": "ours-pixel + hist. match", "johnson_feat": "ours-feat (raw)",
    "johnson_feat_histmatch": "ours-feat + hist. match", "hr": "ground truth",
    "gatys_lbfgs_100": "Gatys, 100 L-BFGS iters", "gatys_lbfgs_300": "Gatys, 300 L-BFGS iters",
    "gatys_lbfgs_500": "Gatys, 500 L-BFGS iters", "johnson_feedforward": "ours, feed-forward",
    "speedup_vs_500": "speedup vs 500 iters", "johnson_network": "ours (network)",
    "content_image": "content image", "gatys_lbfgs": "Gatys (L-BFGS)",
}
MISSING = "not run"


def metric_label(metric: str) -> str:
    """Human label of a results.csv metric name (unknown names pass through)."""
    return METRIC_LABELS.get(metric, metric)


def method_label(method: str, evaluated: Collection[str] = ()) -> str:
    """Human label of a results.csv method name (unknown names pass through; a user's evaluated method, one of
    `evaluated`, reads "NAME (evaluated)")."""
    if method in evaluated:
        return f"{method} (evaluated)"
    return METHOD_LABELS.get(method, method)


def fmt_value(metric: str, value: float | None) -> str:
    """One number as every table prints it; None is a number the run does not have."""
    if value is None:
        return MISSING
    value = float(value)
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "never" if metric in ("iters_to_match", "seconds_to_match") else ("inf" if value > 0 else "-inf")
    if metric in DECIMALS:
        return f"{value:.{DECIMALS[metric]}f}"
    if metric in SIGNIFICANT:
        return f"{value:.{SIGNIFICANT[metric]}g}"
    return f"{value:.4g}"


def fmt_delta(metric: str, delta: float) -> str:
    """A signed difference, one decimal finer than the value itself so small protocol offsets stay visible."""
    if math.isnan(delta):
        return "n/a"
    if metric in DECIMALS:
        return f"{delta:+.{DECIMALS[metric] + 1}f}"
    return f"{delta:+.3g}"
