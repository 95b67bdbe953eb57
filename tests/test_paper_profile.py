"""The paper profile is the paper's setup: the `paper` network variant and, for style, content at
relu3_3 and a per-style TV search by default; the reduced profiles keep what their committed runs used and say so;
`--dry-run` prints the whole plan and writes nothing, not even the --out folder."""
import json
from pathlib import Path

import pytest
import torch

from bench.run import plan
from bench.run.profiles import setup_note
from bench.sr import cli as sr_cli
from bench.sr import harness as sr
from bench.style import cli as style_cli
from bench.style import harness as style

pytestmark = pytest.mark.usefixtures("one_thread")


def _files_under(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*"))


@pytest.fixture
def empty_cwd(tmp_path, monkeypatch):
    """An empty working directory, so a default --out (runs/<task>/<profile>) or a stray file would show up in it."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


# ------------------------------------------------------------------------------------------- --dry-run writes nothing


def test_sr_paper_dry_run_prints_the_paper_setup_and_writes_nothing(empty_cwd, capsys):
    assert sr_cli.main(["--profile", "paper", "--device", "cpu", "--dry-run", "--estimate-steps", "0"]) == 0
    text = capsys.readouterr().out
    assert "variant: paper" in text and "paper profile: paper variant, the paper's setup" in text
    assert "200,000 iterations, batch 4, 288 px HR patches" in text and "l_feat: VGG-16 relu2_2" in text
    assert "Set5 (5 images), Set14 (14 images), BSD100 (100 images)" in text and "protocol: standard" in text
    assert "x8: l_feat has the lowest PSNR-Y but a higher SSIM-Y than bicubic" in text
    assert "runs/sr/paper (does not exist; a dry run does not create it)" in text
    assert "not measured (--estimate-steps 0)" in text
    assert _files_under(empty_cwd) == []  # no runs/sr/paper, no file of any kind


def test_style_paper_dry_run_prints_the_paper_setup_and_writes_nothing(empty_cwd, capsys):
    out = empty_cwd / "explicit" / "out"
    assert style_cli.main(["--profile", "paper", "--device", "cpu", "--out", str(out), "--dry-run",
                       "--estimate-steps", "0"]) == 0
    text = capsys.readouterr().out
    assert "variant: paper" in text and "content: VGG-16 relu3_3" in text
    assert "40,000 iterations per style, batch 4, 256 px" in text
    assert "TV: searched per style over 2, 20, 200" in text and "paper 1e-06, 1e-05, 0.0001" in text
    assert "L-BFGS (same objective, from noise) reaches the network's objective between iterations 50 and 100" in text
    assert not out.exists() and _files_under(empty_cwd) == []


@pytest.mark.parametrize("task", [sr, style])
def test_smoke_dry_run_times_real_steps_and_writes_nothing(task, empty_cwd, capsys):
    """The estimate path itself: one warm-up and one timed step per part at smoke size, multiplied out."""
    out = empty_cwd / "o"
    assert task.main(["--profile", "smoke", "--device", "cpu", "--vgg-weights", "random", "--out", str(out),
                      "--dry-run", "--estimate-steps", "1"]) == 0
    text = capsys.readouterr().out
    assert "an ESTIMATE, from the median of 1 timed step(s) after 1 warm-up per part" in text
    assert "reduced profile: common variant" in text
    lines = [ln for ln in text.splitlines() if " x " in ln and ln.rstrip().endswith(")") and " s = " in ln]
    assert lines, text  # per-part lines: count x seconds = total
    assert not out.exists() and _files_under(empty_cwd) == []


@pytest.mark.parametrize("task, argv, message", [
    (sr, ["--datasets", "NoSuchSet"], "--datasets NoSuchSet"),
    (style, ["--styles", "no_such_style"], "--styles no_such_style"),
    (style, ["--tv-weight", "3", "--tv-search"], "--tv-weight 3 fixes the TV weight and --tv-search chooses it"),
    (style, ["--tv-weight", "-1"], "--tv-weight must be a non-negative number"),
])
def test_dry_run_with_a_bad_option_exits_2_and_writes_nothing(task, argv, message, empty_cwd, capsys):
    assert task.main(["--profile", "paper", "--device", "cpu", "--dry-run", "--estimate-steps", "0", *argv]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "plan" not in captured.out
    assert _files_under(empty_cwd) == []


# ------------------------------------------------------------------------------------------- profile resolution


def _sr_cfg(*argv):
    return sr.config_from_args(sr.build_parser().parse_args(["--device", "cpu", *argv]))


def _style_settings(*argv):
    return style.settings_from_args(style.build_parser().parse_args(["--device", "cpu", *argv]))


def test_paper_profile_resolves_the_paper_setup():
    assert _sr_cfg("--profile", "paper").variant == "paper"
    s = _style_settings("--profile", "paper")
    assert (s.variant, s.content_layer, s.tv_search) == ("paper", "relu3_3", True)
    assert s.identity()["content_layer"] == "relu3_3"


def test_options_override_the_paper_profile():
    assert _sr_cfg("--profile", "paper", "--variant", "common").variant == "common"
    s = _style_settings("--profile", "paper", "--content-layer", "relu2_2", "--variant", "common")
    assert (s.variant, s.content_layer) == ("common", "relu2_2")
    fixed = _style_settings("--profile", "paper", "--tv-weight", "20")
    assert (fixed.tv_search, fixed.weights.tv, fixed.tv_weight_given) == (False, 20.0, True)
    assert _style_settings("--profile", "paper", "--no-tv-search").tv_search is False


@pytest.mark.parametrize("profile", ["smoke", "quick"])
def test_reduced_profiles_keep_common_and_relu2_2(profile):
    assert _sr_cfg("--profile", profile).variant == "common"
    s = _style_settings("--profile", profile)
    assert (s.variant, s.content_layer, s.tv_search, s.weights.tv) == ("common", "relu2_2", False, 2.0)
    assert _style_settings("--profile", profile, "--tv-search").tv_search is True


def test_setup_notes_say_what_a_reduced_profile_keeps():
    assert setup_note("quick", "common", "relu2_2") == \
        "reduced profile: common variant, content relu2_2 (paper: paper variant, relu3_3)"
    assert setup_note("smoke", "common") == "reduced profile: common variant (paper: paper variant)"
    assert setup_note("paper", "paper", "relu3_3") == "paper profile: paper variant, content relu3_3, the paper's setup"
    assert setup_note("paper", "paper", "relu2_2").startswith("paper profile with overrides")


# ------------------------------------------------------------------------------------------- run cards


def test_style_run_card_records_content_layer_tv_choice_and_the_reduced_profile(tmp_path):
    s = _style_settings("--profile", "smoke", "--vgg-weights", "random", "--out", str(tmp_path / "run"))
    run = style.StyleRun(s)
    run.out.mkdir()
    run.write_run_json()
    doc = json.loads((run.out / "run.json").read_text())
    assert doc["content_layer"] == "relu2_2" and doc["identity"]["content_layer"] == "relu2_2"
    assert doc["tv_choice"]["mode"] == "fixed" and "does not search" in doc["tv_choice"]["set_by"]
    notes = run.card_notes()
    assert "reduced profile: common variant, content relu2_2 (paper: paper variant, relu3_3)" in notes
    searched = style.StyleRun(_style_settings("--profile", "paper", "--out", str(tmp_path / "p"))).tv_choice()
    assert searched["mode"] == "search" and searched["candidates"] == [2.0, 20.0, 200.0]
    assert searched["candidates_paper_units"] == [1e-6, 1e-5, 1e-4] and "5%" in searched["criterion"]


def test_sr_run_card_states_the_setup_and_the_histogram_matching(tmp_path):
    cfg = _sr_cfg("--profile", "smoke", "--vgg-weights", "random", "--out", str(tmp_path / "run"))
    harness = sr.SRHarness(cfg)
    harness.out.mkdir()
    harness._start_record(False)
    doc = json.loads((harness.out / "run.json").read_text())
    assert doc["variant"] == "common" and doc["loss_network"]["layer"] == "relu2_2"
    assert "reduced profile: common variant (paper: paper variant)" in doc["notes"]
    assert "to the 8-bit LR input" in doc["evaluation"]["histmatch"] and "(not the HR)" in doc["evaluation"]["histmatch"]


def test_gatys_and_the_network_share_the_content_layer(tmp_path, monkeypatch):
    """The baseline minimises the network's objective: the same object, so the same content layer."""
    s = _style_settings("--profile", "smoke", "--vgg-weights", "random", "--content-layer", "relu3_3",
                        "--out", str(tmp_path / "run"))
    run = style.StyleRun(s)
    seen = {}

    def fake_stylise(objective, x, cfg, progress=None):
        seen["objective"] = objective
        return type("R", (), {"trace": [], "image": x})()

    monkeypatch.setattr(style, "stylise", fake_stylise)
    run.gatys("la_muse", torch.rand(1, 3, 32, 32), 1, 0, None, desc="t")
    used = seen["objective"]
    # the reference path hands Gatys the network's objective itself; the fast path a fast view built from it
    base = used.reference[0] if hasattr(used, "reference") else used
    assert base is run.objective("la_muse") and used.content_layer == base.content_layer == "relu3_3"
    assert used.weights == base.weights


# ------------------------------------------------------------------------------------------- the estimate's arithmetic


def test_estimate_multiplies_out_and_says_it_is_an_estimate():
    work = [plan.Work("a", 1000, 0.46), plan.Work("b", 10, 2.0), plan.Work("c", 5, None)]
    lines = plan.estimate_lines(work, 3, "cpu", "evaluation not included")
    assert "about 8 min" in lines[0] and "ESTIMATE" in lines[0] and "median of 3 timed step(s)" in lines[0]
    assert len(lines) == 3  # an unmeasured part gets no line of its own
    assert plan.estimate_lines(work, 0, "cpu", "")[0] == "estimated wall time: not measured (--estimate-steps 0)"
    calls = []
    assert plan.time_step(lambda: calls.append(1), 2, torch.device("cpu")) is not None and len(calls) == 3
    assert plan.time_step(lambda: calls.append(1), 0, torch.device("cpu")) is None and len(calls) == 3


# ------------------------------------------------------------------------- the paper profile at tiny sizes (CPU)


def _eval_folder(folder: Path, n: int) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(0)
    for i in range(n):
        pixels = (torch.rand(96, 96, 3, generator=gen) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"val{i:02d}.png")
    return folder


def test_paper_profile_tv_search_runs_at_tiny_size_and_refuses_an_eval_set_without_validation_images(
        tmp_path, monkeypatch, capsys):
    """The paper profile as the GPU check's rehearsal runs it, but with its TV search on: the paper variant,
    relu3_3, three candidate trainings scored on held-out images. With no image left after --n-images the run
    stops before any training with the fix in the message (it used to train every candidate and then fail on
    the mean of an empty list)."""
    from dataclasses import replace

    from bench.run.profiles import STYLE_PROFILES

    monkeypatch.setitem(STYLE_PROFILES, "paper", replace(STYLE_PROFILES["paper"], tv_search_iterations=1))
    evals = _eval_folder(tmp_path / "val", 2)
    argv = ["--profile", "paper", "--device", "cpu", "--vgg-weights", "random", "--train-size", "48",
            "--iterations", "2", "--n-images", "2", "--eval-set", str(evals), "--stages", "train"]
    out = tmp_path / "run"
    assert style_cli.main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"--eval-set {evals}" in err and "--n-images 2" in err and "has 2" in err and "--no-tv-search" in err
    assert not (out / "models").exists()  # refused before any training
    _eval_folder(evals, 3)
    assert style_cli.main([*argv, "--out", str(tmp_path / "run2")]) == 0
    doc = json.loads((tmp_path / "run2" / "run.json").read_text())
    assert doc["variant"] == "paper" and doc["content_layer"] == "relu3_3"
    search = next(iter(doc["training"].values()))["tv_search"]
    assert search["validation_images"] == ["val02"] and search["chosen"] in search["candidates"]
