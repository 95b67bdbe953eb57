"""The style harness (bench/style/harness.py) and its data (data/style_data.py): one objective for training and Gatys, the
contract files of a smoke run, failure isolation, resume, the Fig. 5 / Table 1 arithmetic, and deterministic batches.
A randomly initialised VGG-16 (`--vgg-weights random`) keeps these about mechanics, fast and offline."""
import csv
import json
import math
import re
from pathlib import Path

import pytest
import torch

from bench.run.profiles import STYLE_PROFILES
from bench.style import cli as style_cli
from bench.style import harness as style
from bench.training.loop import checkpoint_path, load_checkpoint
from data.style_data import StyleTrainingSet, center_square, crop_to_multiple, resize_shorter_side
from perceptual.losses import PerceptualObjective

TINY = ["--profile", "smoke", "--vgg-weights", "random", "--train-size", "32", "--sizes", "32", "--iterations", "2",
        "--gatys-iterations", "3", "--device", "cpu"]


pytestmark = pytest.mark.usefixtures("one_thread")


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """One tiny end-to-end run (no report: the report builder has its own tests) shared by several checks."""
    out = tmp_path_factory.mktemp("style") / "run"
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = style_cli.main([*TINY, "--out", str(out), "--stages", "train", "fig5", "table1", "outputs"])
    finally:
        torch.set_num_threads(n)
    return out, code


def test_smoke_run_writes_the_contract_files(smoke_run):
    out, code = smoke_run
    assert code == 0
    rows = read_csv(out / "results.csv")
    assert list(rows[0]) == ["task", "dataset", "scale", "method", "image", "metric", "value"]
    assert {r["task"] for r in rows} == {"style"} and {r["scale"] for r in rows} == {""}
    assert {r["dataset"] for r in rows} == {"32"}
    pairs = {(r["method"], r["metric"]) for r in rows}
    for pair in [("johnson_network", "objective"), ("johnson_network", "objective_std"),
                 ("content_image", "objective"), ("gatys_lbfgs", "objective_final"), ("gatys_lbfgs", "objective_std"),
                 ("gatys_lbfgs", "iters_to_match"), ("gatys_lbfgs", "seconds_to_match"),
                 ("johnson_feedforward", "seconds")]:
        assert pair in pairs, pair
    # 3 L-BFGS iterations cannot measure 100/300/500: those rows are extrapolations, never labelled "seconds"
    for n in (100, 300, 500):
        assert (f"gatys_lbfgs_{n}", "seconds_extrapolated") in pairs and (f"gatys_lbfgs_{n}", "seconds") not in pairs
    assert ("speedup_vs_500", "ratio_extrapolated") in pairs
    images = {r["image"] for r in rows if r["method"] == "johnson_network"}
    assert "__mean__" in images and len(images) == 3  # 2 held-out images (smoke) + the mean
    values = {(r["method"], r["image"], r["metric"]): float(r["value"]) for r in rows}
    assert all(math.isfinite(v) for v in values.values()), values  # every L-BFGS run matched here: no inf either
    for (method, image, metric), v in values.items():
        if metric in ("objective", "objective_final"):
            assert 0 < v < 1e3, (method, image, metric, v)  # a perceptual objective of 32 px images
        elif metric == "objective_std":
            assert 0 <= v <= values[(method, "__mean__", "objective_final" if method == "gatys_lbfgs" else "objective")]
        elif metric == "iters_to_match":
            assert 0 <= v <= 3 and (image == "__mean__" or v == int(v)), (image, v)  # 3 L-BFGS iterations
        elif metric in ("seconds_to_match", "seconds", "seconds_extrapolated"):
            assert 0 < v < 600, (method, metric, v)
    per_image = [k for k in values if k[1] != "__mean__"]
    for method, metric in {(k[0], k[2]) for k in per_image}:
        own = [values[k] for k in per_image if (k[0], k[2]) == (method, metric)]
        assert values[(method, "__mean__", metric)] == pytest.approx(sum(own) / len(own), rel=1e-12), (method, metric)
    s100, s300, s500 = (values[(f"gatys_lbfgs_{n}", "__mean__", "seconds_extrapolated")] for n in (100, 300, 500))
    assert s100 < s300 < s500 and s500 - s300 == pytest.approx(s300 - s100, rel=1e-9)  # linear in iterations
    assert values[("speedup_vs_500", "__mean__", "ratio_extrapolated")] == pytest.approx(
        s500 / values[("johnson_feedforward", "__mean__", "seconds")], rel=1e-9)

    traces = sorted((out / "traces").glob("gatys_32_*.csv"))
    assert len(traces) == 2
    for t in traces:
        trace = read_csv(t)
        assert list(trace[0])[:6] == ["iteration", "wall_time_s", "total", "content", "style", "tv"]
        assert [int(r["iteration"]) for r in trace] == [0, 1, 2, 3]
    curve = read_csv(out / "traces" / "fig5_32.csv")
    assert [int(r["iteration"]) for r in curve] == [0, 1, 2, 3]
    finals = [float(r["value"]) for r in rows if r["metric"] == "objective_final" and r["image"] != "__mean__"]
    assert float(curve[-1]["mean_total"]) == pytest.approx(sum(finals) / len(finals))
    log = read_csv(out / "logs" / "train_la_muse.csv")
    assert list(log[0]) == ["iteration", "wall_time_s", "total", "content", "style", "tv"]
    assert [int(r["iteration"]) for r in log] == [1, 2]
    folder = out / "images" / "style" / "la_muse"
    for stem in ("amber", "brad_pitt"):  # the first two `content` photos (smoke: 2)
        assert (folder / f"{stem}_network.png").is_file() and (folder / f"{stem}_gatys.png").is_file()

    run = json.loads((out / "run.json").read_text())
    for key in ("profile", "device", "device_name", "versions", "git", "seed", "argv", "date", "task", "corpus",
                "iterations", "stages", "variant", "loss_weights"):
        assert key in run, key
    assert run["task"] == "style" and run["profile"] == "smoke" and run["variant"] == "common"
    assert run["corpus"]["name"] == "coco_train2017+bsds500_train" and run["corpus"]["n_images"] == 16
    assert run["iterations"]["train"] == 2 and run["iterations"]["gatys_lbfgs"] == 3
    assert set(run["loss_weights"]) >= {"content", "style", "tv"}
    assert {n: s["status"] for n, s in run["stages"].items()} == {
        "train:la_muse": "ok", "fig5:32": "ok", "table1:32": "ok", "outputs:la_muse": "ok"}
    # every stage did measurable work, and the stages fit inside the run's own wall time
    assert all(s["wall_time_s"] > 0 for s in run["stages"].values())
    assert sum(s["wall_time_s"] for s in run["stages"].values()) <= run["wall_time_s"]


