"""The shared training loop (bench.training.loop): learning, exact resume, NaN handling, checkpoint identity, sampling."""
from __future__ import annotations

import csv
import random

import numpy as np
import pytest
import torch
from torch import nn

from bench.training.distributed import DistContext
from bench.training.loop import (
    CheckpointMismatchError,
    NonFiniteLossError,
    RankBatchSampler,
    TrainConfig,
    checkpoint_path,
    load_checkpoint,
    log_path,
    train,
)


class Regression:
    """Sample k -> (x, y) with y = A x + b, deterministic in k (the loop's stream contract)."""

    def __init__(self, dim: int = 8, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.a = torch.randn(dim, dim, generator=g)
        self.b = torch.randn(dim, generator=g)
        self.dim = dim

    def __len__(self) -> int:
        return 64

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(self.dim, generator=torch.Generator().manual_seed(1000 + k))
        return x, self.a @ x + self.b


def noisy_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per-sample MSE plus terms drawn from the global torch / numpy / python RNGs (so resume must restore them)."""
    x, y = batch
    x = x + 0.01 * torch.randn_like(x)
    mse = (model(x) - y).pow(2).mean(dim=1)
    jitter = torch.full_like(mse, float(np.random.rand()) * 1e-3 + random.random() * 1e-3)
    return {"total": mse + jitter, "mse": mse, "jitter": jitter}


def make_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Linear(8, 8)


def read_log(path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def cfg(**kw) -> TrainConfig:
    base = {"iterations": 8, "batch_size": 4, "lr": 1e-2, "checkpoint_every": 2, "log_every": 1, "seed": 0,
            "progress": False}
    base.update(kw)
    return TrainConfig(**base)


def test_loss_decreases_on_a_tiny_problem(tmp_path):
    model = make_model(0)
    result = train(model, noisy_loss, Regression(), cfg(iterations=150, lr=5e-2, checkpoint_every=50),
                   name="tiny", out_dir=tmp_path)
    rows = read_log(log_path(tmp_path, "tiny"))
    assert [int(r["iteration"]) for r in rows] == list(range(1, 151))
    assert list(rows[0]) == ["iteration", "wall_time_s", "total", "mse", "jitter"]
    first = np.mean([float(r["mse"]) for r in rows[:10]])
    last = np.mean([float(r["mse"]) for r in rows[-10:]])
    assert last < 0.1 * first, (first, last)
    assert result.iterations == 150 and not result.resumed
    times = [float(r["wall_time_s"]) for r in rows]
    assert times == sorted(times) and times[0] > 0


class Interrupt(Exception):
    pass


def test_resume_after_interruption_matches_an_uninterrupted_run(tmp_path):
    # uninterrupted reference
    ref_model = make_model(0)
    train(ref_model, noisy_loss, Regression(), cfg(), name="ref", out_dir=tmp_path / "a")
    ref = read_log(log_path(tmp_path / "a", "ref"))

    # the same run, killed during iteration 6 (after the checkpoint at 4 and the log row of 5)
    calls = {"n": 0}

    def dying_loss(model, batch):
        calls["n"] += 1
        if calls["n"] == 6:
            raise Interrupt()
        return noisy_loss(model, batch)

    with pytest.raises(Interrupt):
        train(make_model(0), dying_loss, Regression(), cfg(), name="ref", out_dir=tmp_path / "b")
    assert [r["iteration"] for r in read_log(log_path(tmp_path / "b", "ref"))] == ["1", "2", "3", "4", "5"]
    assert load_checkpoint(checkpoint_path(tmp_path / "b", "ref"))["iteration"] == 4

    # resume in a "new process": other global RNG states, another initialisation
    torch.manual_seed(123)
    np.random.seed(123)
    random.seed(123)
    model = make_model(99)
    result = train(model, noisy_loss, Regression(), cfg(), name="ref", out_dir=tmp_path / "b", resume=True)
    assert result.resumed and result.start_iteration == 4 and result.iterations == 8
    got = read_log(log_path(tmp_path / "b", "ref"))
    assert [r["iteration"] for r in got] == [r["iteration"] for r in ref]
    for a, b in zip(ref, got):
        for term in ("total", "mse", "jitter"):
            assert a[term] == b[term], (a["iteration"], term)  # bit-identical on CPU
    for (k, v), (k2, v2) in zip(ref_model.state_dict().items(), model.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    assert float(got[-1]["wall_time_s"]) >= float(got[3]["wall_time_s"])


def test_finished_run_is_loaded_not_retrained(tmp_path):
    model = make_model(0)
    train(model, noisy_loss, Regression(), cfg(iterations=4), name="done", out_dir=tmp_path)
    fresh = make_model(5)
    result = train(fresh, noisy_loss, Regression(), cfg(iterations=4), name="done", out_dir=tmp_path, resume=True)
    assert result.already_complete and result.iterations == 4
    assert torch.equal(fresh.weight, model.weight)
    # asking for more iterations extends the same run
    result = train(fresh, noisy_loss, Regression(), cfg(iterations=6), name="done", out_dir=tmp_path, resume=True)
    assert result.start_iteration == 4 and result.iterations == 6
    assert len(read_log(log_path(tmp_path, "done"))) == 6


def test_nan_stops_naming_iteration_and_term_and_keeps_last_checkpoint(tmp_path):
    def bad_loss(model, batch):
        terms = noisy_loss(model, batch)
        bad_loss.n += 1
        if bad_loss.n == 5:
            terms["mse"] = terms["mse"] * float("nan")
            terms["total"] = terms["mse"] + terms["jitter"]
        return terms
    bad_loss.n = 0

    model = make_model(0)
    with pytest.raises(NonFiniteLossError) as info:
        train(model, bad_loss, Regression(), cfg(iterations=10), name="nan", out_dir=tmp_path)
    err = info.value
    assert err.iteration == 5 and err.term == "mse"  # the term that caused it, not the 'total' it made NaN
    assert "iteration 5" in str(err) and "'mse'" in str(err) and "iteration 4" in str(err)
    ckpt = load_checkpoint(checkpoint_path(tmp_path, "nan"))
    assert ckpt["iteration"] == 4
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())
    assert [r["iteration"] for r in read_log(log_path(tmp_path, "nan"))] == ["1", "2", "3", "4"]
    # the model in memory is the last good one: the bad step was never applied
    assert torch.equal(model.weight, ckpt["model"]["weight"])


def test_inf_in_a_single_term_is_named(tmp_path):
    def inf_term(model, batch):
        terms = noisy_loss(model, batch)
        terms["jitter"] = torch.full_like(terms["jitter"], float("inf"))
        return terms

    with pytest.raises(NonFiniteLossError) as info:
        train(make_model(0), lambda m, b: {**inf_term(m, b), "total": noisy_loss(m, b)["total"]}, Regression(),
              cfg(), name="inf", out_dir=tmp_path)
    assert info.value.iteration == 1 and info.value.term == "jitter"
    assert info.value.checkpoint is None and "no checkpoint" in str(info.value)


def test_resume_refuses_a_checkpoint_of_another_run(tmp_path):
    train(make_model(0), noisy_loss, Regression(), cfg(iterations=2), name="x", out_dir=tmp_path,
          meta={"method": "pixel"})
    with pytest.raises(CheckpointMismatchError, match="method"):
        train(make_model(0), noisy_loss, Regression(), cfg(iterations=4), name="x", out_dir=tmp_path,
              resume=True, meta={"method": "feat"})
    with pytest.raises(CheckpointMismatchError, match="batch_size"):
        train(make_model(0), noisy_loss, Regression(), cfg(iterations=4, batch_size=2), name="x", out_dir=tmp_path,
              resume=True, meta={"method": "pixel"})


def test_config_is_validated():
    with pytest.raises(ValueError, match="iterations"):
        TrainConfig(iterations=0, batch_size=4)
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(iterations=1, batch_size=-1)
    with pytest.raises(ValueError, match="multiple of log_every"):
        TrainConfig(iterations=10, batch_size=4, checkpoint_every=5, log_every=2)


def test_rank_sampler_splits_each_global_batch():
    single = list(RankBatchSampler(6, 2, 5))
    assert single[0] == list(range(12, 18)) and len(single) == 3
    ranks = [list(RankBatchSampler(6, 2, 5, DistContext(rank=r, world_size=3))) for r in range(3)]
    for b in range(3):
        assert [k for r in range(3) for k in ranks[r][b]] == single[b]
    with pytest.raises(ValueError, match="divisible"):
        RankBatchSampler(5, 0, 1, DistContext(rank=0, world_size=2))
