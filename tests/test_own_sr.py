"""`python -m bench.sr evaluate`: outputs folders and networks scored exactly like the built-in methods,
and every bad input refused with exit status 2, one message, no harness traceback and nothing written."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from baselines.bicubic import bicubic_upscale
from bench.sr import cli as sr
from data.degrade import make_lr, modcrop
from data.fetch import dataset_files
from data.images import load_image_uint8, save_image

NN_MODEL = """
import torch
from torch import nn


class Nearest(nn.Module):
    def __init__(self, scale=4, channels=3):
        super().__init__()
        self.scale, self.bias = scale, nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return nn.functional.interpolate(x, scale_factor=self.scale, mode="nearest") + self.bias


def build():
    return Nearest()


def build_wrong_size():
    return Nearest(scale=2)


class Nan(Nearest):
    def forward(self, x):
        return super().forward(x) * float("nan")


def build_nan():
    return Nan()


class OneChannel(Nearest):
    def forward(self, x):
        return super().forward(x)[:, :1]


def build_one_channel():
    return OneChannel()


class Crash(Nearest):
    def forward(self, x):
        raise RuntimeError("my forward is broken")


def build_crash():
    return Crash()
"""


def _evaluate(*args: str) -> int:
    return sr.main(["evaluate", *args, "--no-progress", "--no-report"])


def _rows(out: Path) -> dict[tuple[str, str, str, str, str], float]:
    with open(out / "results.csv", newline="") as f:
        return {(r["dataset"], r["scale"], r["method"], r["image"], r["metric"]): float(r["value"])
                for r in csv.DictReader(f)}


def _by_method(rows: dict, method: str) -> dict:
    return {(d, s, i, m): v for (d, s, meth, i, m), v in rows.items() if meth == method}


def _bicubic_outputs(folder: Path, scale: int, datasets: tuple[str, ...]) -> Path:
    """The suite's own bicubic outputs (as the built-in method makes them), saved as <dataset>/<stem>.png."""
    for ds in datasets:
        for p in dataset_files(ds):
            hr = modcrop(load_image_uint8(p, keep_gray=True), scale)
            save_image(bicubic_upscale(make_lr(hr, scale), scale), folder / ds / f"{p.stem}.png")
    return folder


def _check_bicubic_identity(tmp_path: Path, datasets: tuple[str, ...]) -> None:
    for scale in (4, 8):
        outputs = _bicubic_outputs(tmp_path / f"bicubic_x{scale}", scale, datasets)
        builtin, mine = tmp_path / f"builtin_x{scale}", tmp_path / f"mine_x{scale}"
        assert sr.main(["--profile", "smoke", "--methods", "bicubic", "--scales", str(scale), "--datasets",
                        *datasets, "--no-lpips", "--save-images", "0", "--out", str(builtin), "--no-report",
                        "--no-progress"]) == 0
        assert _evaluate("--outputs", str(outputs), "--scale", str(scale), "--datasets", *datasets, "--name",
                         "mybicubic", "--out", str(mine)) == 0
        expected, got = _by_method(_rows(builtin), "bicubic"), _by_method(_rows(mine), "mybicubic")
        n_images = sum(len(dataset_files(d)) for d in datasets)
        assert len(expected) == 2 * (n_images + len(datasets))  # psnr_y and ssim_y, per image and mean
        assert got == expected  # identical, per image, to the last bit
        info = json.loads((mine / "run.json").read_text())
        assert info["task"] == "sr" and info["status"] == "ok" and info["methods"] == ["mybicubic"]
        assert info["evaluated"]["kind"] == "outputs" and info["profile"] == "evaluate"
        assert info["stages"][f"eval_mybicubic_x{scale}"]["status"] == "ok"


def test_bicubic_outputs_score_identically_to_builtin_bicubic(tmp_path):
    """Set5 and Set14 (gray `bridge` included) at x4 and x8; BSD100 in the slow test below."""
    _check_bicubic_identity(tmp_path, ("Set5", "Set14"))


@pytest.mark.slow
def test_bicubic_outputs_score_identically_on_all_three_sets(tmp_path):
    _check_bicubic_identity(tmp_path, ("Set5", "Set14", "BSD100"))


