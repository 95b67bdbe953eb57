"""Reproducibility: with the same seed, device, versions and CPU float path the smoke profile gives the same results.csv
twice, and run.json records everything needed to rerun it.

The two smoke runs of each harness are separate processes (`python -m bench.sr --profile smoke`,
`python -m bench.style --profile smoke`, real ImageNet VGG-16 weights, one thread) with different PYTHONHASHSEEDs, so
an ordering that depends on set/dict hashing shows up as a difference. The second run is started from the command
line the first one recorded in run.json (only --out changed): the recorded command is what reruns it.
SR results must be byte-identical. Style results are identical except the timing metrics (TIMING_METRICS), which
measure wall time. About two minutes on two CPU cores (marked slow).
"""
from __future__ import annotations

import csv
import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.run.profiles import STYLE_PROFILES
from bench.sr import cli as sr
from bench.style import cli as style
from data import catalog
from data.files import sha256_file
from reports.spread import TIMING_METRICS, SpreadTable, load_spread

REPO = Path(__file__).resolve().parents[1]
VERSIONED = ("torch", "torchvision", "numpy", "scikit-image", "lpips")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
# --no-report / --stages without `report`: the report stage writes nothing into results.csv and costs time here
SR_ARGS = ["--profile", "smoke", "--device", "cpu", "--no-report", "--no-progress"]
STYLE_ARGS = ["--profile", "smoke", "--device", "cpu", "--stages", "train", "fig5", "table1", "outputs"]


def _env(hash_seed: str) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED=hash_seed)
    env.pop("PERCEPTUAL_DATA", None)  # the default mirror beside the checkout, as a user's run
    return env


def _run(argv: list[str], hash_seed: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, *argv[1:]] if argv[0] == "python" else [sys.executable, *argv]
    return subprocess.run(cmd, cwd=REPO, env=_env(hash_seed), capture_output=True, text=True, timeout=900,
                          check=False, preexec_fn=lambda: os.umask(0o022))  # a user's usual umask


def _with_out(argv: list[str], out: Path) -> list[str]:
    i = argv.index("--out")
    return [*argv[:i + 1], str(out), *argv[i + 2:]]


def _twice(module: str, args: list[str], tmp: Path) -> tuple[Path, Path]:
    """Run `python -m module args` into tmp/a, then rerun the command recorded in a's run.json into tmp/b."""
    a, b = tmp / "a", tmp / "b"
    first = _run(["python", "-m", module, *args, "--out", str(a)], hash_seed="1")
    assert first.returncode == 0, first.stderr[-3000:]
    recorded = json.loads((a / "run.json").read_text())["argv"]
    second = _run(_with_out(recorded, b), hash_seed="2")
    assert second.returncode == 0, second.stderr[-3000:]
    return a, b


@pytest.fixture(scope="module")
def sr_runs(tmp_path_factory) -> tuple[Path, Path]:
    return _twice("bench.sr", SR_ARGS, tmp_path_factory.mktemp("sr"))


@pytest.fixture(scope="module")
def style_runs(tmp_path_factory) -> tuple[Path, Path]:
    return _twice("bench.style", STYLE_ARGS, tmp_path_factory.mktemp("style"))


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_sr_smoke_results_are_byte_identical(sr_runs):
    a, b = sr_runs
    rows = _rows(a / "results.csv")
    methods = {r["method"] for r in rows}
    assert methods == {"bicubic", "srcnn", "johnson_pixel", "johnson_pixel_histmatch", "johnson_feat",
                       "johnson_feat_histmatch"}  # every method ran, trained ones included
    assert (a / "results.csv").read_bytes() == (b / "results.csv").read_bytes()
    # the training trajectories agree too (the loss logs, minus wall time)
    for log in sorted((a / "logs").glob("train_*.csv")):
        strip = [{k: v for k, v in r.items() if k != "wall_time_s"} for r in _rows(log)]
        assert strip == [{k: v for k, v in r.items() if k != "wall_time_s"} for r in _rows(b / "logs" / log.name)]


@pytest.mark.slow
@pytest.mark.parametrize("task", ["sr", "style"])
def test_every_file_a_run_writes_is_readable_by_others(task, sr_runs, style_runs):
    """Under umask 022 results, run.json, checkpoints, weights and images are 0644, as a plain open() makes them."""
    a = (sr_runs if task == "sr" else style_runs)[0]
    files = [p for p in a.rglob("*") if p.is_file()]
    private = [str(p.relative_to(a)) for p in files if p.stat().st_mode & 0o044 != 0o044]
    assert files and not private, private


