"""The one training loop every harness shares (SR networks, SRCNN, style networks), so checkpointing, exact resume,
logging, NaN handling and torchrun behave the same for every network and are tested once.

Guarantees: seeded RNGs; atomic checkpoints; `resume=True` reproduces an uninterrupted run's losses (bit-identical on
CPU); a NaN/Inf stops the run before its update with NonFiniteLossError; only rank 0 writes; at most one host read
per step. Inputs, every guarantee in full, the read schedule and the data-parallel split: docs/training.md.
"""
from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import os
import random
import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm

from bench.training import distributed
from bench.training.distributed import DistContext
from bench.training.loading import loader_options
from bench.training.steps import PATHS, FastStep, ReferenceStep, StepOut
from data.files import atomic_write, atomic_write_text, plain
from perceptual.fast import FastConfig, best_config

__all__ = [
    "CheckpointMismatchError",
    "NonFiniteLossError",
    "RankBatchSampler",
    "TrainConfig",
    "TrainResult",
    "capture_rng_state",
    "checkpoint_path",
    "first_non_finite",
    "load_checkpoint",
    "load_trained_weights",
    "log_path",
    "make_loader",
    "restore_cuda_rng_states",
    "restore_rng_state",
    "save_checkpoint",
    "seed_everything",
    "seeded_init",
    "train",
    "wrap_model",
]

log = logging.getLogger("bench.training.loop")

LossFn = Callable[[nn.Module, Any], Mapping[str, torch.Tensor]]
CHECKPOINT_FORMAT = 1