@pytest.fixture
def model_file(tmp_path) -> Path:
    path = tmp_path / "my_net.py"
    path.write_text(NN_MODEL)
    return path


def test_model_end_to_end_on_set5_and_its_saved_outputs_give_identical_rows(tmp_path, model_file):
    run = tmp_path / "nn"
    assert _evaluate("--model", f"{model_file}:build", "--scale", "4", "--datasets", "Set5", "--name", "nearest",
                     "--save-images", "--out", str(run), "--device", "cpu") == 0
    rows = _by_method(_rows(run), "nearest")
    assert len(rows) == 2 * 6 and all(np.isfinite(list(rows.values())))
    assert 20 < rows[("Set5", "4", "__mean__", "psnr_y")] < 28.4  # nearest is worse than bicubic
    saved = run / "outputs" / "x4" / "Set5"
    assert sorted(p.name for p in saved.iterdir()) == sorted(f"{p.stem}.png" for p in dataset_files("Set5"))
    again = tmp_path / "again"
    assert _evaluate("--outputs", str(run / "outputs" / "x4"), "--scale", "4", "--datasets", "Set5", "--name",
                     "nearest", "--out", str(again)) == 0
    assert _by_method(_rows(again), "nearest") == rows
    assert _evaluate("--outputs", str(run / "outputs" / "x4"), "--scale", "4", "--datasets", "Set5", "--name",
                     "nearest", "--out", str(run), "--overwrite") == 2  # would delete its own input
    assert (run / "outputs" / "x4" / "Set5").is_dir()
    tiled = tmp_path / "tiled"
    assert _evaluate("--model", f"{model_file}:build", "--scale", "4", "--datasets", "Set5", "--name", "nearest",
                     "--tile", "40", "--out", str(tiled), "--device", "cpu") == 0
    assert _by_method(_rows(tiled), "nearest") == rows
    info = json.loads((run / "run.json").read_text())
    assert info["evaluated"]["kind"] == "model" and info["evaluated"]["model"] == f"{model_file}:build"


def test_model_as_package_module_with_weights_and_y_input(tmp_path, monkeypatch):
    pkg = tmp_path / "pkg" / "mynets"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "ynet.py").write_text(
        "import torch\nfrom torch import nn\n\n"
        "class Y(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.gain = nn.Parameter(torch.ones(1))\n"
        "    def forward(self, y):\n"
        "        assert y.shape[1] == 1\n"
        "        return nn.functional.interpolate(y, scale_factor=4, mode='bicubic') * self.gain\n\n"
        "def build():\n    return Y()\n")
    monkeypatch.syspath_prepend(str(tmp_path / "pkg"))
    import torch

    torch.save({"gain": torch.ones(1)}, tmp_path / "w.pt")
    out = tmp_path / "y"
    assert _evaluate("--model", "mynets.ynet:build", "--weights", str(tmp_path / "w.pt"), "--input", "y",
                     "--scale", "4", "--datasets", "Set5", "--name", "ybicubic", "--out", str(out),
                     "--device", "cpu") == 0
    assert 27 < _rows(out)[("Set5", "4", "ybicubic", "__mean__", "psnr_y")] < 29
    # weights that do not fit
    torch.save({"nope": torch.ones(1)}, tmp_path / "bad.pt")
    assert _evaluate("--model", "mynets.ynet:build", "--weights", str(tmp_path / "bad.pt"), "--input", "y",
                     "--scale", "4", "--datasets", "Set5", "--name", "y2", "--out", str(tmp_path / "y2")) == 2
    assert not (tmp_path / "y2").exists()


# ---------------------------------------------------------------------------------------------- bad input


