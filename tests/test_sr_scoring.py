"""How SR outputs become numbers: histogram matching (the paper's post-processing, `johnson_*_histmatch`), the
gray-ground-truth scoring view, and the LPIPS border crop, checked as functions and inside a real harness run.

The harness run (module fixture) trains the pixel-loss network for 2 iterations, then evaluates it on Set5 and on
Set14 `bridge` (a 1-channel file) with `bench.sr.harness.histmatch` replaced by a recorder and a stand-in LPIPS model, so
every number in its results.csv can be recomputed here from what the network produced.
"""
from __future__ import annotations

import csv
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio

from baselines.bicubic import bicubic_upscale
from bench.metrics import evaluate_pair
from bench.sr import cli as sr_cli
from bench.sr import harness as sr
from data.degrade import make_lr, modcrop
from data.fetch import dataset_files
from data.images import load_image_uint8
from data.resize import imresize
from perceptual.lpips_offline import lpips_distance

SCALE = 4
REAL_HISTMATCH = sr.histmatch


# ---------------------------------------------------------------------------------------------- helpers


def _cdf(channel: np.ndarray) -> np.ndarray:
    """Empirical CDF of an 8-bit channel at 0..255: the fraction of pixels <= v."""
    return np.cumsum(np.bincount(channel.ravel(), minlength=256)) / channel.size


def _largest_mass(channel: np.ndarray) -> float:
    """The largest fraction of pixels sharing one value: the CDF's step size, i.e. its discretisation."""
    return float(np.bincount(channel.ravel(), minlength=256).max() / channel.size)


def _assert_cdf_matches(out: np.ndarray, source: np.ndarray, template: np.ndarray) -> None:
    """Per channel, out's CDF equals template's within the discretisation of the two histograms.

    skimage maps each distinct source value (a tie group, at most `_largest_mass(source)` of the pixels) to the
    template's quantile function at the group's cumulative fraction, interpolating between template values (a gap
    of at most `_largest_mass(template)`); rounding to 8 bits stays within that gap.
    """
    for c in range(3):
        tol = _largest_mass(source[..., c]) + _largest_mass(template[..., c])
        gap = np.abs(_cdf(out[..., c]) - _cdf(template[..., c])).max()
        assert gap <= tol, f"channel {c}: CDF differs from the LR's by {gap:.4f} (discretisation {tol:.4f})"


