"""A training killed mid-way (SIGTERM or SIGKILL) and resumed continues the same run: the resumed loss log, the
trained weights and the results line up with an uninterrupted run (on CPU: bit-identical; asserted <= 1e-6
relative).

SIGTERM (or SIGINT) inside a training finishes the current step, writes a checkpoint at that iteration (with the
partial log window) and exits with 143; SIGKILL leaves the last periodic checkpoint, and the log rows written after
it are dropped on resume and recomputed.
"""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from bench.sr import cli as sr
from bench.training import distributed
from bench.training.loop import TrainConfig, checkpoint_path, load_checkpoint, log_path, train

REPO = Path(__file__).resolve().parents[1]
NAME = "johnson_pixel_x4"
ITERATIONS = 60


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("resume_data")
    rng = np.random.default_rng(11)
    for name, sizes in (("train", [(80, 96), (72, 72), (100, 64)]), ("tiny", [(44, 52), (48, 40)])):
        (root / name).mkdir()
        for i, (h, w) in enumerate(sizes):
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / name / f"img{i}.png")
    return root / "train", root / "tiny"


def _args(out: Path, folders: tuple[Path, Path], *extra: str) -> list[str]:
    corpus, evalset = folders
    # smoke profile: checkpoint every 2 iterations, a log row every iteration
    return ["--profile", "smoke", "--scales", "4", "--methods", "pixel", "--datasets", str(evalset), "--corpus",
            str(corpus), "--iterations", str(ITERATIONS), "--patch-size", "32", "--batch-size", "2", "--no-lpips",
            "--no-report", "--no-progress", "--device", "cpu", "--out", str(out), *extra]


def _log(path: Path) -> list[dict[str, float]]:
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _results(out: Path) -> dict[tuple[str, str, str], float]:
    with open(out / "results.csv", newline="") as f:
        return {(r["method"], r["image"], r["metric"]): float(r["value"]) for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, folders) -> Path:
    """The uninterrupted run."""
    out = tmp_path_factory.mktemp("reference") / "run"
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert sr.main(_args(out, folders)) == 0
    finally:
        torch.set_num_threads(n)
    return out


