"""The report with evaluated external methods: `bench.sr evaluate` / `bench.style evaluate` runs
beside a reproduce run, in the SR tables, Fig. 5, Table 1, the image grids and the run cards; no verdict against the
paper for them; files skipped with --skip-unreadable and "over N of M images" shown.

The evaluation run folders are written here in the style of tests/report_fixtures.py (the contract that
bench.sr.evaluate / bench.style.evaluate write: results.csv rows under method NAME, run.json `profile: evaluate`,
`identity.mode: evaluate`, `evaluated`, `skipped_files`, `datasets[d].mean_over`); every number checked is read
back from those files and formatted by this file's own rules.
"""
from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from bs4 import BeautifulSoup
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report_fixtures import FIELDS, SR_IMAGES, _pattern, _write_csv, run_json, write_sr_run, write_style_run
from test_report import cell, fmt, read_results

from reports.build import build_report
from reports.formatting import metric_label

NAME = "nn_up"
STYLE_NAME = "my_stylizer"


def write_sr_evaluation(root: Path, *, name: str = NAME, n_images: int = 5, skipped: tuple[str, ...] = ("woman",),
                        seed: int = 11) -> Path:
    """What `python -m bench.sr evaluate --outputs DIR --scale 4 --datasets Set5 --skip-unreadable` writes."""
    rng = np.random.default_rng(seed)
    names = [n for n in SR_IMAGES["Set5"][:n_images] if n not in skipped]
    per = {"psnr_y": 24.0 + rng.normal(0, 1.0, len(names)), "ssim_y": 0.70 + rng.normal(0, 0.02, len(names))}
    rows = []
    for metric, values in per.items():
        rows += [["sr", "Set5", 4, name, n, metric, repr(float(v))] for n, v in zip(names, values)]
        rows.append(["sr", "Set5", 4, name, "__mean__", metric, repr(float(np.mean(values)))])
    _write_csv(root / "results.csv", FIELDS, rows)
    folder = root / "images" / "sr" / "x4" / "Set5"
    folder.mkdir(parents=True, exist_ok=True)
    for i, n in enumerate(names[:3]):  # the fixture's HR images: the same textures as write_sr_run's (seed + i)
        hr = _pattern(72, 96, i)
        hr.save(folder / f"{n}_hr.png")
        hr.filter(ImageFilter.BoxBlur(3)).save(folder / f"{n}_{name}.png")
    info = run_json(task="sr", profile="evaluate", device="cpu", corpus=None,
                    stages={"eval_x4": {"status": "ok", "wall_time_s": 2.0, "error": None}})
    info |= {"identity": {"task": "sr", "mode": "evaluate", "name": name, "scale": 4, "datasets": ["Set5"],
                          "source": {"kind": "outputs", "outputs": "/data/mine"}},
             "methods": [name], "evaluated": {"name": name, "kind": "outputs", "outputs": "/data/mine"},
             "skipped_files": [{"file": f"/data/Set5/{n}.png", "kind": "unreadable", "reason": "truncated PNG",
                                "dataset": "Set5"} for n in skipped],
             "datasets": {"Set5": {"n_images": len(names), "n_images_total": n_images,
                                   "mean_over": (f"over {len(names)} of {n_images} images" if skipped
                                                 else f"over all {n_images} images")}}}
    for key in ("iterations", "variant", "loss_weights"):
        info.pop(key)
    (root / "run.json").write_text(json.dumps(info, indent=2))
    return root