def _distinct_histograms(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """An 'SR output' and an 'LR input' whose channels have clearly different, and mutually distinct, histograms."""
    rng = np.random.default_rng(seed)
    sr_img = np.stack([rng.beta(2, 5, (192, 160)), rng.uniform(0, 0.4, (192, 160)), rng.uniform(0.6, 1, (192, 160))], 2)
    lr_img = np.stack([rng.beta(5, 2, (48, 40)), rng.uniform(0.3, 1, (48, 40)), rng.beta(2, 2, (48, 40))], 2)
    return (np.floor(sr_img * 255 + 0.5).astype(np.uint8), np.floor(lr_img * 255 + 0.5).astype(np.uint8))


# ---------------------------------------------------------------------------------------------- histmatch


def test_histmatch_output_cdf_equals_the_lr_inputs_per_channel():
    out_src, lr = _distinct_histograms()
    out = sr.histmatch(out_src, lr)
    assert out.dtype == np.uint8 and out.shape == out_src.shape
    _assert_cdf_matches(out, out_src, lr)
    # the premise: the unmatched output is far outside that tolerance, so an identity histmatch fails above
    for c in range(3):
        tol = _largest_mass(out_src[..., c]) + _largest_mass(lr[..., c])
        assert np.abs(_cdf(out_src[..., c]) - _cdf(lr[..., c])).max() > 5 * tol
    # per channel, not one joint/luminance histogram: each output channel follows its own LR channel
    for c in range(3):
        for other in {0, 1, 2} - {c}:
            assert np.abs(_cdf(out[..., c]) - _cdf(lr[..., other])).max() > 0.1


def test_histmatch_changes_the_output_when_histograms_differ_and_only_then():
    out_src, lr = _distinct_histograms(seed=1)
    out = sr.histmatch(out_src, lr)
    assert not np.array_equal(out, out_src)
    # the channel means move to the LR's
    for c in range(3):
        assert abs(out[..., c].mean() - lr[..., c].mean()) < 1.0 < abs(out_src[..., c].mean() - lr[..., c].mean())
    # an output whose histograms already equal the LR's (each LR pixel repeated 4x4) is left as it is
    same = np.repeat(np.repeat(lr, 4, axis=0), 4, axis=1)
    assert np.array_equal(sr.histmatch(same, lr), same)


def test_histmatch_keeps_the_pixel_order_within_each_channel():
    out_src, lr = _distinct_histograms(seed=2)
    out = sr.histmatch(out_src, lr)
    for c in range(3):
        order = np.argsort(out_src[..., c].ravel(), kind="stable")
        assert (np.diff(out[..., c].ravel()[order].astype(int)) >= 0).all(), c


def test_histmatch_on_a_real_image_undoes_a_tone_shift():
    """Set5 baby: bicubic from the LR with a global colour cast (what a briefly trained network does) -> matched."""
    hr = modcrop(load_image_uint8(dataset_files("Set5")[0], keep_gray=True), SCALE)
    lr = make_lr(hr, SCALE)
    cast = np.clip(bicubic_upscale(lr, SCALE).astype(np.float64) * [0.7, 0.9, 1.1] + [40, 0, -20], 0, 255)
    cast = np.floor(cast + 0.5).astype(np.uint8)
    matched = sr.histmatch(cast, lr)
    _assert_cdf_matches(matched, cast, lr)
    before, after = evaluate_pair(cast, hr, SCALE, False), evaluate_pair(matched, hr, SCALE, False)
    assert after["psnr_y"] > before["psnr_y"] + 3, (before, after)


def test_the_histmatch_family_is_given_no_ground_truth():
    """By construction: a family's run sees the LR image and its tensor only; the template is that LR."""
    calls = []

    def spy(source, template):
        calls.append((source, template))
        return REAL_HISTMATCH(source, template)

    torch.manual_seed(0)
    net = sr.SRNet(SCALE, "common").eval()
    lr = np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    lr_t = torch.from_numpy(lr).permute(2, 0, 1)[None].float() / 255
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sr, "histmatch", spy)
        outputs = sr.johnson_method("pixel", net, SCALE).run(lr, lr_t)
    assert len(calls) == 1
    source, template = calls[0]
    assert np.array_equal(template, lr)
    assert np.array_equal(source, outputs["johnson_pixel"])
    with torch.inference_mode():
        assert np.array_equal(source, sr.to_uint8(net(lr_t).clamp(0, 1)))
    # a gray LR (1-channel ground truth) is matched to its three equal channels
    gray = lr[..., 0]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sr, "histmatch", spy)
        sr.johnson_method("pixel", net, SCALE).run(gray, lr_t)
    assert np.array_equal(calls[1][1], np.repeat(gray[..., None], 3, axis=2))


# ---------------------------------------------------------------------------------------------- scoring view


def test_scoring_view_of_a_gray_ground_truth_is_the_rounded_channel_mean():
    out = np.array([[[10, 11, 13], [0, 1, 1], [255, 255, 254]],
                    [[0, 0, 1], [100, 100, 100], [7, 9, 9]]], dtype=np.uint8)
    view = sr._scoring_view(out, gray=True)
    assert view.dtype == np.uint8 and view.tolist() == [[11, 1, 255], [0, 100, 8]]
    assert sr._scoring_view(out, gray=False) is out  # colour ground truth: the output itself
    assert np.array_equal(sr._scoring_view(out[..., 0], gray=True), out[..., 0])  # bicubic's HxW passes