def _gradient(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


@pytest.fixture
def hr_dir(tmp_path) -> Path:
    """A small evaluation set: two colour images (one not a multiple of 4) and a gray one."""
    folder = tmp_path / "hr" / "mini"
    folder.mkdir(parents=True)
    Image.fromarray(_gradient(50, 42, 1)).save(folder / "a.png")
    Image.fromarray(_gradient(40, 48, 2)).save(folder / "b.png")
    Image.fromarray(_gradient(44, 44, 3)[..., 0], "L").save(folder / "g.png")
    return folder


def _mini_outputs(folder: Path, hr_dir: Path, scale: int = 4) -> Path:
    _bicubic_like(folder, hr_dir, scale)
    return folder


def _bicubic_like(folder: Path, hr_dir: Path, scale: int) -> None:
    (folder / "mini").mkdir(parents=True, exist_ok=True)
    for p in sorted(hr_dir.iterdir()):
        hr = modcrop(load_image_uint8(p, keep_gray=True), scale)
        save_image(bicubic_upscale(make_lr(hr, scale), scale), folder / "mini" / f"{p.stem}.png")


def _refused(capsys, out: Path, *args: str) -> str:
    assert _evaluate(*args, "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert not out.exists(), "nothing may be written to --out on bad input"
    assert "Traceback" not in err, err
    return err


def test_missing_extra_and_wrong_size_outputs(tmp_path, hr_dir, capsys):
    outputs = _mini_outputs(tmp_path / "outs", hr_dir)
    out = tmp_path / "run"
    base = ("--outputs", str(outputs), "--scale", "4", "--datasets", str(hr_dir), "--name", "mine")
    # extra files: warned about and ignored
    (outputs / "mini" / "zz_extra.png").write_bytes((outputs / "mini" / "a.png").read_bytes())
    (outputs / "mini" / "notes.txt").write_text("hi")
    assert _evaluate(*base, "--out", str(out)) == 0
    printed = capsys.readouterr()
    assert "zz_extra.png" in printed.out + printed.err and "notes.txt" in printed.out + printed.err
    assert {k[3] for k in _rows(out)} == {"a", "b", "g", "__mean__"}
    # missing outputs: every one named with its dataset, stem and expected size, in one message
    (outputs / "mini" / "a.png").rename(tmp_path / "a.png")
    (outputs / "mini" / "g.png").unlink()
    err = _refused(capsys, tmp_path / "r1", *base)
    assert "2 problems" in err and "mini image 'a'" in err and "40x48 px" in err and "mini image 'g'" in err
    assert "44x44 px" in err
    # wrong sizes: the un-modcropped size and an output off by the scale, each with both sizes and the fix
    Image.fromarray(_gradient(50, 42, 5)).save(outputs / "mini" / "a.png")  # HR size 42x50, modcropped 40x48
    Image.fromarray(_gradient(44, 40, 5)[..., 0], "L").save(outputs / "mini" / "g.png")  # 40x44, want 44x44
    err = _refused(capsys, tmp_path / "r2", *base)
    assert "is 42x50 px, but the modcropped HR of mini/a.png is 40x48 px" in err and "before modcrop" in err
    assert "is 40x44 px, but the modcropped HR of mini/g.png is 44x44 px" in err and "exactly 44x44" in err


def test_unreadable_16bit_gray_and_name_clash(tmp_path, hr_dir, capsys, caplog):
    outputs = _mini_outputs(tmp_path / "outs", hr_dir)
    base = ("--outputs", str(outputs), "--scale", "4", "--datasets", str(hr_dir))
    reference = tmp_path / "ref"
    assert _evaluate(*base, "--name", "mine", "--out", str(reference)) == 0
    expected = _by_method(_rows(reference), "mine")
    # NAME clashing with a built-in method
    for name in ("bicubic", "johnson_feat_histmatch", "srcnn"):
        err = _refused(capsys, tmp_path / "clash", *base, "--name", name)
        assert f"--name {name!r}" in err and "method of this suite" in err
    # 16-bit gray output of the gray image, and an 8-bit gray output of a colour image: converted, logged, scored
    g = load_image_uint8(outputs / "mini" / "g.png", keep_gray=True)
    Image.fromarray(g.astype(np.uint16) * 257).save(outputs / "mini" / "g.png")  # round(v*257*255/65535) == v
    assert Image.open(outputs / "mini" / "g.png").mode.startswith("I")
    b = load_image_uint8(outputs / "mini" / "b.png")
    gray_b = b[..., 1]
    Image.fromarray(gray_b, "L").save(outputs / "mini" / "b.png")
    caplog.set_level("INFO")
    converted = tmp_path / "converted"
    assert _evaluate(*base, "--name", "mine", "--out", str(converted)) == 0
    got = _by_method(_rows(converted), "mine")
    assert {k: v for k, v in got.items() if k[2] in ("g", "a")} == {k: v for k, v in expected.items()
                                                                    if k[2] in ("g", "a")}
    info = json.loads((converted / "run.json").read_text())
    conv = " ".join(info["evaluated"]["conversions"])
    assert "16-bit" in conv and "gray output replicated to RGB" in conv
    assert "gray output replicated to RGB" in caplog.text
    # an unreadable output: named, and nothing written
    (outputs / "mini" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    err = _refused(capsys, tmp_path / "r3", *base, "--name", "mine")
    assert str(outputs / "mini" / "a.png") in err and "[unreadable]" in err
    # ... or skipped with --skip-unreadable: the rest is scored, the mean says over how many
    skipped = tmp_path / "skipped"
    assert _evaluate(*base, "--name", "mine", "--skip-unreadable", "--out", str(skipped)) == 0
    info = json.loads((skipped / "run.json").read_text())
    assert [Path(s["file"]).name for s in info["skipped_files"]] == ["a.png"]
    assert info["datasets"]["mini"]["mean_over"] == "over 2 of 3 images"
    assert {k[3] for k in _rows(skipped)} == {"b", "g", "__mean__"}


def test_whole_folder_check_reports_every_problem_and_skip_unreadable(tmp_path, hr_dir, capsys):
    (hr_dir / "broken1.png").write_bytes(b"garbage")
    (hr_dir / "empty.png").write_bytes(b"")
    Image.fromarray(_gradient(6, 6, 9)).save(hr_dir / "tiny.png")
    data = (hr_dir / "a.png").read_bytes()
    (hr_dir / "truncated.png").write_bytes(data[: len(data) // 2])
    model = tmp_path / "m.py"
    model.write_text(NN_MODEL)
    base = ("--model", f"{model}:build", "--scale", "4", "--datasets", str(hr_dir), "--name", "nn",
            "--device", "cpu")
    err = _refused(capsys, tmp_path / "r", *base)
    assert "4 problems" in err
    for name in ("broken1.png", "empty.png", "tiny.png", "truncated.png"):
        assert name in err, name
    assert "6x6 px is too small for x4" in err and "--skip-unreadable" in err
    # the built-in harness checks a --datasets folder whole too: every problem in one message
    assert sr.main(["--profile", "smoke", "--methods", "bicubic", "--scales", "4", "--datasets", str(hr_dir),
                    "--out", str(tmp_path / "builtin"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "4 problems" in err and "truncated.png" in err and not (tmp_path / "builtin").exists()
    # --skip-unreadable: the rest is scored; what was skipped is in the log, run.json and the notes (report)
    out = tmp_path / "skip"
    assert _evaluate(*base, "--skip-unreadable", "--out", str(out)) == 0
    printed = capsys.readouterr()
    assert "over 3 of 7 images" in printed.out
    info = json.loads((out / "run.json").read_text())
    assert sorted(Path(s["file"]).name for s in info["skipped_files"]) == ["broken1.png", "empty.png", "tiny.png",
                                                                          "truncated.png"]
    assert info["datasets"]["mini"]["mean_over"] == "over 3 of 7 images"
    assert any("over 3 of 7 images" in n and "truncated.png" in n for n in info["notes"])
    assert {k[3] for k in _rows(out)} == {"a", "b", "g", "__mean__"}


@pytest.mark.parametrize("factory, words", [
    ("build_wrong_size", ["returned shape (1, 3, 24, 20)", "expected (1, 3, 48, 40)"]),
    ("build_nan", ["non-finite", "(1, 3, 48, 40)"]),
    ("build_one_channel", ["returned shape (1, 1, 48, 40)", "expected (1, 3, 48, 40)", "--input y"]),
])
def test_bad_model_outputs_stop_naming_image_and_shapes(tmp_path, hr_dir, model_file, capsys, factory, words):
    err = _refused(capsys, tmp_path / "run", "--model", f"{model_file}:{factory}", "--scale", "4", "--datasets",
                   str(hr_dir), "--name", "bad", "--device", "cpu")
    assert "mini/a.png" in err and "LR input (1, 3, 12, 10)" in err, err  # HR 42x50 -> modcrop 40x48 -> 10x12
    for w in words:
        assert w in err, (w, err)


def test_user_code_errors_show_only_the_users_traceback(tmp_path, hr_dir, model_file, capsys):
    broken = tmp_path / "broken_net.py"
    broken.write_text("import torch\n\n\ndef helper():\n    return 1 / 0\n\n\nVALUE = helper()\n\ndef build():\n"
                      "    pass\n")
    base = ("--scale", "4", "--datasets", str(hr_dir), "--name", "x", "--device", "cpu")
    assert _evaluate("--model", f"{broken}:build", *base, "--out", str(tmp_path / "r")) == 2
    err = capsys.readouterr().err
    assert err.count("Traceback") == 1 and "broken_net.py\", line 8" in err and "ZeroDivisionError" in err
    assert "importlib" not in err and "bench/" not in err and not (tmp_path / "r").exists()
    # an error inside the network's forward: its traceback, the image, and nothing written
    assert _evaluate("--model", f"{model_file}:build_crash", *base, "--out", str(tmp_path / "r2")) == 2
    err = capsys.readouterr().err
    assert err.count("Traceback") == 1 and "my forward is broken" in err and "my_net.py" in err
    assert "bench/" not in err and "mini/a.png" in err and not (tmp_path / "r2").exists()
    # a spec without FACTORY, a missing file, a missing factory
    for spec, words in ((str(model_file), "PATH.py:FACTORY"), (f"{tmp_path}/nope.py:build", "no such file"),
                        (f"{model_file}:nothing", "defines no callable 'nothing'")):
        assert _evaluate("--model", spec, *base, "--out", str(tmp_path / "r3")) == 2
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err and not (tmp_path / "r3").exists()


def test_out_rules_and_option_misuse(tmp_path, hr_dir, capsys):
    outputs = _mini_outputs(tmp_path / "outs", hr_dir)
    base = ("--outputs", str(outputs), "--scale", "4", "--datasets", str(hr_dir), "--name", "mine")
    out = tmp_path / "run"
    assert _evaluate(*base, "--out", str(out)) == 0
    assert _evaluate(*base, "--out", str(out)) == 2 and "--overwrite" in capsys.readouterr().err
    assert _evaluate(*base, "--out", str(out), "--overwrite") == 0
    err = _refused(capsys, tmp_path / "r", *base, "--tile", "16")
    assert "--tile applies to --model only" in err
    err = _refused(capsys, tmp_path / "r", "--outputs", str(tmp_path / "nowhere"), "--scale", "4", "--datasets",
                   str(hr_dir), "--name", "mine")
    assert "is not a folder" in err


def test_evaluate_takes_the_harness_lpips_and_save_images_options(tmp_path, hr_dir, model_file):
    """`evaluate` shares the harness's option definitions: --no-lpips is accepted (and wins over --lpips), and
    --save-images N saves the first N outputs of each dataset (alone: every output, as the flag always did)."""
    base = ("--model", f"{model_file}:build", "--scale", "4", "--datasets", str(hr_dir), "--name", "nearest")
    run = tmp_path / "two"
    assert _evaluate(*base, "--lpips", "vgg", "--no-lpips", "--save-images", "2", "--out", str(run)) == 0
    info = json.loads((run / "run.json").read_text())
    assert info["lpips"]["requested"] == [] and info["lpips"]["ran"] == []
    assert not any(metric.startswith("lpips") for *_, metric in _rows(run))
    assert len(list((run / "outputs" / "x4" / "mini").iterdir())) == 2
    every = tmp_path / "every"
    assert _evaluate(*base, "--save-images", "--out", str(every)) == 0
    assert sorted(p.name for p in (every / "outputs" / "x4" / "mini").iterdir()) == ["a.png", "b.png", "g.png"]
    nothing = tmp_path / "none"
    assert _evaluate(*base, "--out", str(nothing)) == 0
    assert not (nothing / "outputs").exists()