def write_style_evaluation(root: Path, *, name: str = STYLE_NAME, sizes: tuple[str, ...] = ("256",),
                           contents: tuple[str, ...] = ("chicago", "amber", "000000000139"), seed: int = 5) -> Path:
    """What `python -m bench.style evaluate --model ... --compare RUN --name NAME` writes."""
    rng = np.random.default_rng(seed)
    rows = []
    for size in sizes:
        obj = 1e5 * (1 + rng.random(len(contents)))
        iters = rng.integers(20, 90, len(contents)).astype(float)
        secs = iters * 0.02
        for c, o, it, sec in zip(contents, obj, iters, secs):
            rows += [["style", size, "", name, c, "objective", repr(float(o))],
                     ["style", size, "", name, c, "iters_to_match", repr(float(it))],
                     ["style", size, "", name, c, "seconds_to_match", repr(float(sec))]]
        for metric, v in (("objective", obj.mean()), ("objective_std", obj.std()), ("iters_to_match", iters.mean()),
                          ("seconds_to_match", secs.mean()), ("seconds", 0.0123 * (int(size) / 256) ** 2)):
            rows.append(["style", size, "", name, "__mean__", metric, repr(float(v))])
    _write_csv(root / "results.csv", FIELDS, rows)
    folder = root / "images" / "style" / "la_muse"  # the outputs on the reproduce run's content images
    folder.mkdir(parents=True, exist_ok=True)
    _pattern(96, 128, 51).save(folder / "style.png")
    for i, c in enumerate(contents):
        base = _pattern(96, 96, seed + i)
        base.save(folder / f"{c}_content.png")
        base.filter(ImageFilter.EMBOSS).save(folder / f"{c}_{name}.png")
    info = run_json(task="style", profile="evaluate", device="cpu", corpus=None,
                    stages={f"evaluate:{s}": {"status": "ok", "wall_time_s": 1.0, "error": None} for s in sizes})
    info |= {"identity": {"task": "style", "mode": "evaluate", "name": name, "style": "la_muse",
                          "sizes": [int(s) for s in sizes], "model": "mine.py:build"},
             "methods": [name], "evaluated": {"name": name, "kind": "model", "model": "mine.py:build"}}
    (root / "run.json").write_text(json.dumps(info, indent=2))
    return root


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("runs")
    runs = [write_sr_run(root / "sr_quick", datasets={"Set5": 5}), write_sr_evaluation(root / "sr_eval"),
            write_style_run(root / "style_quick", sizes=("256",)), write_style_evaluation(root / "style_eval")]
    out = root / "report"
    html = build_report(runs, [], out)
    return {"soup": BeautifulSoup(html.read_text(encoding="utf-8"), "html.parser"), "out": out, "runs": runs,
            "md": (out / "report.md").read_text(encoding="utf-8")}


def _header(soup, label: str) -> str:
    """The table header of run `label` (its column heading in every results table)."""
    return next(th.get_text(strip=True) for th in soup.select("table.results thead th.col_heading")
                if th.get_text(strip=True).startswith(f"{label}:"))


def test_the_evaluated_sr_method_sits_beside_the_papers_and_the_suites_methods(built):
    soup = built["soup"]
    table = soup.find("table", id="sr-x4-Set5")
    header_a, header_b = _header(soup, "A"), _header(soup, "B")
    label = f"{NAME} (evaluated)"
    for row in read_results(built["runs"][1] / "results.csv"):
        if row["image"] == "__mean__":
            td = cell(table, (label,), (header_b, metric_label(row["metric"])))
            assert td.get_text(strip=True) == fmt(row["metric"], row["value"])
            per_image = soup.find("table", id="sr-x4-Set5-per-image")
            assert cell(per_image, ("baby", label), (header_b, metric_label(row["metric"]))).get_text(strip=True)
    # the paper has no number for it; the reproduce run did not score it; the suite's rows stay where they were
    assert cell(table, (label,), ("paper", "PSNR-Y (dB)")).get_text(strip=True) == "\u2014"
    assert cell(table, (label,), ("paper", "confidence")).get_text(strip=True) == "\u2014"
    assert cell(table, (label,), (header_a, "PSNR-Y (dB)")).get_text(strip=True) == "not run"
    assert cell(table, ("bicubic",), ("paper", "PSNR-Y (dB)")).get_text(strip=True) == "28.43"
    assert cell(table, ("bicubic",), (header_b, "PSNR-Y (dB)")).get_text(strip=True) == "not run"
    rows = [th.get_text(strip=True) for th in table.select("tbody th.row_heading")]
    assert rows[-1] == label and rows.index("bicubic") == 0
    # the Markdown summary's SR table labels it too
    assert f"| {label} |" in built["md"]