def test_gray_ground_truth_is_scored_on_gray_values_not_through_y():
    """Set14 bridge (1-channel): scored as skimage scores the gray arrays, not via the BT.601 Y formula."""
    path = next(p for p in dataset_files("Set14") if p.stem == "bridge")
    hr = modcrop(load_image_uint8(path, keep_gray=True), SCALE)
    assert hr.ndim == 2
    up = bicubic_upscale(make_lr(hr, SCALE), SCALE)
    rgb = np.stack([up, np.clip(up.astype(int) + 1, 0, 255), up], axis=2).astype(np.uint8)
    view = sr._scoring_view(rgb, gray=True)
    c = slice(SCALE, -SCALE)
    want = peak_signal_noise_ratio(hr[c, c], view[c, c], data_range=255)
    got = evaluate_pair(view, hr, SCALE, gray=True)["psnr_y"]
    assert got == pytest.approx(want, abs=1e-10)
    via_y = evaluate_pair(rgb, np.repeat(hr[..., None], 3, axis=2), SCALE, gray=False)["psnr_y"]
    assert abs(via_y - got) > 0.5  # the Y formula (range 16..235) would move the number


# ---------------------------------------------------------------------------------------------- LPIPS crop


class MeanAbs(torch.nn.Module):
    """A stand-in LPIPS: mean absolute difference of the [-1, 1] inputs (no weights to load)."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (x - y).abs().mean(dim=(1, 2, 3))


def test_lpips_crop_removes_exactly_the_border():
    import lpips

    torch.manual_seed(0)
    with warnings.catch_warnings():  # lpips passes torchvision's deprecated `pretrained=False`
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (48, 56, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    d = lpips_distance(model, a, b, crop=SCALE)
    inner = (slice(SCALE, -SCALE), slice(SCALE, -SCALE))
    assert d == pytest.approx(lpips_distance(model, np.ascontiguousarray(a[inner]), np.ascontiguousarray(b[inner])),
                              rel=1e-6)
    # a change confined to the cropped border leaves it unchanged, and changes the uncropped distance
    border = b.copy()
    border[:SCALE] = 255 - border[:SCALE]
    border[:, -SCALE:] = 0
    assert lpips_distance(model, a, border, crop=SCALE) == pytest.approx(d, rel=1e-6)
    assert abs(lpips_distance(model, a, border) - lpips_distance(model, a, b)) > 1e-3
    # one pixel inside the crop does count
    inside = b.copy()
    inside[SCALE:SCALE + 6, SCALE:SCALE + 6] = 255 - inside[SCALE:SCALE + 6, SCALE:SCALE + 6]
    assert abs(lpips_distance(model, a, inside, crop=SCALE) - d) > 1e-4


# ---------------------------------------------------------------------------------------------- the harness


def _corpus(folder: Path) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(3):
        small = rng.uniform(0, 255, (10, 12, 3))
        img = np.clip(imresize(small, out_shape=(80, 96)) + rng.normal(0, 6, (80, 96, 3)), 0, 255)
        Image.fromarray(img.round().astype(np.uint8)).save(folder / f"c{i}.png")
    return folder


@pytest.fixture(scope="module")
def harness_run(tmp_path_factory):
    """One evaluated run with histmatch recorded: (out, [(file, source, template)], results rows)."""
    tmp = tmp_path_factory.mktemp("scoring")
    gray_dir = tmp / "gray"
    gray_dir.mkdir()
    shutil.copy(next(p for p in dataset_files("Set14") if p.stem == "bridge"), gray_dir)
    calls: list[tuple[np.ndarray, np.ndarray]] = []

    def spy(source, template):
        calls.append((source.copy(), template.copy()))
        return REAL_HISTMATCH(source, template)

    def fake_lpips(self):
        self.lpips_models = {"alex": MeanAbs()}
        self.record.info["lpips"]["ran"] = ["alex"]

    out = tmp / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sr, "histmatch", spy)
        mp.setattr(sr.SRHarness, "_load_lpips", fake_lpips)
        code = sr_cli.main(["--profile", "smoke", "--scales", str(SCALE), "--methods", "pixel", "--datasets", "Set5",
                        str(gray_dir), "--corpus", str(_corpus(tmp / "corpus")), "--iterations", "2",
                        "--patch-size", "32", "--batch-size", "2", "--lpips", "alex", "--save-images", "1",
                        "--no-report", "--no-progress", "--out", str(out)])
    assert code == 0
    files = list(dataset_files("Set5")) + sorted(gray_dir.iterdir())
    assert len(calls) == len(files)  # one histmatch per image, in evaluation order
    with open(out / "results.csv", newline="") as f:
        rows = {(r["method"], r["image"], r["metric"]): float(r["value"]) for r in csv.DictReader(f)}
    return out, [(p, s, t) for p, (s, t) in zip(files, calls)], rows


def test_harness_matches_the_network_output_to_the_lr_input_never_the_hr(harness_run):
    out, calls, rows = harness_run
    for path, source, template in calls:
        hr = modcrop(load_image_uint8(path, keep_gray=True), SCALE)
        lr = make_lr(hr, SCALE)
        lr_rgb = lr if lr.ndim == 3 else np.repeat(lr[..., None], 3, axis=2)
        assert np.array_equal(template, lr_rgb), path.name  # the LR input, at LR size: the HR is never seen
        assert template.shape[:2] == (hr.shape[0] // SCALE, hr.shape[1] // SCALE)
        assert source.shape == hr.shape[:2] + (3,)
        gray = hr.ndim == 2
        raw = sr._scoring_view(source, gray)
        matched = sr._scoring_view(REAL_HISTMATCH(source, lr_rgb), gray)
        # the raw row scores the recorded source (so it is the network output), the histmatch row its match
        assert rows[("johnson_pixel", path.stem, "psnr_y")] == pytest.approx(
            evaluate_pair(raw, hr, SCALE, gray)["psnr_y"], abs=1e-9)
        for metric, value in evaluate_pair(matched, hr, SCALE, gray).items():
            assert rows[("johnson_pixel_histmatch", path.stem, metric)] == pytest.approx(value, abs=1e-9), metric
    saved = np.asarray(Image.open(out / "images" / "sr" / f"x{SCALE}" / "Set5" / "baby_johnson_pixel_histmatch.png"))
    assert np.array_equal(saved, REAL_HISTMATCH(calls[0][1], calls[0][2]))


def test_histmatch_rows_differ_from_raw_rows_on_real_images(harness_run):
    _, calls, rows = harness_run
    for path, *_ in calls:
        for metric in ("psnr_y", "ssim_y", "lpips_alex"):
            raw, matched = rows[("johnson_pixel", path.stem, metric)], rows[("johnson_pixel_histmatch", path.stem,
                                                                              metric)]
            assert abs(raw - matched) > 1e-4, (path.stem, metric, raw, matched)


def test_harness_scores_the_gray_ground_truth_on_gray_values(harness_run):
    _, calls, rows = harness_run
    path, source, _ = calls[-1]
    assert path.stem == "bridge"
    hr = load_image_uint8(path, keep_gray=True)
    assert hr.ndim == 2
    hr = modcrop(hr, SCALE)
    view = np.floor(source.astype(np.float64).mean(axis=2) + 0.5).astype(np.uint8)  # gray values, as MATLAB
    c = slice(SCALE, -SCALE)
    want = peak_signal_noise_ratio(hr[c, c], view[c, c], data_range=255)
    assert rows[("johnson_pixel", "bridge", "psnr_y")] == pytest.approx(want, abs=1e-9)
    via_y = evaluate_pair(source, np.repeat(hr[..., None], 3, axis=2), SCALE, gray=False)["psnr_y"]
    assert abs(via_y - want) > 0.1


def test_harness_lpips_is_taken_on_the_scale_cropped_region(harness_run):
    _, calls, rows = harness_run
    for path, source, template in calls:
        hr = modcrop(load_image_uint8(path, keep_gray=True), SCALE)
        gray = hr.ndim == 2
        for method, img in (("johnson_pixel", source), ("johnson_pixel_histmatch", REAL_HISTMATCH(source, template))):
            view = sr._scoring_view(img, gray).astype(np.float64)
            diff = np.abs(view - hr.astype(np.float64)) * 2 / 255  # MeanAbs on [-1, 1] inputs
            cropped, whole = diff[SCALE:-SCALE, SCALE:-SCALE].mean(), diff.mean()
            assert rows[(method, path.stem, "lpips_alex")] == pytest.approx(cropped, rel=1e-5)
            assert abs(cropped - whole) > 1e-5 * cropped  # the crop is visible in the number