@pytest.mark.parametrize("path", ["reference", "fast"])
def test_the_harness_uses_one_perceptual_objective_for_training_and_gatys(tmp_path, monkeypatch, path):
    """One Eq. 5 objective per style. On the fast path training and Gatys each run it through the fast loss network
    (perceptual.fast), wrapping that same PerceptualObjective (same Gram targets, same weights)."""
    seen = {"train": [], "gatys": []}
    real_loss, real_fast_loss, real_stylise = style.style_loss_fn, style.fast_style_loss_fn, style.stylise

    def train_spy(objective):
        seen["train"].append(objective)
        return real_loss(objective)

    def fast_train_spy(objective, cfg):
        seen["train"].append(objective)
        return real_fast_loss(objective, cfg)

    def stylise_spy(objective, content, *a, **k):
        seen["gatys"].append(objective if path == "reference" else objective.reference[0])
        return real_stylise(objective, content, *a, **k)

    monkeypatch.setattr(style, "style_loss_fn", train_spy)
    monkeypatch.setattr(style, "fast_style_loss_fn", fast_train_spy)
    monkeypatch.setattr(style, "stylise", stylise_spy)
    settings = style.settings_from_args(style.build_parser().parse_args(
        [*TINY, "--iterations", "1", "--gatys-iterations", "1", "--out", str(tmp_path / "r"), "--stages", "train",
         "fig5", "--path", path]))
    run = style.StyleRun(settings)
    assert run.run() == 0
    objectives = seen["train"] + seen["gatys"]
    assert len(seen["train"]) == 1 and len(seen["gatys"]) == 2
    assert all(o is objectives[0] for o in objectives)
    assert type(objectives[0]) is PerceptualObjective and run.objective("la_muse") is objectives[0]
    # same value on the same image: what the training loop computes for an output y is what Gatys reports for y
    obj = objectives[0]
    x = torch.rand(1, 3, 32, 32)
    result = real_stylise(obj, x, style.GatysConfig(iterations=0, init="content"))
    assert result.trace[0]["total"] == pytest.approx(obj(x, obj.content_targets(x))["total"].mean().item(), rel=1e-6)