@dataclass(frozen=True)
class TrainConfig:
    """How to train. `batch_size` is the global batch (split across ranks under torchrun)."""

    iterations: int
    batch_size: int
    lr: float = 1e-3
    checkpoint_every: int = 1000
    log_every: int = 1
    seed: int = 0
    num_workers: int = 0
    amp: str | None = None  # None, "bf16" or "fp16"
    progress: bool = True
    path: str = "fast"  # "fast" (perceptual.fast.FastTrainer) or "reference" (the plain eager step); bench.training.steps
    fast: FastConfig | None = None  # the fast path's config; None: best_config(device, "train")

    def __post_init__(self) -> None:
        for name in ("iterations", "batch_size", "checkpoint_every", "log_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive integer, got {value!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"TrainConfig.lr must be a positive number, got {self.lr!r}")
        if self.checkpoint_every % self.log_every:
            raise ValueError(f"TrainConfig.checkpoint_every ({self.checkpoint_every}) must be a multiple of "
                             f"log_every ({self.log_every}) so a resumed log lines up with an uninterrupted one")
        if self.num_workers < 0:
            raise ValueError(f"TrainConfig.num_workers must be >= 0, got {self.num_workers}")
        if self.amp not in (None, "bf16", "fp16"):
            raise ValueError(f"TrainConfig.amp must be None, 'bf16' or 'fp16', got {self.amp!r}")
        if self.path not in PATHS:
            raise ValueError(f"TrainConfig.path must be one of {', '.join(PATHS)}, got {self.path!r}")
        if self.path == "fast" and self.amp == "fp16":
            raise ValueError("TrainConfig(amp='fp16') needs loss scaling, which the fast path does not do; use "
                             "amp='bf16' or path='reference'")

    def identity(self) -> dict[str, Any]:
        """The fields that shape the trajectory: a checkpoint made with others cannot be resumed with these."""
        return {"batch_size": self.batch_size, "lr": self.lr, "seed": self.seed, "log_every": self.log_every,
                "amp": self.amp}

    def fast_config(self, device: torch.device | str, world_size: int = 1) -> FastConfig:
        """The fast path's config on `device`: `fast` or best_config(device, 'train'), with `amp` as its dtype when
        set, and CUDA graphs off under torchrun (a captured step cannot hold DDP's gradient all-reduce hooks and
        the loss all-reduce; compile and fused Adam stay on)."""
        fast = self.fast if self.fast is not None else best_config(device, "train")
        if self.amp is not None:
            fast = replace(fast, dtype={"bf16": torch.bfloat16, "fp16": torch.float16}[self.amp])
        if world_size > 1 and fast.cuda_graphs:
            fast = replace(fast, cuda_graphs=False)
        return fast

    def compute_dtype(self, device: torch.device | str, world_size: int = 1) -> str:
        """The precision the step computes in, for the checkpoint identity: a run continues only in the precision it
        started in. Execution choices that only change rounding order (layout, compile, CUDA graphs, fused Adam,
        cuDNN autotuning) may differ between sessions, so a run can resume with another number of GPUs or with
        compile switched on; on a CPU the default fast path and the reference path are the same arithmetic."""
        if self.path == "reference":
            return {"bf16": "bfloat16", "fp16": "float16"}.get(self.amp or "", "float32")
        return str(self.fast_config(device, world_size).dtype).removeprefix("torch.")


@dataclass
class TrainResult:
    """What a training call did, for run.json."""

    name: str
    iterations: int  # total iterations the model has now been trained for
    start_iteration: int  # 0 for a fresh run, the checkpoint's iteration when resumed
    wall_time_s: float  # cumulative training time (all sessions)
    session_time_s: float  # this call only
    checkpoint: str | None
    log: str | None
    resumed: bool = False
    already_complete: bool = False
    last: dict[str, float] = field(default_factory=dict)  # last logged row's loss terms
    world_size: int = 1  # processes that trained (torchrun ranks)
    global_batch: int | None = None  # samples per step over all ranks (--batch-size)
    per_rank_batch: int | None = None  # global_batch / world_size
    lr: float | None = None  # Adam's base learning rate
    path: str = "fast"  # which step ran (bench.training.steps)
    fast_config: dict[str, Any] | None = None  # the fast path's FastConfig (as_dict + label); None on reference
    first_step_s: float | None = None  # this session's first step, synchronised (compile / warm-up inside)
    later_steps_s: float | None = None  # mean seconds per step after the first (logs, checkpoints included)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class NonFiniteLossError(FloatingPointError, distributed.SharedFailure):
    """A loss term became NaN or Inf: names the run, iteration, term and the last good checkpoint."""

    def __init__(self, name: str, iteration: int, term: str, value: float, checkpoint: Path | None,
                 checkpoint_iteration: int | None):
        self.name, self.iteration, self.term, self.value = name, iteration, term, value
        self.checkpoint, self.checkpoint_iteration = checkpoint, checkpoint_iteration
        where = (f"the last good checkpoint is {checkpoint} (iteration {checkpoint_iteration}); resume from it with "
                 f"a lower learning rate or check the data" if checkpoint is not None
                 else "no checkpoint had been written yet")
        super().__init__(f"training {name!r} stopped at iteration {iteration}: loss term {term!r} is {value}; "
                         f"{where}")


def first_non_finite(names: Sequence[str], values: Sequence[float]) -> tuple[str, float] | None:
    """(term, value) of the loss term to blame for a non-finite loss, or None when every value is finite.

    The first non-finite individual term in `names` order wins over "total": a NaN style term makes the total NaN
    too, and the message must name the cause. "total" is named only when every individual term is finite (e.g. an
    overflow in the weighted sum)."""
    bad = [(n, v) for n, v in zip(names, values) if not math.isfinite(v)]
    if not bad:
        return None
    return next(((n, v) for n, v in bad if n != "total"), bad[0])


class CheckpointMismatchError(ValueError, distributed.SharedFailure):
    """The checkpoint on disk belongs to a different run than the one asked to resume."""


# ------------------------------------------------------------------------------------------- distributed slots


def wrap_model(model: nn.Module, device: torch.device, ctx: DistContext) -> nn.Module:
    """The one place that wraps the model for training: DistributedDataParallel under torchrun, else unchanged."""
    if ctx.world_size == 1:
        return model
    return distributed.wrap_ddp(model, device)


class RankBatchSampler(Sampler[list[int]]):
    """Sample indices for global batches [start_batch, stop_batch): this rank's contiguous share of each."""

    def __init__(self, batch_size: int, start_batch: int, stop_batch: int, ctx: DistContext = distributed.SINGLE_PROCESS):
        if batch_size % ctx.world_size:
            raise ValueError(f"global batch size {batch_size} is not divisible by the {ctx.world_size} ranks")
        self.batch_size, self.start, self.stop, self.ctx = batch_size, start_batch, stop_batch, ctx
        self.local = batch_size // ctx.world_size

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self) -> Iterator[list[int]]:
        for b in range(self.start, self.stop):
            first = b * self.batch_size + self.ctx.rank * self.local
            yield list(range(first, first + self.local))


