"""SR harness (bench.sr) and its parts: patch streams, SRCNN, the results contract, failure isolation, --out rules."""
from __future__ import annotations

import csv
import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from baselines.bicubic import bicubic_upscale
from baselines.srcnn import SRCNN, srcnn_loss, srcnn_upscale
from bench.metrics import evaluate_pair
from bench.run.profiles import SR_PROFILES
from bench.sr import cli as sr_cli
from bench.sr import harness as sr
from data.colour import rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb
from data.degrade import make_lr, modcrop, training_degradation
from data.fetch import dataset_files
from data.images import load_image_uint8
from data.patches import SRCNNPatchDataset, SRPatchDataset
from data.resize import imresize

CONTRACT = ["task", "dataset", "scale", "method", "image", "metric", "value"]


def _smooth_image(rng: np.random.Generator, h: int, w: int, channels: int = 3) -> np.ndarray:
    """A photo-like (smooth plus some detail) uint8 image."""
    small = rng.uniform(0, 255, size=(max(2, h // 8), max(2, w // 8), channels))
    up = imresize(small, out_shape=(h, w))
    return np.clip(up + rng.normal(0, 6, size=up.shape), 0, 255).round().astype(np.uint8)


def _folder(path: Path, sizes: list[tuple[int, int]], seed: int, gray: tuple[int, ...] = ()) -> Path:
    path.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i, (h, w) in enumerate(sizes):
        arr = _smooth_image(rng, h, w)
        img = Image.fromarray(arr[..., 0], "L") if i in gray else Image.fromarray(arr)
        img.save(path / f"img{i}.png")
    return path


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    return _folder(tmp_path_factory.mktemp("corpus") / "train", [(80, 96), (72, 72), (100, 64), (40, 30)], seed=1)


@pytest.fixture(scope="module")
def eval_dir(tmp_path_factory) -> Path:
    return _folder(tmp_path_factory.mktemp("eval") / "tiny", [(44, 52), (48, 40), (41, 46)], seed=2, gray=(1,))


# ----------------------------------------------------------------------------------------------- patch streams


def test_sr_patches_shapes_alignment_and_determinism(corpus_dir):
    ds = SRPatchDataset(corpus_dir, scale=4, patch_size=32, seed=3)
    assert len(ds) == 3 and ds.corpus.n_too_small == 1  # the 40x30 image is skipped and counted
    for k in range(7):
        lr, hr = ds[k]
        assert lr.shape == (3, 8, 8) and hr.shape == (3, 32, 32) and lr.dtype == hr.dtype == torch.float32
        i, top, left = ds.crop_box(k)
        img = load_image_uint8(ds.corpus.files[i])
        assert torch.equal(hr, torch.tensor(img[top:top + 32, left:left + 32]).permute(2, 0, 1).float() / 255)
        assert torch.equal(lr, training_degradation(hr, 4, sigma=1.0))
    # one epoch visits every image once, in a seeded order
    assert sorted(ds.crop_box(k)[0] for k in range(3)) == [0, 1, 2]
    assert sorted(ds.crop_box(k)[0] for k in range(3, 6)) == [0, 1, 2]
    again = SRPatchDataset(corpus_dir, scale=4, patch_size=32, seed=3)
    other = SRPatchDataset(corpus_dir, scale=4, patch_size=32, seed=4)
    assert all(torch.equal(ds[k][1], again[k][1]) for k in range(6))
    assert any(not torch.equal(ds[k][1], other[k][1]) for k in range(6))


def test_sr_patches_lr_is_aligned_with_hr(corpus_dir):
    ds = SRPatchDataset(corpus_dir, scale=4, patch_size=64, sigma=0.0, quantize=False, seed=0)
    lr, hr = ds[0]
    up = imresize(lr, scale_factor=4)[..., 8:-8, 8:-8]
    err = {(dy, dx): float((up - hr[..., 8 + dy:56 + dy, 8 + dx:56 + dx]).pow(2).mean())
           for dy in (-1, 0, 1) for dx in (-1, 0, 1)}
    assert min(err, key=err.get) == (0, 0)


def test_sr_patches_reject_bad_arguments(corpus_dir):
    with pytest.raises(ValueError, match="multiple of scale"):
        SRPatchDataset(corpus_dir, scale=8, patch_size=36)
    with pytest.raises(IndexError):
        SRPatchDataset(corpus_dir, scale=4, patch_size=32)[-1]


def test_srcnn_patches_grid_is_dong_et_al(corpus_dir):
    ds = SRCNNPatchDataset(corpus_dir, scale=4, patch_size=33, stride=14, mode="grid", seed=0)
    dims = [(h - h % 4, w - w % 4) for w, h in ds.corpus.sizes]
    assert len(ds) == sum(((h - 33) // 14 + 1) * ((w - 33) // 14 + 1) for h, w in dims)
    boxes = {ds.crop_box(k) for k in range(len(ds))}
    assert len(boxes) == len(ds)  # one epoch = every sub-image once
    assert {ds.crop_box(k) for k in range(len(ds), 2 * len(ds))} == boxes
    assert [ds.crop_box(k) for k in range(len(ds), 2 * len(ds))] != [ds.crop_box(k) for k in range(len(ds))]
    # the block shuffle: with blocks of one image, consecutive samples stay within an image
    blocked = SRCNNPatchDataset(corpus_dir, scale=4, patch_size=33, stride=14, mode="grid", seed=0, block_images=1)
    order = [blocked.crop_box(k)[0] for k in range(len(ds))]
    assert sum(a != b for a, b in itertools.pairwise(order)) == 2  # 3 images: 2 switches
    assert {blocked.crop_box(k) for k in range(len(ds))} == boxes
    y_in, y_hr = ds[5]
    assert y_in.shape == y_hr.shape == (1, 33, 33)
    i, top, left = ds.crop_box(5)
    img = modcrop(torch.tensor(load_image_uint8(ds.corpus.files[i])).permute(2, 0, 1).float() / 255, 4)
    up = imresize(training_degradation(img, 4, sigma=0.0), scale_factor=4)
    assert torch.allclose(y_hr, rgb_to_y(img)[:, top:top + 33, left:left + 33], atol=1e-6)
    assert torch.allclose(y_in, rgb_to_y(up)[:, top:top + 33, left:left + 33], atol=1e-6)
    rnd = SRCNNPatchDataset(corpus_dir, scale=4, mode="random", seed=0)
    # one random sub-image per image per epoch; 40x30 is skipped (30 < 36 = 33 rounded up to the scale)
    assert len(rnd) == 3 and rnd.corpus.n_too_small == 1 and rnd[9][0].shape == (1, 33, 33)


# ------------------------------------------------------------------------------------------------------- SRCNN


def test_srcnn_shapes_and_colour():
    net = SRCNN()
    assert net.border == 6
    y = torch.rand(2, 1, 33, 33)
    assert net(y).shape == (2, 1, 33, 33)
    terms = srcnn_loss(net, (y, y))
    assert terms["total"].shape == (2,)
    groups = net.param_groups(1e-4)
    assert groups[0]["lr"] == 1e-4 and groups[1]["lr"] == pytest.approx(1e-5)
    out = srcnn_upscale(net, torch.rand(1, 3, 10, 12), 4)
    assert out.shape == (1, 3, 40, 48)
    with pytest.raises(ValueError, match="N, 1, H, W"):
        net(torch.rand(1, 3, 8, 8))
    rgb = torch.rand(1, 3, 9, 7, dtype=torch.float64)
    assert torch.allclose(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb, atol=1e-12)
    u8 = np.random.default_rng(0).integers(0, 256, size=(9, 7, 3), dtype=np.uint8)
    t = torch.from_numpy(u8).permute(2, 0, 1).double() / 255
    assert np.allclose(rgb_to_y(t)[0].numpy() * 255, rgb_to_y(u8), atol=1e-9)


# ----------------------------------------------------------------------------------------------------- harness


def _run(*args: str) -> int:
    return sr_cli.main([*args, "--no-progress"])


def _results(out: Path) -> list[dict[str, str]]:
    with open(out / "results.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == CONTRACT
        return list(reader)


def test_bicubic_smoke_on_set5_matches_bench_metrics(tmp_path):
    out = tmp_path / "run"
    assert _run("--profile", "smoke", "--methods", "bicubic", "--scales", "4", "--out", str(out),
                "--no-report") == 0
    rows = _results(out)
    assert {r["task"] for r in rows} == {"sr"} and {r["method"] for r in rows} == {"bicubic"}
    assert {r["metric"] for r in rows} == {"psnr_y", "ssim_y"}
    direct = []
    for path in dataset_files("Set5"):
        hr = modcrop(load_image_uint8(path, keep_gray=True), 4)
        direct.append(evaluate_pair(bicubic_upscale(make_lr(hr, 4), 4), hr, 4, hr.ndim == 2)["psnr_y"])
    mean = [r for r in rows if r["image"] == "__mean__" and r["metric"] == "psnr_y"]
    assert len(mean) == 1 and mean[0]["dataset"] == "Set5" and mean[0]["scale"] == "4"
    assert float(mean[0]["value"]) == pytest.approx(float(np.mean(direct)), abs=1e-12)
    assert abs(float(mean[0]["value"]) - 28.42) < 0.02  # the published bicubic number
    info = json.loads((out / "run.json").read_text())
    for key in ("profile", "device", "device_name", "versions", "git", "seed", "argv", "date", "stages",
                "iterations", "variant", "loss_weights", "identity", "datasets"):
        assert key in info, key
    assert info["task"] == "sr" and info["profile"] == "smoke" and info["status"] == "ok"
    assert info["stages"]["eval_bicubic_x4"]["status"] == "ok"
    assert "corpus" not in info  # nothing was trained
    assert info["datasets"]["Set5"]["n_images"] == 5
    assert (out / "images" / "sr" / "x4" / "Set5" / "baby_bicubic.png").is_file()
    assert (out / "images" / "sr" / "x4" / "Set5" / "baby_hr.png").is_file()


def _tiny_args(out: Path, corpus_dir: Path, eval_dir: Path, *extra: str) -> list[str]:
    return ["--profile", "smoke", "--scales", "4", "--datasets", str(eval_dir), "--corpus", str(corpus_dir),
            "--srcnn-corpus", str(corpus_dir), "--iterations", "2", "--patch-size", "32", "--batch-size", "2",
            "--vgg-weights", "random", "--no-lpips", "--out", str(out), *extra]


def test_tiny_end_to_end_with_training_resume_and_out_rules(tmp_path, corpus_dir, eval_dir):
    out = tmp_path / "run"
    assert _run(*_tiny_args(out, corpus_dir, eval_dir)) == 0
    rows = _results(out)
    methods = {r["method"] for r in rows}
    assert methods == {"bicubic", "srcnn", "johnson_pixel", "johnson_pixel_histmatch", "johnson_feat",
                       "johnson_feat_histmatch"}
    for method in methods:
        images = {r["image"] for r in rows if r["method"] == method and r["metric"] == "psnr_y"}
        assert images == {"img0", "img1", "img2", "__mean__"}  # img1 is 1-channel
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "ok", info["stages"]
    assert info["corpus"]["n_images"] == 3 and "substitutes_for" in info["corpus"]
    assert info["iterations"] == {"srcnn_x4": 2, "johnson_pixel_x4": 2, "johnson_feat_x4": 2}
    for name in info["iterations"]:
        with open(out / "logs" / f"train_{name}.csv", newline="") as f:
            log = list(csv.DictReader(f))
        assert [r["iteration"] for r in log] == ["1", "2"] and "wall_time_s" in log[0] and "total" in log[0]
        assert (out / "checkpoints" / f"{name}.pt").is_file()
    assert (out / "report" / "report.html").is_file()
    assert (out / "images" / "sr" / "x4" / "tiny" / "img0_johnson_feat_histmatch.png").is_file()

    # the same run again: refused without --resume; with --resume nothing is retrained and the numbers agree
    assert _run(*_tiny_args(out, corpus_dir, eval_dir)) == 2
    assert _run(*_tiny_args(out, corpus_dir, eval_dir, "--resume", "--no-report")) == 0
    info = json.loads((out / "run.json").read_text())
    assert all(t["already_complete"] for t in info["training"].values())
    assert len(info["sessions"]) == 2
    again = {(r["method"], r["image"], r["metric"]): r["value"] for r in _results(out)}
    assert again == {(r["method"], r["image"], r["metric"]): r["value"] for r in rows}

    # a different run is refused, even with --resume; --overwrite replaces it
    assert _run(*_tiny_args(out, corpus_dir, eval_dir, "--seed", "1", "--resume")) == 2
    assert _run(*_tiny_args(out, corpus_dir, eval_dir, "--methods", "bicubic", "--no-report")) == 2
    assert _run(*_tiny_args(out, corpus_dir, eval_dir, "--methods", "bicubic", "--overwrite", "--no-report")) == 0
    assert {r["method"] for r in _results(out)} == {"bicubic"}
    assert not (out / "checkpoints").exists()


def test_out_folder_that_is_not_a_run_is_left_alone(tmp_path, eval_dir, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    for extra in ((), ("--overwrite",)):
        assert _run("--profile", "smoke", "--methods", "bicubic", "--datasets", str(eval_dir), "--out", str(out),
                    *extra) == 2
    assert (out / "notes.txt").read_text() == "keep me" and sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert "not a run folder" in capsys.readouterr().err


def test_a_failing_method_leaves_the_others(tmp_path, corpus_dir, eval_dir, monkeypatch):
    """An out-of-memory while evaluating one method is recorded with the image, its size and the fixes; the other
    methods' results stay."""
    def broken_family(cli, model, scale):
        def run(lr, lr_t):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (boom)")
        return sr.SRMethod(cli, scale, run)

    monkeypatch.setattr(sr, "johnson_method", broken_family)
    out = tmp_path / "eval_fails"
    assert _run(*_tiny_args(out, corpus_dir, eval_dir, "--methods", "bicubic", "pixel", "--no-report")) == 1
    rows = _results(out)
    assert {r["method"] for r in rows} == {"bicubic"}
    assert any(r["image"] == "__mean__" for r in rows)
    stages = json.loads((out / "run.json").read_text())["stages"]
    assert stages["train_johnson_pixel_x4"]["status"] == "ok"
    error = stages["eval_pixel_x4"]["error"]
    assert stages["eval_pixel_x4"]["status"] == "failed" and "boom" in error
    assert re.search(r"\.png \(\d+x\d+ px HR, x4\)", error) and "--device cpu" in error, error
    assert stages["eval_bicubic_x4"]["status"] == "ok"


def test_a_failing_training_skips_only_its_evaluation(tmp_path, corpus_dir, eval_dir, monkeypatch):
    def broken_training(self, cli, scale):
        raise FloatingPointError("loss term 'feat' is nan at iteration 1")

    monkeypatch.setattr(sr.SRHarness, "train_johnson", broken_training)
    out = tmp_path / "train_fails"
    assert _run(*_tiny_args(out, corpus_dir, eval_dir, "--methods", "bicubic", "srcnn", "feat",
                            "--no-report")) == 1
    rows = _results(out)
    assert {r["method"] for r in rows} == {"bicubic", "srcnn"}
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "partial"
    assert info["stages"]["train_johnson_feat_x4"]["status"] == "failed"
    assert "iteration 1" in info["stages"]["train_johnson_feat_x4"]["error"]
    assert info["stages"]["eval_feat_x4"]["status"] == "skipped"


def test_cli_rejects_bad_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit):
        sr_cli.main(["--profile", "huge"])
    with pytest.raises(SystemExit):
        sr_cli.main(["--scales", "3"])
    with pytest.raises(SystemExit):
        sr_cli.main(["--iterations", "0"])
    assert _run("--profile", "smoke", "--methods", "bicubic", "--datasets", "Set6", "--out", str(tmp_path / "x")) == 2
    assert "unknown dataset" in capsys.readouterr().err and not (tmp_path / "x").exists()
    assert _run("--profile", "smoke", "--methods", "pixel", "--corpus", "coco_val2017",
                "--out", str(tmp_path / "y")) == 2
    assert "refusing to train on coco_val2017" in capsys.readouterr().err
    assert _run("--profile", "smoke", "--patch-size", "36", "--out", str(tmp_path / "z")) == 2


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit):
        sr_cli.main(["--help"])
    text = capsys.readouterr().out
    for option in ("--profile", "--scales", "--methods", "--datasets", "--out", "--corpus", "--variant", "--seed",
                   "--device", "--iterations", "--resume", "--overwrite", "--no-lpips", "smoke", "quick", "paper"):
        assert option in text, option


def test_profile_table_paper_is_the_protocol():
    p = SR_PROFILES["paper"]
    assert (p.iterations, p.batch_size, p.patch_size, p.lr, p.sigma) == (200_000, 4, 288, 1e-3, 1.0)
    assert set(p.datasets) == {"Set5", "Set14", "BSD100"} and set(p.lpips) == {"vgg", "alex"}


def test_reference_path_gives_the_fast_paths_results_on_cpu(tmp_path, corpus_dir, eval_dir):
    """On a CPU the fast path's config is the reference arithmetic, so the same run through either path
    writes the same results.csv, byte for byte (every method: bicubic, SRCNN, l_pixel, l_feat, histmatch), and
    run.json says which path it took and with which config."""
    outs = {p: tmp_path / p for p in ("fast", "reference")}
    for path, out in outs.items():
        assert _run(*_tiny_args(out, corpus_dir, eval_dir), "--path", path, "--no-report") == 0
    assert (outs["fast"] / "results.csv").read_bytes() == (outs["reference"] / "results.csv").read_bytes()
    assert {r["method"] for r in _results(outs["fast"])} >= {"bicubic", "srcnn", "johnson_pixel", "johnson_feat"}
    fast, ref = (json.loads((outs[p] / "run.json").read_text()) for p in ("fast", "reference"))
    assert fast["path"] == "fast" and fast["fast_config"]["train"]["label"]
    assert ref["path"] == "reference" and set(ref["fast_config"].values()) == {None}