@pytest.mark.slow
def test_style_smoke_results_are_identical_except_timings(style_runs):
    a, b = style_runs

    def split(path: Path) -> tuple[dict[tuple[str, ...], str], dict[tuple[str, ...], str]]:
        same, timing = {}, {}
        for r in _rows(path):
            key = (r["task"], r["dataset"], r["scale"], r["method"], r["image"], r["metric"])
            (timing if r["metric"] in TIMING_METRICS else same)[key] = r["value"]
        return same, timing

    same_a, timing_a = split(a / "results.csv")
    same_b, timing_b = split(b / "results.csv")
    pairs = {(k[3], k[5]) for k in same_a}
    assert {("johnson_network", "objective"), ("content_image", "objective"),
            ("gatys_lbfgs", "objective_final"), ("gatys_lbfgs", "iters_to_match")} <= pairs
    assert same_a == same_b  # value strings: bit-identical floats
    assert set(timing_a) == set(timing_b) and timing_a  # the same timing rows, measured both times
    assert all(float(v) > 0 for v in timing_a.values() if v != "inf")


def _check_versions(run: dict) -> None:
    for name in VERSIONED:
        assert run["versions"][name] == importlib.metadata.version(name), name


def _check_common(run: dict, module: str, args: list[str]) -> None:
    argv = run["argv"]
    assert argv[:3] == ["python", "-m", module] and argv[3:-2] == args and argv[-2] == "--out"
    assert run["command"].startswith(f"python -m {module} --profile smoke")
    assert run["profile"] == "smoke" and run["seed"] == 0
    assert run["device"] == "cpu" and run["device_name"].startswith("cpu")
    _check_versions(run)
    assert re.fullmatch(r"[0-9a-f]{40}", run["git"]["commit"])
    exists = subprocess.run(["git", "cat-file", "-e", f"{run['git']['commit']}^{{commit}}"], cwd=REPO, check=False)
    assert exists.returncode == 0
    # the tree's state as git sees it now (nothing in the checkout is edited while these tests run)
    from bench.run.provenance import read_git_state

    now = read_git_state()
    assert run["git"]["commit"] == now["commit"]
    assert run["git"]["dirty"] is bool(now["dirty_paths"]) and run["git"]["dirty_paths"] == now["dirty_paths"]


def _check_weights(manifest: dict) -> None:
    from perceptual.weights import weights_dir

    assert manifest, "no weights hash recorded"
    for name, sha in manifest.items():
        assert SHA256.match(sha), (name, sha)
        path = weights_dir() / name
        if path.is_file():
            assert sha256_file(path) == sha, name


def _catalog_sha(dataset: str) -> dict[str, str]:
    return {e.name: e.sha256 for e in catalog.dataset_entries(dataset)}


@pytest.mark.slow
def test_sr_run_json_records_what_reruns_it(sr_runs):
    a, _ = sr_runs
    run = json.loads((a / "run.json").read_text())
    _check_common(run, "bench.sr", SR_ARGS)
    _check_weights(run["weights"])
    assert "vgg16" in " ".join(run["weights"])  # the feature loss's VGG-16
    assert run["datasets"]["Set5"]["sha256"] == _catalog_sha("Set5")
    for key in ("corpus", "srcnn_corpus"):
        corpus = run[key]
        assert corpus["datasets"] == {n: catalog.dataset_digest(n) for n in corpus["datasets"]} and corpus["datasets"]
        assert SHA256.match(corpus["file_list_digest"]) and corpus["n_images"] > 0
    assert set(run["corpus"]["datasets"]) == set(catalog.DEFAULT_TRAIN_CORPUS)
    assert set(run["srcnn_corpus"]["datasets"]) == set(catalog.SRCNN_TRAIN_CORPUS)


@pytest.mark.slow
def test_style_run_json_records_what_reruns_it(style_runs):
    a, _ = style_runs
    run = json.loads((a / "run.json").read_text())
    _check_common(run, "bench.style", STYLE_ARGS)
    _check_weights(run["weights_files"])
    muse = catalog.image_entry("la_muse")
    assert run["style_images"]["la_muse"]["sha256"] == muse.sha256
    fig5, outputs = run["datasets"]["fig5"], run["datasets"]["outputs"]
    assert fig5["name"] == catalog.FIG5_EVAL_SET and fig5["n_images"] == STYLE_PROFILES["smoke"].n_images
    assert fig5["sha256"].items() <= _catalog_sha(catalog.FIG5_EVAL_SET).items()
    assert outputs["n_images"] == STYLE_PROFILES["smoke"].n_outputs
    assert outputs["sha256"].items() <= _catalog_sha("content").items()
    corpus = run["corpus"]
    assert corpus["datasets"] == {n: catalog.dataset_digest(n) for n in catalog.DEFAULT_TRAIN_CORPUS}
    assert SHA256.match(corpus["file_list_digest"]) and corpus["n_images"] == STYLE_PROFILES["smoke"].max_train_images