def make_loader(stream: Any, cfg: TrainConfig, start_batch: int, ctx: DistContext, device: torch.device,
                collate: Callable[[list[Any]], Any] | None = None) -> DataLoader:
    """The one place that builds the data pipeline: global batches start_batch .. cfg.iterations - 1.

    The loader gets its own generator so creating it never consumes the global torch RNG (that would make a
    resumed run diverge from an uninterrupted one).
    """
    sampler = RankBatchSampler(cfg.batch_size, start_batch, cfg.iterations, ctx)
    return DataLoader(stream, batch_sampler=sampler, collate_fn=collate,
                      generator=torch.Generator().manual_seed(cfg.seed),
                      worker_init_fn=_ignore_stop_signals if cfg.num_workers else None,
                      **loader_options(device, cfg.num_workers))


def _ignore_stop_signals(worker_id: int) -> None:
    """Data workers leave SIGTERM/SIGINT to the training process (torchrun signals the whole process group): it
    finishes its step and checkpoints, then shuts the workers down; a worker killed first would abort that."""
    import signal

    for s in distributed.StopRequest.SIGNALS:
        signal.signal(s, signal.SIG_IGN)


# ------------------------------------------------------------------------------------------------ RNG / files


def capture_rng_state() -> dict[str, Any]:
    """Python, numpy, torch (and CUDA) RNG states as tensors and plain types (safe for weights_only loading)."""
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"bit_generator": np_state["bit_generator"],
                  "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
                  "pos": int(np_state["state"]["pos"]), "has_gauss": int(np_state["has_gauss"]),
                  "gauss": float(np_state["gauss"])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of capture_rng_state."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    np_state = state["numpy"]
    np.random.set_state({"bit_generator": np_state["bit_generator"],
                         "state": {"key": np_state["key"].numpy().astype(np.uint32), "pos": np_state["pos"]},
                         "has_gauss": np_state["has_gauss"], "gauss": np_state["gauss"]})
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        restore_cuda_rng_states(state["cuda"])


def restore_cuda_rng_states(states: Sequence[torch.Tensor]) -> int:
    """Restore the per-GPU RNG states of a checkpoint on however many GPUs are visible now; returns how many were set.

    torch.cuda.set_rng_state_all(states) sets device i for every saved state i and fails when fewer GPUs are visible
    than wrote the checkpoint (CUDA_VISIBLE_DEVICES narrowed, a smaller machine). Here the first min(saved, visible)
    devices get their saved state; with more GPUs visible than saved, the extra ones keep their current state. Either
    way a warning says so: data order is unaffected (it is a function of the sample index), only randomness drawn on
    the unmatched devices differs from the uninterrupted run."""
    visible = torch.cuda.device_count()
    n = min(len(states), visible)
    for i in range(n):
        torch.cuda.set_rng_state(states[i], i)
    if len(states) != visible:
        log.warning("checkpoint holds CUDA RNG states for %d GPU(s), %d visible now: restored %d", len(states),
                    visible, n)
    return n


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices): a fresh training run starts from the same RNG state every time."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def seeded_init(seed: int) -> Iterator[None]:
    """Build something random (a randomly initialised loss network, a model) from `seed` without touching the global
    RNG stream: inside, the CPU torch RNG is seeded with `seed`; afterwards it is back where it was. So the same seed
    gives the same weights whatever ran before in the process (a second run in the same process, a test suite)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def seeded_loss_network(seed: int, weights: Literal["imagenet", "random"], device: torch.device,
                        layers: tuple[str, ...] | None = None) -> nn.Module:
    """A run's VGG-16 loss network (all the paper's taps, or `layers`); `random` weights are built from `seed`, so
    the same seed gives the same network in any process."""
    from perceptual.vgg import PAPER_STYLE_TAPS, LossNetwork

    with seeded_init(seed):
        return LossNetwork(PAPER_STYLE_TAPS if layers is None else layers, weights=weights, device=device)


def checkpoint_path(out_dir: Path | str, name: str) -> Path:
    """Where run `name`'s checkpoint lives inside a run folder."""
    return Path(out_dir) / "checkpoints" / f"{name}.pt"


