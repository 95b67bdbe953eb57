"""The CPU-scale evidence profiles: `cpu-x8` (x8 trained under the paper's degradation, scored under both evaluation
protocols) and the style trend (`trend-128`: one training, Fig. 5 at several training lengths)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench import sr
from bench.profiles import SR_PROFILES

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
    assert not (tmp_path / "x8").exists()
