"""`python -m bench.style evaluate`: an external stylizer on the suite's own Eq. 5 objective.

The suite's own smoke-trained network, loaded through a user-style factory file, must reproduce that run's Fig. 5
objective values and iterations-to-match exactly; bad input exits 2 with nothing written."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from bench.run.profiles import STYLE_PROFILES
from bench.style import cli as style

FACTORY = """
from bench.tools.model_loader import load_suite_checkpoint


def build():
    return load_suite_checkpoint({path!r}).net


class Shrink(__import__("torch").nn.Module):
    def forward(self, x):
        return x[..., ::2, ::2]


def build_shrink():
    return Shrink()
"""


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("style") / "smoke"
    assert style.main(["--profile", "smoke", "--stages", "train", "fig5", "--iterations", "2", "--gatys-iterations",
                       "4", "--device", "cpu", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def factory(smoke_run, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("user") / "their_net.py"
    path.write_text(FACTORY.format(path=str(smoke_run / "models" / "la_muse.pt")))
    return path


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow  # end to end: reads a whole smoke run of the style harness
def test_smoke_network_reproduces_its_runs_fig5_values(tmp_path, smoke_run, factory):
    out = tmp_path / "eval"
    assert style.main(["evaluate", "--model", f"{factory}:build", "--styles", "la_muse", "--name", "theirs",
                       "--out", str(out), "--compare", str(smoke_run), "--device", "cpu", "--no-report"]) == 0
    theirs = {(r["dataset"], r["image"], r["metric"]): float(r["value"]) for r in _rows(smoke_run / "results.csv")
              if r["method"] == "johnson_network"}
    matches = {(r["dataset"], r["image"], r["metric"]): float(r["value"]) for r in _rows(smoke_run / "results.csv")
               if r["method"] == "gatys_lbfgs" and r["metric"] == "iters_to_match"}
    mine = {(r["dataset"], r["image"], r["metric"]): float(r["value"]) for r in _rows(out / "results.csv")
            if r["method"] == "theirs"}
    assert theirs and {k: mine[k] for k in theirs} == theirs  # the same Eq. 5 values, to the last bit
    assert matches and {k: mine[k] for k in matches} == matches  # the same place on the run's L-BFGS curves
    assert mine[("64", "__mean__", "seconds")] > 0  # the Table 1 column: one forward pass
    info = json.loads((out / "run.json").read_text())
    assert info["task"] == "style" and info["methods"] == ["theirs"]
    assert info["objective_settings"]["loss_weights"] == json.loads((smoke_run / "run.json").read_text())[
        "loss_weights_per_style"]["la_muse"]
    assert info["fig5"]["sizes"]["64"]["match"] == info["fig5"]["sizes"]["64"]["compared_match"]
    # the outputs on the content set a reproduce run stylizes, for the report's style grid (smoke: 2 images)
    folder = out / "images" / "style" / "la_muse"
    made = sorted(p.name.removesuffix("_theirs.png") for p in folder.glob("*_theirs.png"))
    assert len(made) == STYLE_PROFILES["smoke"].n_outputs and (folder / "style.png").is_file()
    for stem in made:
        with Image.open(folder / f"{stem}_theirs.png") as y, Image.open(folder / f"{stem}_content.png") as x:
            assert y.size == x.size and min(x.size) == STYLE_PROFILES["smoke"].output_size
    assert info["datasets"]["outputs"]["n_images"] == len(made)


@pytest.mark.slow  # end to end: reads a whole smoke run of the style harness
def test_bad_input_exits_2_and_writes_nothing(tmp_path, smoke_run, factory, capsys):
    base = ["evaluate", "--styles", "la_muse", "--compare", str(smoke_run), "--device", "cpu", "--no-report"]
    cases = [
        (["--model", f"{factory}:build", "--name", "johnson_network"], "method of this suite"),
        (["--model", f"{factory}:build_shrink", "--name", "shrink"], ("returned shape (1, 3, 32, 32), "
                                                                        "expected (1, 3, 64, 64)")),
        (["--model", f"{factory}:build", "--name", "x", "--sizes", "128"], "ran Fig. 5 at [64] px only"),
        (["--model", f"{factory}:build", "--name", "x", "--styles", "candy"], "not 'candy'"),
        (["--model", f"{tmp_path}/missing.py:build", "--name", "x"], "no such file"),
    ]
    for extra, words in cases:
        out = tmp_path / "out"
        assert style.main([*base, *extra, "--out", str(out)]) == 2, extra
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err and not out.exists(), (extra, err)
    assert style.main([*base[:-3], "--compare", str(tmp_path), "--model", f"{factory}:build", "--name", "x",
                       "--out", str(tmp_path / "o2")]) == 2
    assert "no readable run.json" in capsys.readouterr().err and not (tmp_path / "o2").exists()