def log_path(out_dir: Path | str, name: str) -> Path:
    """Where run `name`'s training log lives inside a run folder (the results contract's logs/train_<name>.csv)."""
    return Path(out_dir) / "logs" / f"train_{name}.csv"


def save_checkpoint(path: Path | str, state: Mapping[str, Any]) -> Path:
    """torch.save to a temporary file next to `path`, fsync, rename: a crash leaves the previous checkpoint."""
    return atomic_write(path, lambda tmp: torch.save(dict(state), tmp))


def load_checkpoint(path: Path | str, map_location: torch.device | str = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by save_checkpoint (weights_only=True: no arbitrary code from the file)."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:
        raise ValueError(f"cannot read checkpoint {path} ({type(e).__name__}: {e}); delete it to start over") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a checkpoint of this suite (format {CHECKPOINT_FORMAT}); delete it to start "
                         "over")
    return ckpt


def load_trained_weights(model: nn.Module, path: Path | str) -> dict[str, Any]:
    """Load the model weights of a checkpoint into `model` (for evaluation); returns the checkpoint's summary."""
    ckpt = load_checkpoint(path, map_location=next(model.parameters()).device)
    model.load_state_dict(ckpt["model"])
    return {"iteration": ckpt["iteration"], "elapsed_s": ckpt["elapsed_s"], "meta": ckpt["meta"]}


class _CsvLog:
    """Append-only CSV training log that can be cut back to a checkpoint's iteration."""

    header: list[str] | None
    file: io.TextIOWrapper | None

    def __init__(self, path: Path, keep_through: int):
        self.path, self.header, self.file = path, None, None
        path.parent.mkdir(parents=True, exist_ok=True)
        if keep_through > 0 and path.exists():
            with open(path, newline="", encoding="utf-8") as f:
                rows = list(csv.reader(f))
            if rows:
                self.header = rows[0]
                kept = [r for r in rows[1:] if r and int(r[0]) <= keep_through]
                buf = io.StringIO()
                csv.writer(buf, lineterminator="\n").writerows([self.header, *kept])
                atomic_write_text(path, buf.getvalue())
        elif path.exists():
            path.unlink()

    def write(self, row: dict[str, float]) -> None:
        if self.header is None:
            self.header = list(row)
        elif list(row) != self.header:
            raise ValueError(f"{self.path}: loss terms changed from {self.header} to {list(row)}")
        if self.file is None:
            new = not self.path.exists() or self.path.stat().st_size == 0
            self.file = open(self.path, "a", newline="", encoding="utf-8")  # noqa: SIM115 - kept open, closed in close()
            if new:
                csv.writer(self.file, lineterminator="\n").writerow(self.header)
        csv.writer(self.file, lineterminator="\n").writerow(
            [int(v) if k == "iteration" else repr(float(v)) for k, v in row.items()])
        self.file.flush()

    def sync(self) -> None:
        if self.file is not None:
            self.file.flush()
            os.fsync(self.file.fileno())

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


# identity keys added after checkpoints were first written: what a checkpoint without them was trained with
_LEGACY_IDENTITY = {"compute_dtype": "float32"}


def _check_resumable(ckpt: Mapping[str, Any], identity: Mapping[str, Any], meta: Mapping[str, Any],
                     path: Path) -> None:
    problems = []
    for key, want in identity.items():
        have = ckpt["config"].get(key, _LEGACY_IDENTITY.get(key))
        if have != want:
            problems.append(f"{key}: checkpoint {have!r}, now {want!r}")
    if ckpt["meta"] != dict(meta):
        keys = sorted(set(ckpt["meta"]) | set(meta))
        problems += [f"{k}: checkpoint {ckpt['meta'].get(k)!r}, now {meta.get(k)!r}" for k in keys
                     if ckpt["meta"].get(k) != meta.get(k)]
    if problems:
        raise CheckpointMismatchError(f"{path} belongs to a different run ({'; '.join(problems)}); resume with the "
                                      "same settings, or start over (delete it / --overwrite)")


