"""--curve-every: Set5 quality during training (curve.csv) must not change the training it observes.

The curve trains in chunks that resume from the previous chunk's checkpoint, so the network, the loss log and every
evaluation number must equal an unchunked run's, bit for bit on CPU; the curve's last point must equal the final
evaluation's Set5 means; a resumed run keeps the points it already has; the report draws it.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from bench.sr import cli as sr_cli
from bench.sr import harness as sr
from reports.figures import curve_figure
from reports.references import load_references
from reports.results import CURVE_COLUMNS, MEAN
from reports.runs import load_run

BASE = ("--profile", "smoke", "--scales", "4", "--methods", "bicubic", "pixel", "--iterations", "4",
        "--datasets", "Set5", "--no-report", "--no-progress")


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == CURVE_COLUMNS
        return list(reader)


def _log_without_time(path: Path) -> list[list[str]]:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    wall = rows[0].index("wall_time_s")
    return [[v for i, v in enumerate(r) if i != wall] for r in rows]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("curve")
    plain, chunked = root / "plain", root / "chunked"
    assert sr_cli.main([*BASE, "--out", str(plain)]) == 0
    assert sr_cli.main([*BASE, "--curve-every", "2", "--out", str(chunked)]) == 0
    return plain, chunked


@pytest.mark.slow  # end to end: two whole SR harness runs
def test_chunked_training_equals_an_unchunked_one(runs):
    plain, chunked = runs
    assert (plain / "results.csv").read_bytes() == (chunked / "results.csv").read_bytes()
    name = "logs/train_johnson_pixel_x4.csv"
    assert _log_without_time(plain / name) == _log_without_time(chunked / name)
    assert not (plain / "curve.csv").exists()


@pytest.mark.slow  # end to end: two whole SR harness runs
def test_curve_has_a_point_per_chunk_and_its_last_point_is_the_final_evaluation(runs):
    _, chunked = runs
    rows = _rows(chunked / "curve.csv")
    assert {(r["method"], int(r["iteration"])) for r in rows} == {
        (m, i) for m in ("johnson_pixel", "johnson_pixel_histmatch") for i in (2, 4)}
    assert {r["metric"] for r in rows} == {"psnr_y", "ssim_y"} and {r["dataset"] for r in rows} == {"Set5"}
    at_2 = {(r["method"], r["metric"]): float(r["value"]) for r in rows if r["iteration"] == "2"}
    at_4 = {(r["method"], r["metric"]): float(r["value"]) for r in rows if r["iteration"] == "4"}
    assert at_2 != at_4  # the network moved between the points
    with (chunked / "results.csv").open(newline="") as f:
        final = {(r["method"], r["metric"]): float(r["value"]) for r in csv.DictReader(f)
                 if r["image"] == MEAN and r["method"].startswith("johnson_pixel")}
    assert set(final) == set(at_4)
    for key, value in final.items():
        assert at_4[key] == pytest.approx(value, abs=1e-9), key
    info = json.loads((chunked / "run.json").read_text())
    assert info["curve"]["every"] == 2 and info["curve"]["dataset"] == "Set5"
    assert info["iterations"]["johnson_pixel_x4"] == 4


@pytest.mark.slow  # end to end: two whole SR harness runs
def test_resume_keeps_the_points_it_has_and_scores_the_missing_ones(runs, tmp_path):
    _, chunked = runs
    import shutil

    copy = tmp_path / "resumed"
    shutil.copytree(chunked, copy)
    rows = _rows(copy / "curve.csv")
    kept = [r for r in rows if r["iteration"] == "2"]
    with (copy / "curve.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CURVE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept)
    assert sr_cli.main([*BASE, "--curve-every", "2", "--out", str(copy), "--resume"]) == 0
    assert _rows(copy / "curve.csv") == rows
    assert (copy / "results.csv").read_bytes() == (chunked / "results.csv").read_bytes()


@pytest.mark.slow  # end to end: two whole SR harness runs
def test_report_draws_the_curve_with_the_papers_end_points(runs, tmp_path):
    _, chunked = runs
    path, notes = curve_figure(load_run(chunked, "A"), tmp_path / "curve.png", refs=load_references())
    assert notes == [] and path is not None and path.stat().st_size > 10_000


def test_cpu_x4_profile_is_x4_with_a_curve():
    args = sr.build_parser().parse_args(["--profile", "cpu-x4"])
    cfg = sr.config_from_args(args)
    assert cfg.scales == (4,) and cfg.profile.curve_every == 500 and cfg.profile.iterations == 5000
    assert set(cfg.methods) == {"bicubic", "srcnn", "pixel", "feat"}
    quick = sr.config_from_args(sr.build_parser().parse_args(["--profile", "quick"]))
    assert quick.scales == (4,) and quick.profile.curve_every == 500 and quick.profile.iterations == 2000
    assert sr.config_from_args(sr.build_parser().parse_args(["--profile", "quick-300"])).scales == (4, 8)