def test_a_failing_stage_leaves_the_other_results(tmp_path, monkeypatch):
    """Fig. 5 fails at the larger size only (as an out-of-memory at 1024 px would): the smaller size's Fig. 5 and
    Table 1 rows, the trained network and the outputs stay; the larger size's Table 1 is skipped, not run."""
    real = style.StyleRun.stage_fig5

    def boom(self, s, size):
        if size == 48:
            raise RuntimeError("simulated Fig. 5 failure")
        return real(self, s, size)

    monkeypatch.setattr(style.StyleRun, "stage_fig5", boom)
    out = tmp_path / "r"
    code = style_cli.main([*TINY, "--sizes", "32", "48", "--out", str(out), "--stages", "train", "fig5", "table1",
                       "outputs"])
    assert code == 1
    run = json.loads((out / "run.json").read_text())
    stages = run["stages"]
    assert stages["train:la_muse"]["status"] == "ok" and stages["outputs:la_muse"]["status"] == "ok"
    assert stages["fig5:48"]["status"] == "failed" and "simulated Fig. 5 failure" in stages["fig5:48"]["error"]
    assert stages["table1:48"]["status"] == "skipped"
    assert stages["fig5:32"]["status"] == "ok" and stages["table1:32"]["status"] == "ok"
    assert set(run["fig5"]["sizes"]) == {"32"} and set(run["table1"]["sizes"]) == {"32"}
    rows = read_csv(out / "results.csv")
    assert {r["dataset"] for r in rows if r["method"] == "johnson_feedforward"} == {"32"}
    assert any(r["metric"] == "iters_to_match" and r["dataset"] == "32" for r in rows)
    assert (out / "results.csv").is_file() and (out / "models" / "la_muse.pt").is_file()
    assert (out / "images" / "style" / "la_muse" / "amber_network.png").is_file()


def test_an_existing_run_is_refused_unless_resume_or_overwrite(tmp_path, monkeypatch):
    out = tmp_path / "r"
    args = [*TINY, "--out", str(out), "--stages", "train"]
    assert style_cli.main(args) == 0
    assert style_cli.main(args) == 2  # refused: holds a run
    calls = []
    monkeypatch.setattr(style.StyleRun, "stage_train", lambda self, s: calls.append(s) or [])
    assert style_cli.main([*args, "--resume"]) == 0 and calls == []  # done before: skipped
    assert style_cli.main([*args, "--resume", "--seed", "1"]) == 2  # different settings: refused
    assert style_cli.main([*args, "--overwrite"]) == 0 and calls == ["la_muse"]