# ------------------------------------------------------------------------------------ one train() call's units


@dataclass(frozen=True)
class _Run:
    """What one train() call fixes before its first step: its name, files, rank layout and identity."""

    name: str
    cfg: TrainConfig
    ctx: DistContext
    device: torch.device
    ckpt_file: Path
    log_file: Path
    identity: dict[str, Any]
    meta: dict[str, Any]
    per_rank: int
    fast_info: dict[str, Any] | None

    def result(self, **kw: Any) -> TrainResult:
        return TrainResult(name=self.name, **kw, world_size=self.ctx.world_size, global_batch=self.cfg.batch_size,
                           per_rank_batch=self.per_rank, lr=self.cfg.lr, path=self.cfg.path,
                           fast_config=self.fast_info)


@dataclass
class _Clock:
    """Training time: `before` from earlier sessions (the checkpoint's elapsed_s) plus this session's."""

    before: float = 0.0
    start: float = field(default_factory=time.perf_counter)

    def session(self) -> float:
        return time.perf_counter() - self.start

    def total(self) -> float:
        return self.before + self.session()


@dataclass
class _LogWindow:
    """The loss terms summed since the last log row (`sums`) and the last row's means (`last`); both are saved in
    a checkpoint so a resumed log continues the uninterrupted one."""

    sums: dict[str, float] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)


class _Checkpoints:
    """Resume and checkpoint for one train() call. Rank 0 reads the checkpoint and checks it belongs to this run;
    every rank restores model, optimizer, scaler and its RNG stream; rank 0 writes checkpoints atomically. Remembers
    the last checkpoint's iteration (the NaN message names it)."""

    def __init__(self, run: _Run, model: nn.Module, stepper: FastStep | ReferenceStep):
        self.run, self.model, self.stepper = run, model, stepper
        self.last_iteration: int | None = None

    def read(self, resume: bool) -> dict[str, Any] | None:
        """The checkpoint to resume from (None: start fresh), read on rank 0 and shared with every rank."""
        run = self.run

        def read_on_rank0() -> dict[str, Any] | None:
            if not (resume and run.ckpt_file.exists()):
                return None
            ckpt = load_checkpoint(run.ckpt_file, map_location="cpu")  # CPU: RNG states must be; loading moves the rest
            _check_resumable(ckpt, run.identity, run.meta, run.ckpt_file)
            if ckpt["sampler"]["next_sample"] != int(ckpt["iteration"]) * run.cfg.batch_size:
                raise ValueError(f"{run.ckpt_file}: sampler position {ckpt['sampler']['next_sample']} does not match "
                                 f"iteration {ckpt['iteration']} x batch {run.cfg.batch_size}; the checkpoint is "
                                 "inconsistent")
            return ckpt

        return distributed.rank0_result(read_on_rank0)

    def restore(self, ckpt: Mapping[str, Any]) -> tuple[int, float, _LogWindow]:
        """Load `ckpt` into model, optimizer, scaler and this rank's RNG; (iteration, elapsed_s, log window)."""
        ctx = self.run.ctx
        self.model.load_state_dict(ckpt["model"])
        self.stepper.load_optimizer_state(ckpt["optimizer"])
        self.stepper.scaler.load_state_dict(ckpt["scaler"])
        per_rank_rng = ckpt.get("rng_per_rank")
        if per_rank_rng is not None and len(per_rank_rng) == ctx.world_size:
            restore_rng_state(per_rank_rng[ctx.rank])
        elif ctx.rank == 0:
            restore_rng_state(ckpt["rng"])
        else:  # resumed with more ranks than wrote the checkpoint: this rank has no saved stream
            seed_everything(self.run.cfg.seed + ctx.rank)
            log.warning("rank %d: checkpoint %s holds no RNG state for this rank (written by %s rank(s)); "
                        "reseeded. The data order is unaffected", ctx.rank, self.run.ckpt_file,
                        ckpt.get("world_size"))
        self.last_iteration = int(ckpt["iteration"])
        window = _LogWindow(dict(ckpt.get("log_window", {})), dict(ckpt.get("last", {})))
        return int(ckpt["iteration"]), float(ckpt["elapsed_s"]), window

    def save(self, iteration: int, clock: _Clock, window: _LogWindow, csv_log: _CsvLog | None) -> None:
        """Every rank calls it at the same iterations (the RNG gather is a collective); rank 0 writes."""
        run, ctx = self.run, self.run.ctx
        rng_all = distributed.gather(capture_rng_state()) if ctx.world_size > 1 else None
        if csv_log is not None:
            csv_log.sync()
        if ctx.is_main:
            state = {
                "format": CHECKPOINT_FORMAT, "name": run.name, "iteration": iteration, "elapsed_s": clock.total(),
                "model": self.model.state_dict(), "optimizer": self.stepper.optimizer.state_dict(),
                "scaler": self.stepper.scaler.state_dict(), "rng": capture_rng_state(),
                "sampler": {"next_sample": iteration * run.cfg.batch_size, "global_batch": run.cfg.batch_size},
                "config": run.identity, "meta": run.meta, "last": dict(window.last), "log_window": dict(window.sums),
                "world_size": ctx.world_size, "per_rank_batch": run.per_rank, "path": run.cfg.path,
                "fast_config": run.fast_info,
            }
            if rng_all is not None:
                state["rng_per_rank"] = rng_all
            save_checkpoint(run.ckpt_file, state)
        self.last_iteration = iteration