def _kill_mid_training(out: Path, folders: tuple[Path, Path], sig: signal.Signals) -> subprocess.CompletedProcess:
    """Start the harness in a subprocess, wait until a checkpoint exists and some iterations are logged, send sig."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(key, None)
    proc = subprocess.Popen([sys.executable, "-m", "bench.sr", *_args(out, folders)], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ckpt, log_file, deadline = checkpoint_path(out, NAME), log_path(out, NAME), time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if ckpt.exists() and log_file.exists() and len(log_file.read_text().splitlines()) > 7:  # past iteration 6
            break
        time.sleep(0.01)
    assert proc.poll() is None, "training ended before it could be killed:\n" + proc.stderr.read()[-3000:]
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def _assert_lines_up(reference: Path, out: Path) -> float:
    """Same iterations, same loss terms (<= 1e-6 relative), same weights and results as the uninterrupted run."""
    ref, got = _log(log_path(reference, NAME)), _log(log_path(out, NAME))
    assert [r["iteration"] for r in got] == list(range(1, ITERATIONS + 1)) == [r["iteration"] for r in ref]
    worst = 0.0
    for a, b in zip(ref, got):
        for k in a:
            if k not in ("iteration", "wall_time_s"):
                d = abs(a[k] - b[k]) / max(abs(a[k]), 1e-30)
                assert d <= 1e-6, f"iteration {a['iteration']:g} {k}: {a[k]!r} vs {b[k]!r}"
                worst = max(worst, d)
    times = [r["wall_time_s"] for r in got]
    assert times == sorted(times)  # training time carries across the interruption
    ra, rb = load_checkpoint(checkpoint_path(reference, NAME)), load_checkpoint(checkpoint_path(out, NAME))
    for k in ra["model"]:
        torch.testing.assert_close(rb["model"][k], ra["model"][k], rtol=1e-6, atol=1e-8)
    r1, r2 = _results(reference), _results(out)
    assert r1.keys() == r2.keys() and all(abs(r1[k] - r2[k]) <= 1e-9 for k in r1)
    return worst


@pytest.mark.slow  # end to end: the harness in a subprocess, killed and resumed
def test_sigterm_checkpoints_at_the_current_step_and_resume_lines_up(tmp_path, folders, reference):
    out = tmp_path / "run"
    killed = _kill_mid_training(out, folders, signal.SIGTERM)
    assert killed.returncode == 128 + signal.SIGTERM, killed.stderr[-3000:]
    ckpt = load_checkpoint(checkpoint_path(out, NAME))
    stopped = ckpt["iteration"]
    assert 6 <= stopped < ITERATIONS
    assert f"stopped by SIGTERM at iteration {stopped}" in killed.stderr
    logged = [r["iteration"] for r in _log(log_path(out, NAME))]
    assert logged[-1] == stopped  # the checkpoint is exactly where the log stops: nothing lost, nothing redone
    info = json.loads((out / "run.json").read_text())
    assert info["stages"][f"train_{NAME}"]["status"] == "failed"
    assert "Interrupted" in info["stages"][f"train_{NAME}"]["error"]

    assert sr.main(_args(out, folders, "--resume")) == 0
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "ok" and info["training"][NAME]["start_iteration"] == stopped
    worst = _assert_lines_up(reference, out)
    print(f"SIGTERM at iteration {stopped}: max relative loss difference after resume {worst:.1e}")


@pytest.mark.slow  # end to end: the harness in a subprocess, killed and resumed
def test_sigkill_resumes_from_the_last_checkpoint_and_lines_up(tmp_path, folders, reference):
    out = tmp_path / "run"
    killed = _kill_mid_training(out, folders, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    ckpt_iteration = load_checkpoint(checkpoint_path(out, NAME))["iteration"]
    killed_log = _log(log_path(out, NAME))
    logged = [r["iteration"] for r in killed_log]
    assert 2 <= ckpt_iteration < ITERATIONS and ckpt_iteration % 2 == 0  # a periodic checkpoint
    # the log is written up to the checkpoint before the checkpoint is (so nothing before it is lost), without gaps,
    # and the checkpoint is the last one the run reached: SIGKILL costs at most one interval (2 iterations)
    assert logged == list(range(1, len(logged) + 1)) and ckpt_iteration <= logged[-1] <= ckpt_iteration + 2
    # what the killed run logged is the uninterrupted run's log (rows after the checkpoint are dropped on resume)
    for a, b in zip(_log(log_path(reference, NAME)), killed_log):
        assert all(abs(a[k] - b[k]) <= 1e-6 * max(abs(a[k]), 1e-30) for k in a if k != "wall_time_s"), a["iteration"]

    assert sr.main(_args(out, folders, "--resume")) == 0
    info = json.loads((out / "run.json").read_text())
    assert info["training"][NAME]["start_iteration"] == ckpt_iteration and info["status"] == "ok"
    worst = _assert_lines_up(reference, out)
    print(f"SIGKILL after iteration {logged[-1]:g} (checkpoint {ckpt_iteration}): max relative {worst:.1e}")


# ---------------------------------------------------------------------------- the loop: a stop inside a log window


class Stream:
    def __len__(self) -> int:
        return 32

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(4, generator=torch.Generator().manual_seed(k))
        return x, x.flip(0) * 2.0


def _loss(signal_at: int | None):
    calls = [0]

    def fn(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        calls[0] += 1
        if calls[0] == signal_at:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives during this step; the loop finishes it, then stops
        x, y = batch
        noise = 1e-3 * torch.randn(())  # randomness from the global RNG: resume must restore it
        mse = (model(x) - y).pow(2).mean(dim=1)
        return {"total": mse + noise, "mse": mse}
    return fn


def _model() -> nn.Module:
    torch.manual_seed(3)
    return nn.Linear(4, 4)


def test_a_stop_between_log_rows_keeps_the_partial_window(tmp_path):
    """log_every 4, checkpoint_every 8, SIGTERM at iteration 7: the checkpoint holds iterations 5-7's partial
    sums, so the resumed row at iteration 8 averages 5..8 exactly like the uninterrupted run's."""
    cfg = TrainConfig(iterations=16, batch_size=4, lr=1e-2, checkpoint_every=8, log_every=4, seed=1, progress=False)
    ref, run = tmp_path / "ref", tmp_path / "run"
    train(_model(), _loss(None), Stream(), cfg, name="m", out_dir=ref)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(distributed.Interrupted) as stop:
        train(_model(), _loss(7), Stream(), cfg, name="m", out_dir=run)
    assert stop.value.code == 143 and stop.value.iteration == 7
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is only installed while training
    ckpt = load_checkpoint(checkpoint_path(run, "m"))
    assert ckpt["iteration"] == 7 and set(ckpt["log_window"]) == {"total", "mse"}
    assert [r["iteration"] for r in _log(log_path(run, "m"))] == [4]
    result = train(_model(), _loss(None), Stream(), cfg, name="m", out_dir=run, resume=True)
    assert result.start_iteration == 7 and result.iterations == 16
    a, b = _log(log_path(ref, "m")), _log(log_path(run, "m"))
    assert [r["iteration"] for r in b] == [4, 8, 12, 16]
    assert [{k: v for k, v in r.items() if k != "wall_time_s"} for r in a] == \
           [{k: v for k, v in r.items() if k != "wall_time_s"} for r in b]  # bit-identical
