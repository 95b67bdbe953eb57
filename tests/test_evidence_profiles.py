"""The CPU-scale evidence profiles: `cpu-x8` (x8 trained under the paper's degradation, scored under both evaluation
protocols) and the style trend (`trend-128`: one training, Fig. 5 at several training lengths)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.run.profiles import SR_PROFILES
from bench.sr import cli as sr
from bench.sr import harness as sr_harness

pytestmark = pytest.mark.usefixtures("one_thread")


def _folder(path: Path, n: int, size: tuple[int, int], seed: int) -> Path:
    path.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        small = rng.integers(0, 255, size=(size[0] // 8, size[1] // 8, 3), dtype=np.uint8)
        Image.fromarray(small).resize((size[1], size[0]), Image.BICUBIC).save(path / f"img{i}.png")
    return path


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_cpu_x8_profile_is_the_papers_degradation_at_x8_under_both_protocols():
    p = SR_PROFILES["cpu-x8"]
    assert (p.iterations, p.batch_size, p.patch_size, p.sigma, p.scales) == (5000, 4, 144, 1.0, (8,))
    assert p.patch_size // 8 == SR_PROFILES["cpu-x4"].patch_size // 4  # the LR input is as big as cpu-x4's
    assert (p.eval_protocol, p.also_protocols) == ("johnson2016", ("standard",))
    assert set(p.datasets) == {"Set5", "Set14", "BSD100"} and "alex" in p.lpips and p.curve_every == 500
    # the common variant at half the paper's rate: at 1e-3 it diverged at x8, and the paper variant ended below bicubic
    assert (p.variant, p.lr) == ("common", 5e-4) and SR_PROFILES["cpu-x4"].lr == 1e-3
    assert "fragile" in p.caveat and not SR_PROFILES["cpu-x4"].caveat  # run.json `caveat`; the report shows it

    def variant(*argv: str) -> str:
        return sr_harness.config_from_args(sr_harness.build_parser().parse_args(list(argv))).variant

    assert variant("--profile", "cpu-x8") == "common" and variant("--profile", "cpu-x8", "--variant", "paper") == "paper"
    assert variant("--profile", "cpu-x4") == "common" and variant("--profile", "quick") == "common"
    described = sr_harness.config_from_args(sr_harness.build_parser().parse_args(["--profile", "cpu-x8"])).describe()
    assert described["caveat"] == p.caveat
    assert "caveat" not in sr_harness.config_from_args(
        sr_harness.build_parser().parse_args(["--profile", "cpu-x4"])).describe()


def test_a_run_scores_its_networks_under_a_second_protocol_in_a_folder_of_its_own(tmp_path):
    corpus, evals = _folder(tmp_path / "corpus", 3, (80, 80), 1), _folder(tmp_path / "eval", 2, (72, 80), 2)
    out = tmp_path / "run"
    args = ["--profile", "smoke", "--scales", "8", "--methods", "bicubic", "pixel", "--datasets", str(evals),
            "--corpus", str(corpus), "--iterations", "2", "--patch-size", "64", "--batch-size", "2", "--no-lpips",
            "--eval-protocol", "johnson2016", "--also-protocols", "standard", "--no-report", "--no-progress",
            "--out", str(out)]
    assert sr.main(args) == 0
    main, other = json.loads((out / "run.json").read_text()), json.loads((out / "protocol-standard/run.json").read_text())
    assert (main["eval_protocol"], other["eval_protocol"]) == ("johnson2016", "standard")
    assert main["also_protocols"] == {"standard": "protocol-standard"} and other["derived_from"]["run"] == ".."
    assert other["status"] == "ok" and other["training"]["johnson_pixel_x8"]["iterations"] == 2
    a, b = _rows(out / "results.csv"), _rows(out / "protocol-standard" / "results.csv")
    key = ("dataset", "scale", "method", "image", "metric")
    assert {tuple(r[k] for k in key) for r in a} == {tuple(r[k] for k in key) for r in b}  # the same rows
    assert {r["method"] for r in a} == {"bicubic", "johnson_pixel", "johnson_pixel_histmatch"}
    value = {p: {tuple(r[k] for k in key): r["value"] for r in rows} for p, rows in (("j", a), ("s", b))}
    bicubic = ("eval", "8", "bicubic", "__mean__", "psnr_y")
    assert value["j"][bicubic] != value["s"][bicubic]  # the LR images differ between the protocols at x8
    assert not (out / "protocol-standard" / "checkpoints").exists()  # no training there
    assert sr.main([*args, "--resume"]) == 0  # resumes, the second protocol's folder included
    assert _rows(out / "protocol-standard" / "results.csv") == b


def test_cpu_x8_dry_run_prints_the_plan_and_compile_decisions(capsys, tmp_path):
    assert sr.main(["--profile", "cpu-x8", "--out", str(tmp_path / "x8"), "--dry-run", "--estimate-steps", "0"]) == 0
    text = capsys.readouterr().out
    assert "144 px HR patches (18 px LR at x8)" in text and "protocol: johnson2016; also standard" in text
    assert "compile johnson_feat_x8: yes" in text and "estimated wall time" in text
    assert "reduced profile: common variant (paper: paper variant)" in text and "lr 0.0005" in text
    assert not (tmp_path / "x8").exists()


# ------------------------------------------------------------------------------------------------ the style trend

TREND_HEADER = "size,train_iterations,network_objective,iters_to_match,lbfgs_iterations"


def _trend_args(out: Path, *extra: str) -> list[str]:
    return ["--profile", "smoke", "--vgg-weights", "random", "--train-size", "32", "--sizes", "32", "--trend", "2",
            "4", "--gatys-iterations", "3", "--device", "cpu", "--stages", "train", "--out", str(out), *extra]


def test_trend_writes_one_row_per_length_and_resumes(tmp_path, monkeypatch):
    from bench.style import cli as style_cli
    from bench.style import harness as style
    from bench.style import trend as style_trend

    out = tmp_path / "run"
    assert style_cli.main(_trend_args(out)) == 0
    lines = (out / "trend.csv").read_text().splitlines()
    assert lines[0] == TREND_HEADER and len(lines) == 3
    rows = style_trend.read_trend(out / "trend.csv")
    assert [(r["size"], r["train_iterations"], r["lbfgs_iterations"]) for r in rows] == [("32", "2", "3"),
                                                                                       ("32", "4", "3")]
    assert all(float(r["network_objective"]) > 0 for r in rows)
    info = json.loads((out / "run.json").read_text())
    (name,) = info["training"]
    assert info["training"][name]["iterations"] == 4 and info["training"][name]["trend"]["lengths"] == [2, 4]
    assert (out / "weights" / f"{name}.safetensors").is_file()

    # the network at 2 iterations in the trend is the network a 2-iteration training gives
    ref = tmp_path / "ref"
    assert style_cli.main(["--profile", "smoke", "--vgg-weights", "random", "--train-size", "32", "--sizes", "32",
                       "--iterations", "2", "--gatys-iterations", "3", "--device", "cpu", "--stages", "train", "fig5",
                       "--out", str(ref)]) == 0
    fig5 = json.loads((ref / "run.json").read_text())["fig5"]["sizes"]["32"]
    assert float(rows[0]["network_objective"]) == fig5["network_mean"]  # exactly: the same network, the same code

    # resume: the measured lengths are kept, the L-BFGS curve is not recomputed, nothing is trained again
    calls: list[int] = []
    real = style_trend.trend_row
    monkeypatch.setattr(style_trend, "trend_row", lambda *a: calls.append(a[1]) or real(*a))
    gatys_calls: list[str] = []
    monkeypatch.setattr(style.StyleRun, "run_gatys", lambda *a, **k: gatys_calls.append("x"))
    assert style_cli.main([*_trend_args(out), "--resume"]) == 0
    assert calls == [] and gatys_calls == [] and style_trend.read_trend(out / "trend.csv") == rows


def test_trend_resumes_an_interrupted_run_at_the_missing_length(tmp_path, monkeypatch):
    """Stopped after training to the second length but before measuring it: --resume measures it from the
    checkpoint and gives the rows of an uninterrupted run."""
    from bench.style import cli as style
    from bench.style import trend as style_trend

    full, cut = tmp_path / "full", tmp_path / "cut"
    assert style.main(_trend_args(full)) == 0
    real = style_trend.trend_row

    def stop_at_4(*a):
        if a[1] == 4:
            raise KeyboardInterrupt
        return real(*a)

    monkeypatch.setattr(style_trend, "trend_row", stop_at_4)
    with pytest.raises(KeyboardInterrupt):
        style.main(_trend_args(cut))
    assert len(style_trend.read_trend(cut / "trend.csv")) == 1
    monkeypatch.setattr(style_trend, "trend_row", real)
    assert style.main([*_trend_args(cut), "--resume"]) == 0
    assert style_trend.read_trend(cut / "trend.csv") == style_trend.read_trend(full / "trend.csv")


def test_iters_to_match_is_empty_when_the_curve_never_reaches_the_network():
    from bench.style.trend import trend_row

    traces = {"a": [{"total": 10.0, "wall_time_s": 0.0}, {"total": 5.0, "wall_time_s": 1.0},
                    {"total": 4.0, "wall_time_s": 2.0}]}
    assert trend_row(32, 100, traces, {"a": 3.0})["iters_to_match"] == ""  # 4.0 after 2 iterations: never <= 3
    row = trend_row(32, 100, traces, {"a": 5.0})
    assert row["iters_to_match"] == 1 and row["lbfgs_iterations"] == 2 and float(row["network_objective"]) == 5.0


def test_trend_128_profile_and_its_command_line():
    from bench.run.profiles import STYLE_PROFILES
    from bench.style.config import build_parser, settings_from_args

    p = STYLE_PROFILES["trend-128"]
    assert (p.train_size, p.sizes, p.trend, p.iterations) == (128, (128,), (250, 500, 1000, 2000, 4000), 4000)
    s = settings_from_args(build_parser().parse_args(["--profile", "quick", "--trend", "500", "250"]))
    assert s.values.trend == (250, 500) and s.values.iterations == 500
    with pytest.raises(Exception, match="--trend"):
        settings_from_args(build_parser().parse_args(["--profile", "quick", "--trend", "500", "--iterations", "9"]))