class _StepReader:
    """Reads launched steps' values, one step behind the launch (the deferred read: the next step is already
    queued when the previous one is read): the NaN check, the log window, the log row and the progress bar."""

    def __init__(self, run: _Run, stepper: FastStep | ReferenceStep, checkpoints: _Checkpoints, window: _LogWindow,
                 clock: _Clock, csv_log: _CsvLog | None, bar: Any):
        self.run, self.stepper, self.checkpoints, self.window = run, stepper, checkpoints, window
        self.clock, self.csv_log, self.bar = clock, csv_log, bar
        self.pending: tuple[int, StepOut] | None = None

    def launched(self, iteration: int, out: StepOut) -> bool:
        """Step `iteration` was launched: read the previous one, and this one if its values are already on the
        host. True when a rank asked to stop (torchrun)."""
        stop_now = self.flush()
        if out.host is not None:  # already on the host (the step read it): nothing to wait for
            stop_now = self.resolve(iteration, out) or stop_now
        else:
            self.pending = (iteration, out)
        return stop_now

    def flush(self) -> bool:
        """Read the step still pending, if any (before a checkpoint); True when a rank asked to stop."""
        if self.pending is None:
            return False
        pending, self.pending = self.pending, None
        return self.resolve(*pending)

    def resolve(self, iteration: int, out: StepOut) -> bool:
        """Read one step's values: NaN check, log window, log row, progress. True when a rank asked to stop."""
        cfg, window = self.run.cfg, self.window
        values = out.read()
        names = self.stepper.terms
        values, extra = values[:len(names)], values[len(names):]
        bad = first_non_finite(names, values)
        if bad is not None:
            last_ckpt = self.checkpoints.last_iteration
            raise NonFiniteLossError(self.run.name, iteration, *bad,
                                     self.run.ckpt_file if last_ckpt is not None else None, last_ckpt)
        for term, value in zip(names, values):
            window.sums[term] = window.sums.get(term, 0.0) + value
        if iteration % cfg.log_every == 0:
            window.last = {k: v / cfg.log_every for k, v in window.sums.items()}
            window.sums = {}
            if self.csv_log is not None:
                self.csv_log.write({"iteration": iteration, "wall_time_s": self.clock.total(), **window.last})
            self.bar.set_postfix(loss=f"{window.last['total']:.4g}", refresh=False)
        self.bar.update(1)
        return bool(extra and extra[0] > 0)


