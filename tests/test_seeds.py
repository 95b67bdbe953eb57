"""`--seeds`: one run per seed, finished seeds kept, interrupted ones resumed, and seeds.csv / results.csv / run.json
aggregated with the right mean and spread; end to end through the SR harness at a tiny size."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

from bench.run import seeds as seeds_mod
from bench.sr import cli as sr
from reports.results import MEAN, read_rows, write_rows
from reports.seeds import read_seeds


def test_strip_option_and_seed_argv():
    given = ["--profile", "quick", "--seeds", "0", "1", "2", "--out", "R", "--resume", "--lr", "1e-3"]
    assert seeds_mod.strip_option(given, "--seeds", None) == ["--profile", "quick", "--out", "R", "--resume", "--lr",
                                                              "1e-3"]
    argv = seeds_mod.seed_argv(given, 1, Path("R"), ["--no-report"])
    assert argv == ["--profile", "quick", "--lr", "1e-3", "--no-report", "--seed", "1", "--out", "R/seeds/seed-1"]


def _fake_seed_run(folder: Path, seed: int, finished: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"task": "sr", "dataset": "Set5", "scale": "4", "method": m, "image": MEAN, "metric": "psnr_y",
             "value": v} for m, v in (("bicubic", 28.5), ("johnson_feat", 24.0 + seed))]
    write_rows(folder / "results.csv", rows)
    stages = {"train": {"status": "ok" if finished else "running"}}
    (folder / "run.json").write_text(json.dumps({"profile": "quick", "task": "sr", "seed": seed, "stages": stages,
                                                 "identity": {"seed": seed}, "argv": ["python", "-m", "bench.sr"],
                                                 "wall_time_s": 10.0}))


def test_run_seeds_keeps_finished_seeds_resumes_interrupted_ones_and_aggregates(tmp_path):
    out = tmp_path / "run"
    _fake_seed_run(seeds_mod.seed_dir(out, 0), 0)
    _fake_seed_run(seeds_mod.seed_dir(out, 1), 1, finished=False)
    calls = []

    def main(argv: list[str]) -> int:
        calls.append(argv)
        seed = int(argv[argv.index("--seed") + 1])
        _fake_seed_run(Path(argv[argv.index("--out") + 1]), seed)
        return 0

    status, done = seeds_mod.run_seeds(main, ["--profile", "quick", "--seeds", "0", "1", "2", "--out", str(out)],
                                       [0, 1, 2], out, "bench.sr")
    assert status == 0 and done == [0, 1, 2]
    assert [c[c.index("--seed") + 1] for c in calls] == ["1", "2"]  # seed 0 had finished
    assert "--resume" in calls[0] and "--resume" not in calls[1]  # seed 1 was interrupted, seed 2 new
    stats = read_seeds(out)
    feat = stats[("sr", "Set5", "4", "johnson_feat", MEAN, "psnr_y")]
    assert feat.values == (24.0, 25.0, 26.0) and feat.mean == 25.0 and feat.spread == 2.0
    assert feat.std == statistics.stdev([24.0, 25.0, 26.0])
    assert stats[("sr", "Set5", "4", "bicubic", MEAN, "psnr_y")].spread == 0.0
    means = {r["method"]: r["value"] for r in read_rows(out / "results.csv")}
    assert means == {"bicubic": 28.5, "johnson_feat": 25.0}
    run = json.loads((out / "run.json").read_text())
    assert run["seeds"] == [0, 1, 2] and run["seed_runs"]["2"] == "seeds/seed-2" and run["wall_time_s"] == 30.0
    assert run["argv"][-6:] == ["--seeds", "0", "1", "2", "--out", str(out)]


def test_the_other_protocols_sub_runs_are_aggregated_as_runs_of_their_own(tmp_path):
    """cpu-x8 scores its networks under a second protocol into RUN/protocol-standard/: over seeds, that folder is
    aggregated too (its own seeds.csv, means and run.json), where every seed finished it; a sub-run only one seed
    has is left out, not averaged over fewer seeds."""
    out = tmp_path / "run"
    for seed in (0, 1):
        _fake_seed_run(seeds_mod.seed_dir(out, seed), seed)
        _fake_seed_run(seeds_mod.seed_dir(out, seed) / "protocol-standard", 10 + seed)
    _fake_seed_run(seeds_mod.seed_dir(out, 0) / "protocol-johnson2016", 0)
    seeds_mod.aggregate(out, [0, 1], "bench.sr", ["--profile", "cpu-x8"])
    sub = out / "protocol-standard"
    feat = read_seeds(sub)[("sr", "Set5", "4", "johnson_feat", MEAN, "psnr_y")]
    assert feat.values == (34.0, 35.0) and feat.mean == 34.5
    assert {r["method"]: r["value"] for r in read_rows(sub / "results.csv")}["johnson_feat"] == 34.5
    run = json.loads((sub / "run.json").read_text())
    assert run["seeds"] == [0, 1] and run["seed_runs"]["1"] == "../seeds/seed-1/protocol-standard"
    assert (sub / run["seed_runs"]["1"] / "run.json").is_file()
    assert run["argv"][-2:] == ["--out", str(out)]
    assert read_seeds(out)[("sr", "Set5", "4", "johnson_feat", MEAN, "psnr_y")].values == (24.0, 25.0)
    assert not (out / "protocol-johnson2016").exists()


def test_a_failing_seed_leaves_the_others_aggregated(tmp_path):
    out = tmp_path / "run"

    def main(argv: list[str]) -> int:
        seed = int(argv[argv.index("--seed") + 1])
        _fake_seed_run(Path(argv[argv.index("--out") + 1]), seed, finished=seed != 1)
        return 1 if seed == 1 else 0

    status, done = seeds_mod.run_seeds(main, [], [0, 1, 2], out, "bench.sr")
    assert status == 1 and done == [0, 2]
    assert json.loads((out / "run.json").read_text())["seeds"] == [0, 2]


def test_sr_harness_runs_two_seeds_end_to_end(tmp_path, tiny_sr_sets, one_thread):
    train, tiny = tiny_sr_sets
    args = ["--profile", "smoke", "--scales", "4", "--methods", "bicubic", "feat", "--datasets", str(tiny),
            "--corpus", str(train), "--iterations", "2", "--patch-size", "32", "--batch-size", "2", "--vgg-weights",
            "random", "--no-lpips", "--no-report", "--no-progress", "--device", "cpu", "--seeds", "0", "1", "--out",
            str(tmp_path / "run")]
    assert sr.main(args) == 0
    stats = read_seeds(tmp_path / "run")
    feat = [s for k, s in stats.items() if k[3] == "johnson_feat" and k[4] == MEAN]
    bicubic = [s for k, s in stats.items() if k[3] == "bicubic"]
    assert feat and all(s.n == 2 and s.values[0] != s.values[1] for s in feat)  # another seed, another network
    assert bicubic and all(s.spread == 0.0 for s in bicubic)  # no training, no seed
    for seed in (0, 1):
        run = json.loads((tmp_path / "run" / "seeds" / f"seed-{seed}" / "run.json").read_text())
        assert run["seed"] == seed


def test_overwrite_reruns_every_seed_and_never_resumes(tmp_path):
    out = tmp_path / "run"
    _fake_seed_run(seeds_mod.seed_dir(out, 0), 0)
    calls = []

    def main(argv: list[str]) -> int:
        calls.append(argv)
        _fake_seed_run(Path(argv[argv.index("--out") + 1]), int(argv[argv.index("--seed") + 1]))
        return 0

    seeds_mod.run_seeds(main, ["--overwrite"], [0, 1], out, "bench.sr")
    assert [c[c.index("--seed") + 1] for c in calls] == ["0", "1"]
    assert all("--overwrite" in c and "--resume" not in c for c in calls)


def test_seeds_without_out_or_with_a_repeated_seed_stop_with_a_message(tmp_path, capsys):
    assert sr.main(["--profile", "smoke", "--seeds", "0", "1"]) == 2
    assert "--seeds needs --out" in capsys.readouterr().err
    assert sr.main(["--profile", "smoke", "--seeds", "0", "0", "--out", str(tmp_path / "run")]) == 2
    assert "give each seed once" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_the_training_curve_is_the_mean_over_seeds_and_the_report_draws_their_range(tmp_path):
    """cpu-x4 and quick score Set5 as they train (curve.csv): over seeds the aggregate holds the mean of each point
    every seed has, and the curve figure reads each seed's own curve for the band."""
    from reports.figures import seed_curve_range
    from reports.runs import load_run

    out = tmp_path / "run"
    for seed in (0, 1):
        _fake_seed_run(seeds_mod.seed_dir(out, seed), seed)
        lines = ["scale,dataset,method,iteration,metric,value"]
        lines += [f"4,Set5,johnson_feat,{it},psnr_y,{20.0 + it / 1000 + 2 * seed}" for it in (500, 1000)]
        if seed == 0:
            lines.append("4,Set5,johnson_feat,1500,psnr_y,99.0")  # a point only one seed has is not averaged
        (seeds_mod.seed_dir(out, seed) / "curve.csv").write_text("\n".join(lines) + "\n")
    seeds_mod.aggregate(out, [0, 1], "bench.sr")
    assert (out / "curve.csv").read_text().splitlines() == [
        "scale,dataset,method,iteration,metric,value", "4,Set5,johnson_feat,500,psnr_y,21.5",
        "4,Set5,johnson_feat,1000,psnr_y,22.0"]
    assert "each seed's own curve" in json.loads((out / "run.json").read_text())["curve"]["seeds"]
    band = seed_curve_range(load_run(out, "A")).set_index("iteration")
    assert band.loc[500, "lo"] == 20.5 and band.loc[500, "hi"] == 22.5 and band.loc[1500, "n"] == 1
    assert seed_curve_range(load_run(seeds_mod.seed_dir(out, 0), "B")) is None  # one seed: no band
    from reports.figures import curve_figure

    path, notes = curve_figure(load_run(out, "A"), tmp_path / "curve.png")
    assert notes == [] and path is not None and path.stat().st_size > 10_000
