"""`--compile auto` (bench.training.compile_policy, bench.training.exec_path): the break-even rule with known answers both ways, the
smoke profile never compiling, the command line's three spellings, and run.json recording each decision and why."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from image_folders import random_image_folder

from bench.sr import cli as sr
from bench.sr.config import build_parser
from bench.training import compile_policy as cp
from bench.training.compile_policy import MeasuredCost, forward_decision, training_decision
from bench.training.exec_path import ExecPath


def test_training_break_even_at_the_measured_size_both_ways():
    """At the measured SR shape (4 x 288 px) compiling pays after 77 s / (6.61 s - 4.71 s) = 40.5 steps."""
    pixels = 4 * 288 * 288
    assert training_decision("auto", "cpu", "quick", "sr", 41, pixels).compile
    assert not training_decision("auto", "cpu", "quick", "sr", 40, pixels).compile
    # style at 4 x 256 px: 206 s / (12.00 s - 8.06 s) = 52.3 steps
    assert training_decision("auto", "cpu", "quick", "style", 53, 4 * 256 * 256).compile
    assert not training_decision("auto", "cpu", "quick", "style", 52, 4 * 256 * 256).compile


def test_training_break_even_uses_the_measurement_nearest_in_size():
    """At 4 x 72 px (the quick and cpu-x4 patches) the measured step saves 0.2223 - 0.2010 s after 36.7 s of
    compiling: 1,723 steps are needed (scaling the 4 x 288 px measurement by pixels predicted 648). The quick
    profile's 300 do not pay, cpu-x4's 5,000 do; two compilations need twice the steps. Between two measurements
    the nearer one in log size is scaled (4 x 144 px: a tie, so the smaller one, listed first)."""
    pixels = 4 * 72 * 72
    need = 36.7 / (0.2223 - 0.2010)
    assert cp.nearest_cost(cp.TRAIN_COSTS["sr"], pixels).pixels == pixels
    assert cp.nearest_cost(cp.TRAIN_COSTS["sr"], pixels).break_even(pixels) == pytest.approx(need)
    assert not training_decision("auto", "cpu", "quick", "sr", 300, pixels).compile
    assert not training_decision("auto", "cpu", "cpu-x4", "sr", int(need), pixels).compile
    assert training_decision("auto", "cpu", "cpu-x4", "sr", int(need) + 1, pixels).compile
    assert training_decision("auto", "cpu", "cpu-x4", "sr", 5000, pixels).compile
    assert not training_decision("auto", "cpu", "cpu-x4", "sr", 3000, pixels, compilations=2).compile
    assert cp.nearest_cost(cp.TRAIN_COSTS["sr"], 4 * 144 * 144).pixels == pixels
    assert cp.nearest_cost(cp.TRAIN_COSTS["sr"], 4 * 256 * 256).pixels == 4 * 288 * 288


def test_smoke_never_compiles_and_on_off_are_obeyed():
    for device in ("cpu", "cuda"):
        d = training_decision("auto", device, "smoke", "sr", 10**9, 4 * 288 * 288)
        assert not d.compile and "smoke" in d.why
        assert not forward_decision("auto", device, "smoke", "sr", [(512, 512)] * 10**5, default=True).compile
    assert training_decision("on", "cpu", "smoke", "sr", 1, 1).compile
    assert not training_decision("off", "cpu", "paper", "sr", 10**9, 4 * 288 * 288).compile
    assert not training_decision("auto", "cpu", "paper", "srcnn", 10**9, 64 * 33 * 33).compile  # not measured
    assert training_decision("auto", "cuda", "quick", "sr", 1, 1).compile  # CUDA: the device default


def test_forward_decision_counts_images_per_shape():
    """One 512 x 512 SR output saves 2.39 s x (1 - 1/1.3) = 0.55 s; a shape costs 90 s to compile."""
    assert not forward_decision("auto", "cpu", "quick", "sr", [(512, 512)] * 163).compile  # 89.9 s saved
    assert forward_decision("auto", "cpu", "quick", "sr", [(512, 512)] * 164).compile  # 90.5 s saved
    many_shapes = [(512, 512 + i) for i in range(1000)]
    assert not forward_decision("auto", "cpu", "quick", "sr", many_shapes).compile
    d = forward_decision("auto", "cpu", "quick", "style", [(256, 256)] * 8)
    assert not d.compile and "8 image(s) in 1 shape(s)" in d.why and cp.FORWARD_SOURCE in d.why


def test_exec_path_records_decisions_and_shares_them_across_paths():
    ex = ExecPath("fast", "cpu", "auto", "quick")
    cfg = ex.train_config("johnson_feat_x4", "sr", 5000, 4 * 72 * 72)
    assert cfg is not None and cfg.compile
    assert ex.forward_config("eval", "sr", [(64, 64)]).compile is False  # type: ignore[union-attr]
    assert ex.on("reference").train_config("x", "sr", 5000, 4 * 72 * 72) is None
    described = ex.describe()["compile"]
    assert described["mode"] == "auto" and described["training"]["johnson_feat_x4"]["compile"] is True
    assert described["forward"]["eval"]["compile"] is False and "auto:" in described["forward"]["eval"]["why"]
    assert "compile" not in ExecPath("reference", "cpu").describe()
    assert ExecPath("fast", "cpu", None).compile == "auto" and ExecPath("fast", "cpu", True).compile == "on"
    with pytest.raises(ValueError, match="--compile"):
        ExecPath("fast", "cpu", "sometimes")


@pytest.mark.parametrize("args,want", [((), "auto"), (("--compile",), "on"), (("--no-compile",), "off"),
                                       (("--compile", "off"), "off"), (("--compile", "auto"), "auto")])
def test_command_line_spellings(args, want):
    assert build_parser().parse_args(list(args)).compile == want


# ----------------------------------------------------------------------------------------- through the harness


def _sr_run(out: Path, tmp: Path, profile: str, *extra: str) -> dict:
    corpus = tmp / "corpus" if (tmp / "corpus").exists() else random_image_folder(tmp / "corpus", 3, (48, 48), 1)
    evals = tmp / "eval" if (tmp / "eval").exists() else random_image_folder(tmp / "eval", 2, (40, 44), 2)
    args = ["--profile", profile, "--scales", "4", "--methods", "pixel", "--datasets", str(evals), "--corpus",
            str(corpus), "--iterations", "2", "--patch-size", "32", "--batch-size", "2", "--no-lpips",
            "--curve-every", "0", "--no-report", "--no-progress", "--out", str(out), *extra]
    assert sr.main(args) == 0
    return json.loads((out / "run.json").read_text())


def test_smoke_run_records_that_it_did_not_compile(tmp_path):
    info = _sr_run(tmp_path / "run", tmp_path, "smoke")
    decisions = info["fast_config"]["compile"]
    assert decisions["mode"] == "auto"
    assert decisions["training"]["johnson_pixel_x4"] == info["training"]["johnson_pixel_x4"]["compile"]
    assert decisions["training"]["johnson_pixel_x4"]["compile"] is False
    assert "smoke" in decisions["training"]["johnson_pixel_x4"]["why"]
    assert decisions["forward"]["eval_johnson_pixel_x4"]["compile"] is False
    assert info["training"]["johnson_pixel_x4"]["fast_config"]["compile"] is False


def test_auto_compiles_a_training_past_its_break_even(tmp_path, monkeypatch):
    """With a (patched) break-even below the planned steps, auto compiles the training for real (aot_eager: the
    same graphs, no code generation), trains, and run.json says so and why; the forward use stays eager."""
    monkeypatch.setenv("PERCEPTUAL_COMPILE_BACKEND", "aot_eager")
    monkeypatch.setitem(cp.TRAIN_COSTS, "sr", MeasuredCost("test", 1.0, 0.5, 1e-6, 1, "test"))
    info = _sr_run(tmp_path / "run", tmp_path, "quick")
    d = info["training"]["johnson_pixel_x4"]
    assert d["compile"]["compile"] is True and d["compile"]["why"].startswith("auto: 2 planned steps >")
    assert d["fast_config"]["compile"] is True and d["iterations"] == 2
    assert info["fast_config"]["compile"]["forward"]["eval_johnson_pixel_x4"]["compile"] is False
    eager = _sr_run(tmp_path / "eager", tmp_path, "quick", "--no-compile")
    assert eager["training"]["johnson_pixel_x4"]["compile"] == {"compile": False, "why": "--compile off"}