def _mean_over_ranks(means: torch.Tensor, stop: distributed.StopRequest, world_size: int) -> torch.Tensor:
    """One all-reduce per step: the ranks' mean loss terms and whether any rank was asked to stop."""
    flag = means.new_full((1,), 1.0 if stop.requested else 0.0)  # a fill kernel: no host-to-device copy
    logged = torch.cat([means, flag])
    torch.distributed.all_reduce(logged)
    return torch.cat([logged[:-1] / world_size, logged[-1:]])


def _make_stepper(model: nn.Module, loss_fn: LossFn, run: _Run,
                  param_groups: Sequence[dict[str, Any]] | None) -> tuple[FastStep | ReferenceStep, nn.Module]:
    """The path's step (bench.training.steps) and the module it trains (DDP-wrapped under torchrun)."""
    cfg, device, ctx = run.cfg, run.device, run.ctx
    groups = [dict(g) for g in param_groups] if param_groups is not None else [{"params": list(model.parameters())}]

    def wrap(module: nn.Module) -> nn.Module:
        return wrap_model(module, device, ctx)

    if cfg.path == "fast":
        fast_step = FastStep(model, loss_fn, groups, cfg.lr, device, cfg.fast_config(device, ctx.world_size), wrap)
        return fast_step, fast_step.trainer.model
    wrapped = wrap(model)
    return ReferenceStep(wrapped, loss_fn, groups, cfg.lr, device, cfg.amp), wrapped


def _run_steps(run: _Run, stepper: FastStep | ReferenceStep, loader: DataLoader, reader: _StepReader,
               checkpoints: _Checkpoints, start: int) -> tuple[int, float | None]:
    """The loop: launch each step, read the previous one, checkpoint on schedule and on a stop request. Returns the
    last iteration and the session's first step time (read at once: compile and warm-up happen in it)."""
    ctx, cfg = run.ctx, run.cfg
    it, first_step_s = start, None
    try:
        with distributed.StopRequest() as stop:
            def reduce(means: torch.Tensor) -> torch.Tensor:
                return _mean_over_ranks(means, stop, ctx.world_size)

            for it, batch in enumerate(loader, start=start + 1):
                out = stepper.step(_to_device(batch, run.device), reduce if ctx.world_size > 1 else None)
                if first_step_s is None:
                    out.read()  # once per session: the first step's time (compile and warm-up happen in it)
                    first_step_s = reader.clock.session()
                stop_now = reader.launched(it, out)
                if ctx.world_size == 1 and stop.requested:
                    stop_now = True
                if it % cfg.checkpoint_every == 0 or it == cfg.iterations or stop_now:
                    stop_now = reader.flush() or stop_now
                    checkpoints.save(it, reader.clock, reader.window, reader.csv_log)
                if stop_now and it < cfg.iterations:
                    signum = stop.requested or signal.SIGTERM  # a follower may stop on another rank's signal
                    err = distributed.Interrupted(run.name, it, signum, str(run.ckpt_file) if ctx.is_main else None)
                    if ctx.is_main:
                        log.warning("%s", err)
                    raise err
    except (NonFiniteLossError, distributed.Interrupted):
        raise
    except Exception as e:
        if ctx.world_size > 1:  # the other ranks cannot go on in lockstep without this one
            msg = (f"rank {ctx.rank}: training {run.name!r} failed after iteration {it} ({type(e).__name__}: {e}); "
                   f"ending this torchrun job (the other ranks are stopped); rerun with --resume")
            log.error("%s", msg)
            raise distributed.Abort(msg) from e
        raise
    return it, first_step_s


def _prepare(cfg: TrainConfig, name: str, out_dir: Path | str, device: torch.device,
             meta: Mapping[str, Any] | None) -> _Run:
    """Fix the call's files and identity, and check that every rank trains the same thing (rank 0 announces it;
    followers check and stop on a mismatch)."""
    ctx = distributed.context()
    meta_plain = plain(meta or {})  # what weights_only loading gives back
    identity = cfg.identity() | {"compute_dtype": cfg.compute_dtype(device, ctx.world_size)}
    per_rank = cfg.batch_size // ctx.world_size
    if ctx.world_size > 1:
        per_rank = distributed.check_global_batch(cfg.batch_size)
    distributed.sync_job(name, {"config": identity, "iterations": cfg.iterations,
                                "checkpoint_every": cfg.checkpoint_every, "meta": meta_plain})
    return _Run(name, cfg, ctx, device, checkpoint_path(out_dir, name), log_path(out_dir, name), identity,
                meta_plain, per_rank, None)