def test_an_interrupted_training_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "r"
    args = [*TINY, "--iterations", "4", "--out", str(out), "--stages", "train"]  # smoke: checkpoint every 2
    real = StyleTrainingSet.__getitem__

    def crash_at_iteration_3(self, position):
        if position >= 2 * 2:  # batch 2: samples 4.. belong to iteration 3
            raise OSError("simulated crash")
        return real(self, position)

    monkeypatch.setattr(StyleTrainingSet, "__getitem__", crash_at_iteration_3)
    assert style_cli.main(args) == 1
    run = json.loads((out / "run.json").read_text())
    assert run["stages"]["train:la_muse"]["status"] == "failed"
    assert "simulated crash" in run["stages"]["train:la_muse"]["error"]
    monkeypatch.setattr(StyleTrainingSet, "__getitem__", real)
    assert style_cli.main([*args, "--resume"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["training"]["la_muse"]["start_iteration"] == 2 and run["training"]["la_muse"]["iterations"] == 4
    assert [int(r["iteration"]) for r in read_csv(out / "logs" / "train_la_muse.csv")] == [1, 2, 3, 4]

    # the resumed run is the uninterrupted one: same loss log, same final weights and optimizer state
    ref = tmp_path / "ref"
    assert style_cli.main([*args[:-4], "--out", str(ref), "--stages", "train"]) == 0

    def losses(folder):
        return [{k: v for k, v in r.items() if k != "wall_time_s"} for r in read_csv(folder / "logs" /
                                                                                   "train_la_muse.csv")]

    assert losses(out) == losses(ref)
    got, want = (torch.load(f / "models" / "la_muse.pt", weights_only=True)["model"] for f in (out, ref))
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    got, want = (load_checkpoint(checkpoint_path(f, "la_muse")) for f in (out, ref))
    assert got["iteration"] == want["iteration"] == 4
    assert got["optimizer"]["param_groups"] == want["optimizer"]["param_groups"]
    for k, state in want["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(got["optimizer"]["state"][k][name], value), (k, name)


def test_a_nan_loss_fails_the_training_stage_with_iteration_and_term(tmp_path):
    out = tmp_path / "r"
    assert style_cli.main([*TINY, "--style-weight", "nan", "--out", str(out), "--stages", "train", "fig5"]) == 1
    stages = json.loads((out / "run.json").read_text())["stages"]
    assert stages["train:la_muse"]["status"] == "failed"
    assert re.search(r"iteration 1\b.*nan", stages["train:la_muse"]["error"])
    assert stages["fig5:32"]["status"] == "skipped"


def test_match_statistics_and_never():
    def trace(values, dt=0.5):
        return [{"iteration": k, "wall_time_s": dt * (k + 1), "total": v} for k, v in enumerate(values)]

    traces = {"a": trace([10, 6, 4, 2]), "b": trace([10, 8, 5, 3], dt=1.0)}
    m = style.match_statistics(traces, {"a": 5.0, "b": 5.0})
    assert m["per_image"]["a"] == (2, 1.5) and m["per_image"]["b"] == (2, 3.0)
    assert m["mean_curve"] == [10, 7, 4.5, 2.5] and m["mean"] == (2, 2.25)
    m = style.match_statistics(traces, {"a": 1.0, "b": 1.0})
    assert m["mean"] == (math.inf, math.inf) and m["per_image"]["a"] == (math.inf, math.inf)


def test_table1_reads_traces_and_labels_extrapolation():
    traces = [[{"iteration": k, "wall_time_s": 1.0 + 0.1 * k} for k in range(201)]] * 3
    assert style.table1_gatys_seconds(traces, 100) == (pytest.approx(11.0), True)
    assert style.table1_gatys_seconds(traces, 500) == (pytest.approx(51.0), False)


def test_tv_rule_keeps_the_smoothest_network_within_tolerance():
    assert style.choose_tv({1.0: 10.0, 10.0: 10.4, 100.0: 12.0}) == 10.0
    assert style.choose_tv({1.0: 10.0, 10.0: 9.0, 100.0: 9.3}) == 100.0
    assert len(style.tv_candidates()) == 3 and style.tv_candidates()[0] < style.tv_candidates()[-1]


def test_profile_table_in_the_docs_matches_profiles():
    table = {}
    docs = (Path(__file__).resolve().parents[1] / "docs" / "profiles.md").read_text(encoding="utf-8")
    for line in docs.split("## Style transfer", 1)[1].splitlines():
        m = re.match(r"\|\s*(smoke|quick|paper|trend-128)\s*\|(.*)\|\s*$", line)
        if m:
            table[m.group(1)] = [c.strip().replace(",", "") for c in m.group(2).split("|")]
    assert set(table) == set(STYLE_PROFILES)
    for name, cells in table.items():
        p = STYLE_PROFILES[name]
        assert int(cells[0]) == p.train_size and int(cells[1]) == p.batch_size and int(cells[2]) == p.iterations
        assert cells[3] == ("all" if p.max_train_images is None else str(p.max_train_images))
        assert tuple(int(v) for v in cells[4].split()) == p.sizes
        assert int(cells[5]) == p.n_images and int(cells[6]) == p.gatys_iterations
        n, size, iters = re.match(r"(\d+) @ (\d+) (\d+) it", cells[7]).groups()
        assert (int(n), int(size), int(iters)) == (p.n_outputs, p.output_size, p.output_gatys_iterations)


def test_cli_rejects_bad_arguments(tmp_path, capsys):
    for bad in (["--sizes", "30"], ["--iterations", "0"], ["--profile", "fast"], ["--variant", "x"]):
        with pytest.raises(SystemExit):
            style_cli.main([*bad, "--out", str(tmp_path / "x")])
    assert "not a multiple of 4" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ data/style_data


def _folder(tmp_path, sizes=((40, 60), (50, 50), (70, 45))):
    from data.images import save_image

    g = torch.Generator().manual_seed(0)
    for i, (h, w) in enumerate(sizes):
        save_image(torch.rand(3, h, w, generator=g), tmp_path / f"img{i}.png")
    return sorted(tmp_path.glob("*.png"))


def test_training_batches_are_deterministic_and_resumable(tmp_path):
    files = _folder(tmp_path)
    a = StyleTrainingSet(files, size=32, crop="random", seed=5)
    b = StyleTrainingSet(files, size=32, crop="random", seed=5)
    c = StyleTrainingSet(files, size=32, crop="random", seed=6)
    stream = a.batches(2)
    first = [next(stream) for _ in range(4)]
    assert all(x.shape == (2, 3, 32, 32) and 0 <= x.min() and x.max() <= 1 for x in first)
    assert all(torch.equal(x, b.batch(i, 2)) for i, x in enumerate(first))
    assert torch.equal(next(b.batches(2, start_iteration=3)), first[3])  # resume needs only the iteration
    assert not all(torch.equal(x, c.batch(i, 2)) for i, x in enumerate(first))
    # each epoch visits every image once
    epoch = [a.index_at(p)[1] for p in range(3)]
    assert sorted(epoch) == [0, 1, 2]


def test_an_unreadable_training_image_is_replaced_by_the_next_one(tmp_path):
    files = _folder(tmp_path)
    bad = tmp_path / "img1.png"
    bad.write_bytes(b"not a png")
    ds = StyleTrainingSet(files, size=32, crop="center", seed=0)
    batches = [ds.batch(i, 3) for i in range(2)]
    assert ds.unreadable == {files.index(bad)}
    assert all(torch.isfinite(b).all() and b.shape == (3, 3, 32, 32) for b in batches)
    bad.write_bytes(b"")
    for f in files:
        f.write_bytes(b"")
    with pytest.raises(Exception, match="no image of the training corpus"):
        StyleTrainingSet(files, size=32).batch(0, 1)


def test_centre_crops_and_resizing():
    img = torch.rand(3, 40, 60)
    assert resize_shorter_side(img, 20).shape == (3, 20, 30)
    assert center_square(img, 32).shape == (3, 32, 32)
    assert crop_to_multiple(torch.rand(3, 33, 42), 4).shape == (3, 32, 40)
    ds = StyleTrainingSet([Path("unused.png")], size=8, crop="center")
    ds._cache[0] = (torch.arange(8 * 12, dtype=torch.float32).reshape(1, 8, 12).expand(3, 8, 12) % 255) \
        .to(torch.uint8)
    assert torch.equal(ds[0], ds._cache[0][:, :, 2:10].float() / 255)
    with pytest.raises(ValueError):
        StyleTrainingSet([], size=8)
    with pytest.raises(ValueError):
        StyleTrainingSet([Path("x.png")], size=8, crop="diagonal")


def test_reference_path_gives_the_fast_paths_results_on_cpu(tmp_path):
    """The same style run through --path fast and --path reference on a CPU. Every results.csv row is
    identical (training, Gatys, the content image's objective) except two kinds: wall-clock metrics, and the
    network's objective on the Fig. 5 images, which the fast path computes from a batch of same-size images
    (FastStylizer.stylize_many): oneDNN sums a batch of 2 in another order than two batches of 1, so those values
    agree to ~3e-7 relative (their std, a difference of nearly equal numbers, to ~3e-6), not bit for bit. run.json
    records the path and its config."""
    timing = {"seconds", "ratio", "seconds_extrapolated", "ratio_extrapolated", "seconds_to_match"}
    values = {}
    for path in ("fast", "reference"):
        out = tmp_path / path
        assert style_cli.main([*TINY, "--out", str(out), "--stages", "train", "fig5", "table1", "outputs",
                           "--path", path]) == 0
        values[path] = {(r["dataset"], r["method"], r["image"], r["metric"]): float(r["value"])
                        for r in read_csv(out / "results.csv") if r["metric"] not in timing}
        run = json.loads((out / "run.json").read_text())
        assert run["path"] == path and (run["fast_config"]["train"] is None) == (path == "reference")
    fast, ref = values["fast"], values["reference"]
    assert fast.keys() == ref.keys()
    batched = {k for k in fast if k[1] == "johnson_network"}
    assert batched and all(fast[k] == ref[k] for k in fast.keys() - batched)
    assert all(math.isclose(fast[k], ref[k], rel_tol=1e-5) for k in batched)
    assert any(k[1] == "gatys_lbfgs" and k[3] == "objective_final" for k in fast.keys() - batched)


@pytest.mark.parametrize("flag", [[], ["--no-progress"]])
def test_no_progress_turns_the_training_bar_off(flag, tmp_path, capfd):
    """`--no-progress`, as in bench.sr: no tqdm bar on stderr (the training bar is forced on otherwise)."""
    settings = style.settings_from_args(style.build_parser().parse_args(
        [*TINY, "--iterations", "2", "--out", str(tmp_path / "r"), "--stages", "train", *flag]))
    assert settings.progress is not bool(flag)
    assert style.StyleRun(settings).run() == 0
    assert ("train la_muse" in capfd.readouterr().err) is not bool(flag)
