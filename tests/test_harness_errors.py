"""Bad input to the harnesses: every unusable argument is refused with exit status 2, a message naming the
option and the fix, and nothing written; a NaN names the loss term that caused it; training images too small for the
patch (SR: skipped and counted) or the crop (style: upscaled and counted) are logged and recorded in run.json.

Other files cover the rest: bad image files (test_images.py), data and weights hashes (test_data.py,
test_weights.py), SR --out rules (test_sr_harness.py), the NaN checkpoint (test_train_loop.py), resume
(test_resume.py), reports (test_report.py), reproducibility and run.json (test_reproducibility.py).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.run.errors import describe_failure, is_out_of_memory
from bench.run.options import non_negative_int, positive_float, positive_int
from bench.sr import cli as sr
from bench.style import cli as style
from bench.training.loop import first_non_finite

TINY_STYLE = ["--profile", "smoke", "--vgg-weights", "random", "--train-size", "32", "--sizes", "32",
              "--iterations", "2", "--gatys-iterations", "2", "--device", "cpu"]


pytestmark = pytest.mark.usefixtures("one_thread")


def _images(folder: Path, sizes: list[tuple[int, int]], seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i, (h, w) in enumerate(sizes):
        paths.append(folder / f"img{i}.png")
        Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)).save(paths[-1])
    return paths


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------ style: arguments


@pytest.mark.parametrize("args, option", [
    (["--profile", "fast"], "--profile"),
    (["--iterations", "0"], "--iterations"),
    (["--iterations", "-5"], "--iterations"),
    (["--batch-size", "0"], "--batch-size"),
    (["--sizes", "0"], "--sizes"),
    (["--sizes", "256", "-64"], "--sizes"),
    (["--sizes", "30"], "--sizes"),
    (["--train-size", "0"], "--train-size"),
    (["--train-size", "30"], "--train-size"),
    (["--gatys-iterations", "0"], "--gatys-iterations"),
    (["--n-images", "0"], "--n-images"),
    (["--style-size", "-1"], "--style-size"),
    (["--lr", "0"], "--lr"),
    (["--lr", "nan"], "--lr"),
    (["--num-workers", "-1"], "--num-workers"),
    (["--stages", "everything"], "--stages"),
])
def test_style_refuses_bad_values_before_writing(tmp_path, capsys, args, option):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        style.main([*args, "--out", str(out)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err or f"{option}:" in err or f"{option} must" in err, err
    assert not out.exists()


@pytest.mark.parametrize("args, expected", [
    (["--styles", "la_mouse"], ["--styles la_mouse", "unknown dataset 'la_mouse'"]),
    (["--styles", "la_muse", "the_muse"], ["--styles la_muse and the_muse both give the image"]),
    (["--train-corpus", "coco_train2071"], ["--train-corpus coco_train2071", "did you mean 'coco_train2017'"]),
    (["--train-corpus", "coco_val2017"], ["--train-corpus coco_val2017", "refusing to train on coco_val2017"]),
    (["--eval-set", "coco_vals"], ["--eval-set coco_vals", "unknown dataset"]),
    (["--content-set", "/no/such/folder"], ["--content-set /no/such/folder", "does not exist"]),
    (["--device", "cuda:0"] if not torch.cuda.is_available() else ["--device", "tpu"], ["--device"]),
])
def test_style_refuses_unknown_names_with_status_2_and_writes_nothing(tmp_path, capsys, args, expected):
    out = tmp_path / "out"
    assert style.main([*TINY_STYLE, *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("reproduce-style: error:") and "Traceback" not in err
    for text in expected:
        assert text in err, (text, err)
    assert not out.exists()


def test_style_refuses_an_unreadable_evaluation_image(tmp_path, capsys):
    folder = tmp_path / "eval"
    _images(folder, [(40, 40), (40, 40)])
    (folder / "img1.png").write_bytes(b"")
    out = tmp_path / "out"
    assert style.main([*TINY_STYLE, "--eval-set", str(folder), "--stages", "fig5", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--eval-set" in err and "img1.png" in err and not out.exists()


def test_style_checks_the_evaluation_and_content_sets_whole_and_names_every_broken_file(tmp_path, capsys):
    folder = tmp_path / "eval"
    _images(folder, [(40, 40)] * 4)
    (folder / "img1.png").write_bytes(b"")
    data = (folder / "img3.png").read_bytes()
    (folder / "img3.png").write_bytes(data[: len(data) // 2])  # truncated: only a full decode finds it
    content = tmp_path / "content"
    _images(content, [(40, 40)] * 2, seed=1)
    (content / "img0.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    args = [*TINY_STYLE, "--n-images", "4", "--eval-set", str(folder), "--content-set", str(content), "--stages",
            "fig5", "outputs", "--out", str(out)]
    assert style.main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and not out.exists()
    assert f"--eval-set {folder}" in err and f"--content-set {content}" in err
    for name in (folder / "img1.png", folder / "img3.png", content / "img0.png"):
        assert str(name) in err, (name, err)
    assert str(folder / "img0.png") not in err and str(folder / "img2.png") not in err
    assert "2 problems" in err and "1 problem " in err


def test_style_refuses_a_folder_holding_another_run_and_changes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"task": "style", "identity": {"seed": 5}}))
    (out / "results.csv").write_text("task,dataset,scale,method,image,metric,value\n")
    before = _tree(out)
    args = [*TINY_STYLE, "--stages", "train", "--out", str(out)]
    assert style.main(args) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert style.main([*args, "--resume"]) == 2
    err = capsys.readouterr().err
    assert "different settings" in err and "--overwrite" in err
    assert _tree(out) == before
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    assert style.main([*TINY_STYLE, "--out", str(other), "--overwrite"]) == 2
    assert "not a run folder" in capsys.readouterr().err and _tree(other) == {"notes.txt": b"keep me"}


# ------------------------------------------------------------------------------------------ SR: arguments


@pytest.mark.parametrize("args, option", [
    (["--profile", "fast"], "--profile"),
    (["--scales", "3"], "--scales"),
    (["--scales", "0"], "--scales"),
    (["--methods", "esrgan"], "--methods"),
    (["--iterations", "0"], "--iterations"),
    (["--iterations", "-2"], "--iterations"),
    (["--srcnn-iterations", "0"], "--srcnn-iterations"),
    (["--batch-size", "0"], "--batch-size"),
    (["--batch-size", "-4"], "--batch-size"),
    (["--patch-size", "0"], "--patch-size"),
    (["--patch-size", "-32"], "--patch-size"),
    (["--lr", "0"], "--lr"),
    (["--save-images", "-1"], "--save-images"),
])
def test_sr_refuses_bad_values_before_writing(tmp_path, capsys, args, option):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        sr.main([*args, "--out", str(out)])
    assert e.value.code == 2
    assert f"argument {option}" in capsys.readouterr().err
    assert not out.exists()


def test_both_harnesses_refuse_an_unusable_device_with_the_fix(tmp_path, capsys):
    bad = "cuda:0" if not torch.cuda.is_available() else "tpu"
    fix = "use --device cpu" if bad == "cuda:0" else "use cpu, cuda or cuda:N"
    assert sr.main(["--device", bad, "--methods", "bicubic", "--out", str(tmp_path / "sr")]) == 2
    assert style.main([*TINY_STYLE, "--device", bad, "--out", str(tmp_path / "style")]) == 2
    err = capsys.readouterr().err
    assert err.count(f"--device {bad}") == 2 and err.count(fix) == 2, err
    assert not (tmp_path / "sr").exists() and not (tmp_path / "style").exists()


def test_sr_names_the_option_of_a_bad_name_and_refuses_an_unreadable_evaluation_image(tmp_path, capsys):
    out = tmp_path / "out"
    base = ["--profile", "smoke", "--methods", "bicubic", "--no-report", "--out", str(out)]
    assert sr.main([*base, "--datasets", "Set6"]) == 2
    err = capsys.readouterr().err
    assert "--datasets Set6" in err and "did you mean 'Set5'" in err
    assert sr.main(["--profile", "smoke", "--methods", "pixel", "--corpus", "coco_trian2017", "--out", str(out)]) == 2
    assert "--corpus coco_trian2017" in capsys.readouterr().err
    assert sr.main(["--profile", "smoke", "--scales", "8", "--patch-size", "36", "--out", str(out)]) == 2
    assert "--patch-size 36 is not a multiple of scale(s) [8]" in capsys.readouterr().err
    folder = tmp_path / "eval"
    _images(folder, [(40, 40), (40, 48)])
    data = (folder / "img1.png").read_bytes()
    (folder / "img1.png").write_bytes(data[: len(data) // 2])  # truncated
    assert sr.main([*base, "--datasets", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "--datasets" in err and "img1.png" in err and "Traceback" not in err
    assert not out.exists()


def test_sr_skip_unreadable_scores_the_rest_and_lists_what_it_skipped(tmp_path, capsys, caplog):
    folder = tmp_path / "eval"
    _images(folder, [(40, 40), (40, 48), (48, 40), (40, 40)])
    (folder / "img1.png").write_bytes(b"")
    data = (folder / "img2.png").read_bytes()
    (folder / "img2.png").write_bytes(data[: len(data) // 2])  # truncated
    out = tmp_path / "out"
    args = ["--profile", "smoke", "--methods", "bicubic", "--scales", "4", "--datasets", str(folder),
            "--out", str(out)]
    assert sr.main([*args, "--no-report"]) == 2
    err = capsys.readouterr().err
    assert "img1.png" in err and "img2.png" in err and "--skip-unreadable" in err and not out.exists()
    caplog.set_level("WARNING")
    assert sr.main([*args, "--skip-unreadable"]) == 0
    assert "means over 2 of 4 images" in capsys.readouterr().out
    assert f"skipped {folder / 'img1.png'} (unreadable)" in caplog.text
    assert f"skipped {folder / 'img2.png'} (unreadable)" in caplog.text
    info = json.loads((out / "run.json").read_text())
    assert sorted(s["file"] for s in info["skipped_files"]) == [str(folder / "img1.png"), str(folder / "img2.png")]
    assert {s["dataset"] for s in info["skipped_files"]} == {"eval"}
    entry = info["datasets"]["eval"]
    assert (entry["n_images"], entry["n_images_total"], entry["mean_over"]) == (2, 4, "over 2 of 4 images")
    assert any("over 2 of 4 images" in n and "img2.png" in n for n in info["notes"])
    rows = [r for r in csv.DictReader((out / "results.csv").open()) if r["metric"] == "psnr_y"]
    assert sorted(r["image"] for r in rows) == ["__mean__", "img0", "img3"]
    report = (out / "report" / "report.html").read_text()
    assert "over 2 of 4 images" in report and "img2.png" in report


def test_sr_refuses_a_folder_holding_another_run_and_changes_nothing(tmp_path, capsys):
    folder = tmp_path / "eval"
    _images(folder, [(40, 40)])
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"task": "sr", "identity": {"seed": 5}}))
    before = _tree(out)
    args = ["--profile", "smoke", "--methods", "bicubic", "--datasets", str(folder), "--no-report", "--out", str(out)]
    for extra in ((), ("--resume",)):
        assert sr.main([*args, *extra]) == 2
        err = capsys.readouterr().err
        assert "holds a different run" in err and "--overwrite" in err
    assert _tree(out) == before


# ------------------------------------------------------------------------------------------ NaN / Inf


def test_the_first_non_finite_term_is_blamed_not_total():
    nan, inf = math.nan, math.inf
    term, value = first_non_finite(["total", "content", "style", "tv"], [nan, 1.0, nan, inf])
    assert term == "style" and math.isnan(value)  # the first bad term in order, not the 'total' it poisoned
    assert first_non_finite(["total", "a", "b"], [inf, 1.0, 2.0]) == ("total", inf)  # only the sum overflowed
    assert first_non_finite(["total", "a"], [1.0, 2.0]) is None


def test_a_nan_style_term_is_named_in_the_style_harness(tmp_path):
    out = tmp_path / "r"
    assert style.main([*TINY_STYLE, "--style-weight", "nan", "--out", str(out), "--stages", "train"]) == 1
    error = json.loads((out / "run.json").read_text())["stages"]["train:la_muse"]["error"]
    assert "iteration 1" in error and "loss term 'style' is nan" in error


# ------------------------------------------------------------------------------------------ small training images


def test_sr_skips_and_counts_images_smaller_than_the_patch(tmp_path, caplog):
    corpus = tmp_path / "train"
    _images(corpus, [(48, 56), (40, 40), (20, 60)])  # img2 is 20 px high: under the 32 px patch
    (corpus / "zero.png").write_bytes(b"")
    folder = tmp_path / "eval"
    _images(folder, [(40, 44)], seed=1)
    out = tmp_path / "run"
    with caplog.at_level("INFO"):
        assert sr.main(["--profile", "smoke", "--scales", "4", "--methods", "pixel", "--datasets", str(folder),
                        "--corpus", str(corpus), "--iterations", "1", "--patch-size", "32", "--batch-size", "2",
                        "--no-lpips", "--no-report", "--no-progress", "--device", "cpu", "--out", str(out)]) == 0
    info = json.loads((out / "run.json").read_text())["corpus"]
    assert (info["n_images"], info["n_skipped_too_small"], info["n_skipped_unreadable"]) == (2, 1, 1)
    assert sorted(Path(p).name for p in info["skipped_files"]) == ["img2.png", "zero.png"]
    assert "img2.png" in caplog.text and "60x20 is smaller than the minimum 32x32" in caplog.text
    assert "2 usable images of 4 (1 unreadable, 1 too small)" in caplog.text


def test_style_upscales_and_counts_images_smaller_than_the_crop(tmp_path, caplog):
    corpus = tmp_path / "train"
    _images(corpus, [(48, 56), (20, 60), (40, 40)])  # img1's shorter side (20) is under the 32 px crop
    (corpus / "zero.png").write_bytes(b"")
    out = tmp_path / "run"
    with caplog.at_level("INFO"):
        assert style.main([*TINY_STYLE, "--train-corpus", str(corpus), "--stages", "train", "--out", str(out)]) == 0
    info = json.loads((out / "run.json").read_text())["corpus"]
    assert (info["n_images"], info["n_upscaled_smaller_than_crop"], info["n_skipped_unreadable"]) == (3, 1, 1)
    assert [Path(p).name for p in info["upscaled_files"]] == ["img1.png"]
    assert "img1.png (60x20) is smaller than the 32 px training crop: upscaled" in caplog.text
    assert "zero.png" in caplog.text  # the unreadable one: skipped, with its reason


# ------------------------------------------------------------------------------------ shared parsers and failures

@pytest.mark.parametrize(("parse", "text", "message"), [
    (positive_int, "0", "must be a positive integer, got 0"), (positive_int, "x", "'x' is not an integer"),
    (positive_int, "1.5", "'1.5' is not an integer"), (non_negative_int, "-1", "must be >= 0, got -1"),
    (positive_float, "nan", "must be a positive number, got nan"), (positive_float, "inf", "got inf"),
    (positive_float, "-1e-3", "got -1e-3"), (positive_float, "fast", "'fast' is not a number"),
])
def test_shared_parsers_refuse_with_the_value(parse, text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(message)):
        parse(text)


def test_shared_parsers_accept_good_values():
    assert (positive_int("3"), non_negative_int("0"), positive_float("1e-3")) == (3, 0, 1e-3)


def test_out_of_memory_failures_name_where_and_the_fix():
    cpu = RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried "
                       "to allocate 68719476736 bytes")
    cuda = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")
    for error in (cpu, cuda, MemoryError()):
        assert is_out_of_memory(error)
        text = describe_failure(error, "stage fig5:1024")
        assert text.startswith("stage fig5:1024: ") and "leave this size out" in text and "--device cpu" in text
    plain = describe_failure(ValueError("bad"), "Set5/baby.png")
    assert plain == "Set5/baby.png: ValueError: bad" and not is_out_of_memory(ValueError("bad"))
