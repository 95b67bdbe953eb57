"""reports.verify ("did my run reproduce?") and reports.spread (the tolerances it judges by), on synthetic runs
with known answers: within, outside, not comparable, unmeasured."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from reports import verify as verify_mod
from reports.results import MEAN, write_rows
from reports.spread import SPREAD_COLUMNS, SpreadTable, load_spread, measure, merge

IDENTITY = {"task": "sr", "profile": "quick", "seed": 0, "datasets": ["Set5"], "methods": ["bicubic", "feat"],
            "scales": [4], "corpus": "coco", "eval_protocol": "standard"}
VERSIONS = {"torch": "2.14.1", "torchvision": "0.29.1", "numpy": "2.4.6", "scikit-image": "0.26.0", "lpips": "0.1.4",
            "resize-right": "0.0.2", "pillow": "13.0.0", "pandas": "3.1.1", "python": "3.11.7"}


def _row(method: str, image: str, metric: str, value: float) -> dict:
    return {"task": "sr", "dataset": "Set5", "scale": "4", "method": method, "image": image, "metric": metric,
            "value": value}


def _run(folder: Path, values: dict[tuple[str, str, str], float], **overrides) -> Path:
    folder.mkdir(parents=True)
    write_rows(folder / "results.csv", [_row(*k, v) for k, v in values.items()])
    info = {"task": "sr", "profile": "quick", "seed": 0, "identity": dict(IDENTITY), "versions": dict(VERSIONS)}
    for k, v in overrides.items():
        if k in ("task", "profile", "seed"):
            info[k] = v
        if k in IDENTITY:
            info["identity"][k] = v
        elif k in VERSIONS:
            info["versions"][k] = v
        else:
            info[k] = v
    (folder / "run.json").write_text(json.dumps(info))
    return folder


BASE = {("bicubic", "baby", "psnr_y"): 31.5, ("bicubic", MEAN, "psnr_y"): 28.5,
        ("johnson_feat", "baby", "psnr_y"): 25.0, ("johnson_feat", MEAN, "psnr_y"): 24.0,
        ("johnson_feat", MEAN, "seconds"): 3.0}


def _spread(kind: str = "seed") -> SpreadTable:
    rows = []
    for (method, image, metric), value in BASE.items():
        if metric == "seconds":
            continue
        width = 0.0 if method == "bicubic" else 0.5
        rows.append(dict(zip(SPREAD_COLUMNS, (kind, "sr", "quick", "Set5", "4", method, image, metric, "3",
                                              repr(value - width / 2), repr(value + width / 2), repr(width), "t"),
                             strict=True)))
    return SpreadTable(rows)


def test_identical_runs_reproduce(tmp_path):
    ref, run = _run(tmp_path / "ref", BASE), _run(tmp_path / "run", BASE)
    v = verify_mod.verify(run, ref, _spread())
    assert v.status == 0 and len(v.judged) == 4 and v.n_timing == 1  # wall-clock values are not compared
    assert v.summary().startswith(f"reproduces {ref}: 4 of 4 values within tolerance")


def test_a_bicubic_value_off_by_a_hundredth_of_a_db_fails_and_is_named(tmp_path, capsys):
    ref = _run(tmp_path / "ref", BASE)
    run = _run(tmp_path / "run", {**BASE, ("bicubic", "baby", "psnr_y"): 31.51})
    v = verify_mod.verify(run, ref, _spread())
    assert v.status == 1 and [d.key for d in v.outside] == [("sr", "Set5", "4", "bicubic", "baby", "psnr_y")]
    spread_file = tmp_path / "spread.csv"
    merge(spread_file, [r for r in _spread().rows.values()])
    assert verify_mod.main([str(run), "--against", str(ref), "--spread", str(spread_file)]) == 1
    out = capsys.readouterr().out
    assert "outside: x4 Set5 bicubic psnr_y image baby: 31.51 vs 31.5" in out and "does not reproduce" in out


def test_trained_values_are_judged_by_the_seed_spread_both_ways(tmp_path):
    ref = _run(tmp_path / "ref", BASE)
    tol = 2.0 * (0.5 / 24.0) * 24.0  # K_SEED x the group's relative seed range x |reference| (the mean row)
    inside = _run(tmp_path / "in", {**BASE, ("johnson_feat", MEAN, "psnr_y"): 24.0 - 0.98 * tol})
    outside = _run(tmp_path / "out", {**BASE, ("johnson_feat", MEAN, "psnr_y"): 24.0 - 1.02 * tol})
    assert verify_mod.verify(inside, ref, _spread()).status == 0
    v = verify_mod.verify(outside, ref, _spread())
    assert v.status == 1 and v.outside[0].basis == "2x seed spread"


@pytest.mark.parametrize(("override", "named"), [
    ({"profile": "smoke"}, "profile: smoke vs quick"), ({"seed": 1}, "seed: 1 vs 0"),
    ({"corpus": "mine"}, 'corpus: "mine" vs "coco"'), ({"eval_protocol": "johnson2016"}, "eval_protocol"),
    ({"torch": "2.15.0"}, "torch version: 2.15.0 vs 2.14.1")])
def test_runs_with_other_settings_are_not_comparable(tmp_path, override, named, capsys):
    ref, run = _run(tmp_path / "ref", BASE), _run(tmp_path / "run", BASE, **override)
    v = verify_mod.verify(run, ref, _spread())
    assert v.status == 2 and any(named in d for d in v.differences), v.differences
    assert verify_mod.main([str(run), "--against", str(ref)]) == 2
    assert named in capsys.readouterr().out


def test_a_multi_seed_reference_compares_with_any_seed_and_a_missing_protocol_means_standard(tmp_path):
    ref = _run(tmp_path / "ref", BASE, seeds=[0, 1, 2], seed=[0, 1, 2])
    info = json.loads((ref / "run.json").read_text())
    del info["identity"]["eval_protocol"]  # runs made before the protocol was recorded
    (ref / "run.json").write_text(json.dumps(info))
    run = _run(tmp_path / "run", BASE, seed=5)
    assert verify_mod.verify(run, ref, _spread()).status == 0


def test_a_profile_without_measured_spread_is_not_judged(tmp_path):
    ref, run = _run(tmp_path / "ref", BASE), _run(tmp_path / "run", BASE)
    v = verify_mod.verify(run, ref, SpreadTable([]))
    assert v.status == 2 and "measured spread" in v.differences[0]


def test_find_reference_picks_the_committed_run_with_the_same_settings(tmp_path):
    committed = tmp_path / "committed"
    _run(committed / "other", BASE, profile="smoke")
    single = _run(committed / "single", BASE)
    run = _run(tmp_path / "run", BASE)
    assert verify_mod.find_reference(run, committed) == single
    multi = _run(committed / "multi", BASE, seeds=[0, 1], seed=[0, 1])
    assert verify_mod.find_reference(run, committed) == multi  # a multi-seed reference first
    assert verify_mod.find_reference(_run(tmp_path / "x8", BASE, scales=[8]), committed) is None


def test_measure_records_the_range_over_runs_and_skips_wall_clock(tmp_path):
    a = _run(tmp_path / "a", BASE)
    b = _run(tmp_path / "b", {**BASE, ("johnson_feat", MEAN, "psnr_y"): 24.5, ("johnson_feat", MEAN,
                                                                                   "seconds"): 9.0})
    rows = measure("cpu_path", [a, b], "two paths")
    by = {(r["method"], r["image"], r["metric"]): r for r in rows}
    assert ("johnson_feat", MEAN, "seconds") not in by
    assert float(by[("johnson_feat", MEAN, "psnr_y")]["spread"]) == 0.5
    assert float(by[("bicubic", "baby", "psnr_y")]["spread"]) == 0.0
    path = tmp_path / "spread.csv"
    merge(path, rows)
    merge(path, rows)  # the same kind, task and profile again: replaced, not appended
    table = load_spread(path)
    assert len(table.rows) == len(rows)
    assert table.spread("cpu_path", "sr", "quick", "Set5", "4", "johnson_feat", MEAN, "psnr_y") == 0.5
    with pytest.raises(ValueError, match="at least two runs"):
        measure("seed", [a], "one")


def test_committed_spread_file_reads_and_names_its_settings():
    table = load_spread()
    assert table.measured("cpu_path", "sr", "smoke") and table.measured("cpu_path", "style", "smoke")
    assert all(r["settings"] and int(r["n_runs"]) >= 2 for r in table.rows.values())


def test_the_harness_reproduction_stage_records_and_prints_the_verdict(tmp_path, monkeypatch, capsys):
    from bench.run.folder import RunRecord, reproduction_stage

    committed = tmp_path / "committed"
    _run(committed / "quick", BASE)
    run = _run(tmp_path / "run", {**BASE, ("bicubic", "baby", "psnr_y"): 31.6})
    spread_file = tmp_path / "spread.csv"
    merge(spread_file, list(_spread().rows.values()))
    monkeypatch.setattr(verify_mod, "COMMITTED_RUNS", committed)
    monkeypatch.setattr("reports.spread.SPREAD_FILE", spread_file)
    record = RunRecord(run / "run.json", json.loads((run / "run.json").read_text()))
    verdict = reproduction_stage(record, run)
    assert verdict is not None and verdict["verdict"] == "does not reproduce" and verdict["n_within"] == 3
    saved = json.loads((run / "run.json").read_text())
    assert saved["reproduction"]["summary"].startswith("does not reproduce") and saved["stages"]["reproduction"][
        "status"] == "ok"
    assert "reproduction: does not reproduce" in capsys.readouterr().out
    monkeypatch.setattr(verify_mod, "COMMITTED_RUNS", tmp_path / "none")
    assert reproduction_stage(record, run) is None and record.status("reproduction") == "skipped"