# ------------------------------------------------------------------------------------------------- in one process


def _style_values(out: Path) -> dict[tuple[str, ...], str]:
    return {(r["dataset"], r["method"], r["image"], r["metric"]): r["value"] for r in _rows(out / "results.csv")
            if r["metric"] not in TIMING_METRICS}


def test_style_random_loss_network_is_seeded_within_one_process(tmp_path):
    """`--vgg-weights random` builds VGG-16 from the run's seed, not from whatever state the global RNG is in: two
    runs in one process (with other RNG use between them) agree, and another seed gives another network."""
    args = ["--profile", "smoke", "--vgg-weights", "random", "--train-size", "32", "--sizes", "32", "--iterations",
            "2", "--gatys-iterations", "2", "--device", "cpu", "--stages", "train", "fig5"]
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert style.main([*args, "--out", str(tmp_path / "a")]) == 0
        torch.rand(7)  # anything that moves the global RNG in between
        assert style.main([*args, "--out", str(tmp_path / "b")]) == 0
        assert style.main([*args, "--seed", "1", "--out", str(tmp_path / "c")]) == 0
    finally:
        torch.set_num_threads(n)
    a, b, c = (_style_values(tmp_path / x) for x in "abc")
    assert a and a == b
    objective = [k for k in a if k[1] == "johnson_network" and k[3] == "objective"]
    assert objective and all(a[k] != c[k] for k in objective)


def test_sr_random_loss_network_is_seeded_within_one_process(tmp_path, tiny_sr_sets, one_thread):
    train, tiny = tiny_sr_sets
    args = ["--profile", "smoke", "--scales", "4", "--methods", "feat", "--datasets", str(tiny),
            "--corpus", str(train), "--iterations", "2", "--patch-size", "32", "--batch-size", "2",
            "--vgg-weights", "random", "--no-lpips", "--no-report", "--no-progress", "--device", "cpu"]
    assert sr.main([*args, "--out", str(tmp_path / "a")]) == 0
    torch.rand(7)
    assert sr.main([*args, "--out", str(tmp_path / "b")]) == 0
    assert (tmp_path / "a" / "results.csv").read_bytes() == (tmp_path / "b" / "results.csv").read_bytes()
    first = json.loads((tmp_path / "a" / "run.json").read_text())
    assert first["argv"] == ["python", "-m", "bench.sr", *args, "--out", str(tmp_path / "a")]  # main's own arguments