def test_an_evaluation_is_never_judged_against_the_paper(built):
    soup = built["soup"]
    header_b = _header(soup, "B")
    claim_runs = {td.get_text(strip=True) for table in soup.select("table.claims") for td in table.select("td")}
    assert header_b not in claim_runs and _header(soup, "D") not in claim_runs
    assert _header(soup, "A") in claim_runs and _header(soup, "C") in claim_runs
    assert NAME not in soup.find(id="summary").get_text()


def test_run_cards_say_evaluation_and_list_skipped_files(built):
    soup, md = built["soup"], built["md"]
    card_b, card_a = soup.find(id="run-B"), soup.find(id="run-A")
    text = card_b.get_text(" ", strip=True)
    assert "evaluation of an external method" in text and NAME in text
    assert "evaluate profile" not in text and "not the paper's schedule" not in text
    assert "Set5: means over 4 of 5 images" in text
    skipped = card_b.find("details", class_="skipped")
    assert skipped is not None and "/data/Set5/woman.png" in skipped.get_text() and "truncated PNG" in skipped.get_text()
    assert card_a.find("details", class_="skipped") is None and "evaluation of" not in card_a.get_text()
    assert "evaluation of an external method" in soup.find(id="run-D").get_text(" ", strip=True)
    coverage = [p.get_text(strip=True) for p in soup.select("#sr p.coverage")]
    assert coverage == ["Run B: means over 4 of 5 images (unreadable files skipped: woman.png)"]
    assert "/data/Set5/woman.png" in md and f"({NAME})" in md


def test_the_evaluated_stylizer_is_in_fig5_and_table1(built):
    soup = built["soup"]
    fig5, table1 = soup.find("table", id="fig5-table"), soup.find("table", id="table1")
    header_d = _header(soup, "D")
    header_c = _header(soup, "C")
    label = f"{STYLE_NAME} (evaluated)"
    n5 = 0
    for row in read_results(built["runs"][3] / "results.csv"):
        if row["image"] != "__mean__":
            continue
        if row["metric"] == "seconds":
            td = cell(table1, (f"{label}, feed-forward (seconds)",), (f"{row['dataset']} px", header_d))
            assert cell(table1, (f"{label}, feed-forward (seconds)",), ("256 px", "paper (Titan X)")).get_text(
                strip=True) == "\u2014"
        else:
            td = cell(fig5, (f"{row['dataset']} px", f"{label}: {metric_label(row['metric'])}"), (header_d,))
            n5 += 1
            assert cell(fig5, (f"{row['dataset']} px", f"{label}: {metric_label(row['metric'])}"),
                        ("paper",)).get_text(strip=True) == "\u2014"
            assert cell(fig5, (f"{row['dataset']} px", f"{label}: {metric_label(row['metric'])}"),
                        (header_c,)).get_text(strip=True) == "not run"
        assert td.get_text(strip=True) == fmt(row["metric"], row["value"]), row
    assert n5 == 4
    # the suite's own rows keep the paper's range
    assert cell(fig5, ("256 px", "Gatys (L-BFGS): L-BFGS iters to match"), ("paper",)).get_text(
        strip=True) == "50\u2013100 (printed)"
    per_image = soup.find("table", id="fig5-256-per-image")
    assert cell(per_image, ("chicago", label), (header_d, "objective")).get_text(strip=True)