# ------------------------------------------------------------------------------------------------------- train


def train(model: nn.Module, loss_fn: LossFn, stream: Any, cfg: TrainConfig, *, name: str, out_dir: Path | str,
          device: torch.device | str = "cpu", resume: bool = False,
          param_groups: Sequence[dict[str, Any]] | None = None, collate: Callable[[list[Any]], Any] | None = None,
          meta: Mapping[str, Any] | None = None) -> TrainResult:
    """Train `model` for cfg.iterations with Adam on `loss_fn` over `stream`; see docs/training.md for guarantees.

    name: the run's name (log `out_dir/logs/train_<name>.csv`, checkpoint `out_dir/checkpoints/<name>.pt`).
    param_groups: Adam parameter groups (each with its own lr); default all of model.parameters() at cfg.lr.
    meta: what identifies this training (method, scale, variant, data, ...): stored in the checkpoint and compared
      on resume.
    loss_fn: with cfg.path == 'fast', build it with the fast loss helpers of perceptual.fast for the same config
      (`cfg.fast_config(device)`) to put the loss network on the fast path too; any loss_fn works on either path.

    The step (bench.training.steps) is launched before the previous step's values are read: on the fast path with fused
    Adam (CUDA) nothing is read before the backward pass and at most one read happens per step; the loop reads the
    current step before a checkpoint, and always reads the first step of a session (to time it).
    """
    run = _prepare(cfg, name, out_dir, torch.device(device), meta)
    stepper, wrapped = _make_stepper(model, loss_fn, run, param_groups)
    if stepper.config is not None:
        run = replace(run, fast_info=stepper.config.as_dict() | {"label": stepper.config.label()})
    ctx = run.ctx
    checkpoints = _Checkpoints(run, model, stepper)
    start, elapsed, window = 0, 0.0, _LogWindow()
    ckpt = checkpoints.read(resume)
    resumed = ckpt is not None
    if ckpt is not None:
        start, elapsed, window = checkpoints.restore(ckpt)
        if start >= cfg.iterations:
            return run.result(iterations=start, start_iteration=start, wall_time_s=elapsed, session_time_s=0.0,
                              checkpoint=str(run.ckpt_file), log=str(run.log_file), resumed=True,
                              already_complete=True, last=window.last)
        del ckpt
    else:
        seed_everything(cfg.seed + ctx.rank)

    csv_log = _CsvLog(run.log_file, keep_through=start) if ctx.is_main else None
    loader = make_loader(stream, cfg, start, ctx, run.device, collate)
    bar = tqdm(total=cfg.iterations, initial=start, desc=f"train {name}", unit="it", dynamic_ncols=True,
               disable=not (cfg.progress and ctx.is_main), mininterval=1.0)
    clock = _Clock(before=elapsed)
    reader = _StepReader(run, stepper, checkpoints, window, clock, csv_log, bar)
    wrapped.train()
    try:
        it, first_step_s = _run_steps(run, stepper, loader, reader, checkpoints, start)
    finally:
        bar.close()
        if csv_log is not None:
            csv_log.close()
    if it != cfg.iterations:
        raise RuntimeError(f"training {name!r}: the data stream ended at iteration {it} of {cfg.iterations}")
    session = clock.session()
    steps = it - start
    later = (session - first_step_s) / (steps - 1) if first_step_s is not None and steps > 1 else None
    return run.result(iterations=it, start_iteration=start, wall_time_s=elapsed + session, session_time_s=session,
                      checkpoint=str(run.ckpt_file) if ctx.is_main else None,
                      log=str(run.log_file) if ctx.is_main else None, resumed=resumed,
                      already_complete=False, last=window.last, first_step_s=first_step_s, later_steps_s=later)