def test_git_state_ignores_committed_results_and_names_dirty_code(tmp_path, monkeypatch):
    """A run whose tree differs only under results/ (committing measurements while it runs) is not dirty; an edited
    code file is, and is named."""
    from bench.run import provenance as runinfo

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "results").mkdir()
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "results" / "run.csv").write_text("a\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    monkeypatch.setattr(runinfo, "REPO_ROOT", tmp_path)
    (tmp_path / "results" / "run.csv").write_text("b\n")
    assert runinfo.read_git_state()["dirty"] is False
    (tmp_path / "code.py").write_text("x = 2\n")
    state = runinfo.read_git_state()
    assert state["dirty"] is True and state["dirty_paths"] == ["code.py"]
    assert re.fullmatch(r"[0-9a-f]{40}", state["commit"])


def test_git_state_is_taken_once_per_process(monkeypatch):
    """After the first call git is never read again (a commit made while a run goes must not change its record), and
    a caller changing the returned dict does not change what the next caller gets."""
    from bench.run import provenance as runinfo

    first = runinfo.git_state()
    monkeypatch.setattr(runinfo, "read_git_state", lambda: pytest.fail("git state read again after the first call"))
    first["dirty_paths"].append("mutated by a caller")
    again = runinfo.git_state()
    assert again["commit"] == first["commit"] and "mutated by a caller" not in again["dirty_paths"]


# ------------------------------------------------------------------------------------------------- golden files
# The smoke runs' results as made on 2026-12-02 (AMD EPYC, one thread), so that a refactor cannot change what a run
# writes unnoticed. Float results follow the CPU's code path, so no value is expected byte for byte on another
# machine: rows, order and keys are exact; each value must lie within the tolerance reports.spread derives from the
# spread measured over ten float paths (reports/measured_spread.csv, docs/testing.md): 1e-9 relative for the
# deterministic parts (bicubic, the protocols), a stated multiple of the measured spread for trained values. CI runs
# this file a second time under ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2. Regenerate the golden files only for
# an intended change of the results, and say why in the commit.
GOLDEN = Path(__file__).resolve().parent / "golden"


def _golden_mismatches(now: list[dict[str, str]], golden: list[dict[str, str]], spread: SpreadTable) -> list[str]:
    """Each value outside its tolerance, described; a value whose group has no measured spread is a mismatch too."""
    bad = []
    for r, g in zip(now, golden, strict=True):
        if g["value"] == "<timing>":
            continue
        key = (r["task"], r["dataset"], r["scale"], r["method"], r["image"], r["metric"])
        d = spread.compare("smoke", key, float(g["value"]), float(r["value"]), seeds=False)
        if d is None:
            bad.append(f"{key}: no measured cpu-path spread for its group (reports/measured_spread.csv)")
        elif not d.within:
            bad.append(f"{key}: {r['value']} vs golden {g['value']} (tolerance {d.tolerance:.3g}, {d.basis})")
    return bad


def _same_rows(now: list[dict[str, str]], golden: list[dict[str, str]]) -> None:
    assert [{k: v for k, v in r.items() if k != "value"} for r in now] == \
           [{k: v for k, v in r.items() if k != "value"} for r in golden]  # same rows, same order


@pytest.mark.slow
def test_sr_smoke_results_equal_the_golden_file(sr_runs):
    a, _ = sr_runs
    now, golden = _rows(a / "results.csv"), _rows(GOLDEN / "sr-smoke-results.csv")
    _same_rows(now, golden)
    assert not _golden_mismatches(now, golden, load_spread())


@pytest.mark.slow
def test_style_smoke_results_equal_the_golden_file_except_timings(style_runs):
    a, _ = style_runs
    now, golden = _rows(a / "results.csv"), _rows(GOLDEN / "style-smoke-results.csv")
    _same_rows(now, golden)
    assert all(r["metric"] in TIMING_METRICS for r, g in zip(now, golden, strict=True) if g["value"] == "<timing>")
    assert not _golden_mismatches(now, golden, load_spread())


def test_golden_comparison_holds_deterministic_values_tight_and_trained_ones_to_the_measured_spread():
    """The comparison itself: bicubic within 1e-9 relative, a trained value within 3x its group's cpu-path range
    and not beyond it, a value of an unmeasured group refused."""
    base = {"kind": "cpu_path", "task": "sr", "profile": "smoke", "dataset": "Set5", "scale": "4", "image": "baby",
            "n_runs": "2", "settings": "test"}
    spread = SpreadTable([dict(base, method="bicubic", metric="psnr_y", min="30.0", max="30.0", spread="0.0"),
                          dict(base, method="johnson_feat", metric="psnr_y", min="20.0", max="20.5", spread="0.5")])
    row = {"task": "sr", "dataset": "Set5", "scale": "4", "image": "baby", "metric": "psnr_y"}

    def check(method: str, now: float, golden: float) -> list[str]:
        return _golden_mismatches([dict(row, method=method, value=repr(now))],
                                  [dict(row, method=method, value=repr(golden))], spread)

    assert not check("bicubic", 30.0 * (1 + 5e-10), 30.0) and check("bicubic", 30.0 * (1 + 4e-9), 30.0)
    tol = 3 * 0.5 / 20.25 * 20.0  # K_PATH x the group's relative range x |golden|
    assert not check("johnson_feat", 20.0 + 0.99 * tol, 20.0) and check("johnson_feat", 20.0 + 1.01 * tol, 20.0)
    assert check("johnson_pixel", 20.0, 20.0)  # no measured spread: not judged, so not passed


def test_committed_spread_covers_every_golden_value():
    """Every value of the golden files has a measured cpu-path spread for its group (else the golden tests could
    not judge it)."""
    spread = load_spread()
    for name in ("sr-smoke-results.csv", "style-smoke-results.csv"):
        for r in _rows(GOLDEN / name):
            if r["value"] != "<timing>":
                key = (r["task"], r["dataset"], r["scale"], r["method"], r["image"], r["metric"])
                assert spread.group_rel("cpu_path", "smoke", key) is not None, key


@pytest.mark.slow
@pytest.mark.parametrize("task", ["sr", "style"])
def test_run_json_keys_equal_the_golden_file(task, sr_runs, style_runs):
    a = (sr_runs if task == "sr" else style_runs)[0]
    run = json.loads((a / "run.json").read_text())
    golden = json.loads((GOLDEN / "run-json-keys.json").read_text())[task]
    assert {"top": sorted(run), "stages": sorted(run["stages"]), "identity": sorted(run["identity"])} == golden