def test_the_evaluated_sr_crop_sits_in_the_reproduce_runs_grid(built):
    soup, out = built["soup"], built["out"]
    grid = soup.find("h4", string=re.compile(r"Run A: .*x4 Set5 / baby")).find_next_sibling("div", class_="grid")
    figures = grid.find_all("figure")[1:]
    labels = [f.find("figcaption").find("b").get_text() for f in figures]
    assert labels[-2:] == [f"{NAME} (evaluated, run B)", "ground truth"]
    box = tuple(int(v) for v in re.findall(r"\d+", grid.find("figcaption").get_text()))
    crop = Image.open(out / figures[-2].find("img")["src"]).convert("RGB")
    mine = Image.open(built["runs"][1] / f"images/sr/x4/Set5/baby_{NAME}.png").convert("RGB")
    assert (np.asarray(crop) == np.asarray(mine.crop((box[0], box[1], box[0] + 72, box[1] + 72)))).all()
    # the evaluation's own grid of the same image is not repeated; its caption gives its own numbers
    assert soup.find("h4", string=re.compile(r"Run B: .*x4 Set5 / baby")) is None
    psnr = next(r for r in read_results(built["runs"][1] / "results.csv")
                if (r["image"], r["metric"]) == ("baby", "psnr_y"))
    assert fmt("psnr_y", psnr["value"]) in figures[-2].get_text()


def test_an_evaluation_alone_shows_only_its_method_and_the_ground_truth(tmp_path):
    run = write_sr_evaluation(tmp_path / "sr_eval", skipped=())
    html = build_report([run], [], tmp_path / "report")
    soup = BeautifulSoup(html.read_text(encoding="utf-8"), "html.parser")
    grid = soup.find("h4", string=re.compile(r"Run A: .*x4 Set5 / baby")).find_next_sibling("div", class_="grid")
    labels = [f.find("figcaption").find("b").get_text() for f in grid.find_all("figure")[1:]]
    assert labels == [f"{NAME} (evaluated)", "ground truth"]
    assert all(f.find("img") is not None for f in grid.find_all("figure"))
    card = soup.find(id="run-A").get_text(" ", strip=True)
    assert "evaluation of an external method" in card and "means over" not in card
    assert not soup.select("#sr p.coverage") and soup.find(id="run-A").find("details", class_="skipped") is None


def test_the_evaluated_stylizer_sits_in_the_reproduce_runs_style_grid(built):
    soup, out = built["soup"], built["out"]
    heading = soup.find("h4", string=re.compile(r"Run C: .*style la_muse"))
    rows = heading.find_next_siblings("div", class_="grid")[:3]
    for row, content in zip(rows, ("000000000139", "amber", "chicago")):
        figures = row.find_all("figure")
        labels = [f.find("b").get_text() for f in figures]
        assert labels == ["content image", "ours (network)", "Gatys (L-BFGS)", f"{STYLE_NAME} (evaluated, run D)",
                          "style image"], labels
        shown = Image.open(out / figures[3].find("img")["src"]).convert("RGB")
        mine = Image.open(built["runs"][3] / f"images/style/la_muse/{content}_{STYLE_NAME}.png").convert("RGB")
        buf = io.BytesIO()
        mine.save(buf, format="JPEG", quality=92)  # the page's thumbnails are JPEG: the same encoding, bit for bit
        assert (np.asarray(shown) == np.asarray(Image.open(buf).convert("RGB"))).all()
        assert content in figures[3].get_text()
    # every row was placed beside run C's: run D has no grid of its own left
    assert soup.find("h4", string=re.compile(r"Run D: .*style la_muse")) is None


def test_an_evaluated_stylizer_alone_has_its_own_grid(tmp_path):
    run = write_style_evaluation(tmp_path / "style_eval")
    html = build_report([run], [], tmp_path / "report")
    soup = BeautifulSoup(html.read_text(encoding="utf-8"), "html.parser")
    heading = soup.find("h4", string=re.compile(r"Run A: .*style la_muse"))
    row = heading.find_next_sibling("div", class_="grid")
    assert [f.find("b").get_text() for f in row.find_all("figure")] == [
        "content image", f"{STYLE_NAME} (evaluated)", "style image"]
    assert all(f.find("img") is not None for f in row.find_all("figure"))
