"""Data-parallel training under torchrun: one process per GPU (or CPU process), same harness CLI, same results.

Why a module of its own: the harnesses and the training loop run unchanged as `python -m bench.sr ...` and as
`torchrun --nproc-per-node N -m bench.sr ...`; everything that differs between the two lives here. Guarantees: rank 0
alone touches the run folder, N ranks see exactly the single-process global batch, SIGTERM/SIGINT checkpoints then
exits 128 + signal, an unrecoverable rank failure raises `Abort`. The design and why: docs/training.md.
"""
from __future__ import annotations

import datetime
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, Self, runtime_checkable

import torch
from torch import nn

from data.files import plain

__all__ = [
    "SINGLE_PROCESS",
    "Abort",
    "DistContext",
    "DistributedConfigError",
    "Harness",
    "Interrupted",
    "JobMismatchError",
    "RankZeroError",
    "SharedFailure",
    "StopRequest",
    "backend",
    "barrier",
    "check_global_batch",
    "context",
    "describe",
    "follow",
    "gather",
    "init",
    "is_initialized",
    "is_rank0",
    "launched",
    "local_rank",
    "per_rank_batch",
    "rank",
    "rank0_result",
    "run_harness",
    "sync_job",
    "teardown",
    "world_size",
    "wrap_ddp",
]

log = logging.getLogger("bench.training.distributed")

CONTROL_TIMEOUT_ENV = "BENCH_DIST_TIMEOUT_S"
DEFAULT_CONTROL_TIMEOUT_S = 12 * 3600  # followers may wait this long for rank 0 (evaluation between trainings)

_control: Any = None  # the gloo control group (None when not distributed)
_pending: dict[str, Any] | None = None  # the job a follower was told to build, consumed by sync_job


class DistributedConfigError(ValueError):
    """The launch cannot work as configured (batch not divisible by the ranks, a device pinned to one GPU, ...)."""


class JobMismatchError(RuntimeError):
    """A follower was asked to train something other than what it built (different arguments on some rank)."""


class SharedFailure(Exception):
    """A training failure that happens on every rank at once (a NaN/Inf loss: the loss is all-reduced; a refused
    checkpoint: the resume state is shared): rank 0's harness records the failed stage and carries on, and `follow`
    logs it and waits for the next training. bench.training.loop's NonFiniteLossError and CheckpointMismatchError derive
    from it."""


class RankZeroError(RuntimeError, SharedFailure):
    """Raised on the followers when a step rank 0 performs for everyone (reading a checkpoint) failed there."""


class Interrupted(SystemExit):
    """A training stopped on SIGTERM / SIGINT after writing a checkpoint at `iteration`; exit status 128 + signal."""

    def __init__(self, name: str, iteration: int, signum: int, checkpoint: str | None):
        super().__init__(128 + int(signum))
        self.name, self.iteration, self.signum, self.checkpoint = name, iteration, int(signum), checkpoint

    def __str__(self) -> str:
        where = f"; checkpoint {self.checkpoint}" if self.checkpoint else ""
        return (f"training {self.name!r} stopped by {signal.Signals(self.signum).name} at iteration "
                f"{self.iteration}{where}; rerun with --resume to continue")


class Abort(SystemExit):
    """A distributed training failed on some rank in a way the others cannot follow: end this process (exit 1)."""

    def __init__(self, message: str):
        super().__init__(1)
        self.message = message

    def __str__(self) -> str:
        return self.message


# ------------------------------------------------------------------------------------------------- environment


def launched() -> bool:
    """True when started by torchrun (or any launcher setting WORLD_SIZE > 1 and RANK)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


@dataclass(frozen=True)
class DistContext:
    """This process's place in a data-parallel job (rank 0 of 1 without a process group), as one value."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE_PROCESS = DistContext()


def context() -> DistContext:
    """rank(), world_size() and local_rank() of the initialised process group; rank 0 of 1 before `init()` (a
    training is never split between ranks without a process group)."""
    if is_initialized():
        return DistContext(rank(), world_size(), local_rank())
    return SINGLE_PROCESS


def is_initialized() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def rank() -> int:
    """This process's global rank (0 without torchrun)."""
    if is_initialized():
        return torch.distributed.get_rank()
    return int(os.environ.get("RANK", "0")) if launched() else 0


def world_size() -> int:
    """Number of processes in the job (1 without torchrun)."""
    if is_initialized():
        return torch.distributed.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1")) if launched() else 1


def local_rank() -> int:
    """This process's index on its machine (picks its GPU)."""
    return int(os.environ.get("LOCAL_RANK", "0")) if launched() else 0


def is_rank0() -> bool:
    """Whether this process writes files, logs and progress bars."""
    return rank() == 0


def backend() -> str | None:
    return torch.distributed.get_backend() if is_initialized() else None


def describe() -> dict[str, Any]:
    """run.json's `distributed` block: how the job was laid out."""
    ws = world_size()
    local_ws = int(os.environ.get("LOCAL_WORLD_SIZE", max(1, ws)))
    master = os.environ.get("MASTER_ADDR")
    return {"world_size": ws, "backend": backend(), "launcher": "torchrun" if launched() else None,
            "local_world_size": local_ws, "nnodes": max(1, ws // max(1, local_ws)),
            "master": f"{master}:{os.environ.get('MASTER_PORT')}" if launched() and master else None}


def check_global_batch(batch: int, what: str = "--batch-size") -> int:
    """The per-rank batch of a global `batch`; DistributedConfigError when the ranks cannot split it evenly."""
    ws = world_size()
    if batch % ws:
        raise DistributedConfigError(
            f"{what} {batch} is the GLOBAL batch and must be divisible by the {ws} ranks of this torchrun job "
            f"(each rank takes batch / ranks); use e.g. {what} {ws * max(1, batch // ws)} or a different "
            f"--nproc-per-node")
    return batch // ws


def per_rank_batch(batch: int) -> int:
    return check_global_batch(batch)


def _control_timeout() -> datetime.timedelta:
    text = os.environ.get(CONTROL_TIMEOUT_ENV)
    try:
        seconds = float(text) if text else DEFAULT_CONTROL_TIMEOUT_S
    except ValueError:
        raise DistributedConfigError(f"{CONTROL_TIMEOUT_ENV}={text!r} is not a number of seconds") from None
    return datetime.timedelta(seconds=seconds)


def init(device: str | torch.device = "cpu") -> None:
    """Start the process group when launched by torchrun (no-op otherwise or when already started).

    device: the harness's --device. CUDA: NCCL, and this process uses cuda:LOCAL_RANK (pass plain `cuda`; an
    explicit index other than LOCAL_RANK is refused). CPU: gloo.
    """
    global _control
    if not launched() or is_initialized():
        return
    device = torch.device(device)
    if device.type == "cuda":
        n = torch.cuda.device_count()
        index = local_rank() if n > 1 else 0
        if device.index is not None and device.index != index:
            raise DistributedConfigError(
                f"--device {device} under torchrun: each process uses its own GPU (cuda:LOCAL_RANK = cuda:{index}); "
                f"pass --device cuda")
        torch.cuda.set_device(index)
        chosen = "nccl"
    else:
        chosen = "gloo"
    torch.distributed.init_process_group(backend=chosen)
    _control = torch.distributed.new_group(backend="gloo", timeout=_control_timeout())
    if not is_rank0():
        logging.getLogger().setLevel(logging.WARNING)  # one rank speaks; the others only warn
    log.info("torchrun: %d ranks (%s), rank 0 on %s writes the run folder", world_size(), chosen, socket.gethostname())


def teardown(release_followers: bool = False, clean: bool = True) -> None:
    """End the job and destroy the process group.

    release_followers: rank 0 tells the ranks waiting in `follow` that there is nothing more to train (what
    run_harness does; a script whose every rank calls bench.training.loop.train itself passes False).
    clean=False (after an interruption or a failure inside a collective) does neither: the process just exits and
    torchrun stops the other ranks.
    """
    global _control, _pending
    if not is_initialized():
        return
    if clean:
        if release_followers and is_rank0():
            _broadcast(None)
        torch.distributed.destroy_process_group()
    _control, _pending = None, None


# ---------------------------------------------------------------------------------------------------- messages


def _broadcast(obj: Any) -> Any:
    """Rank 0's `obj` on every rank (over the control group)."""
    box = [obj if is_rank0() else None]
    torch.distributed.broadcast_object_list(box, src=0, group=_control)
    return box[0]


def gather(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank ([obj] without torchrun)."""
    if not is_initialized() or world_size() == 1:
        return [obj]
    out: list[Any] = [None] * world_size()
    torch.distributed.all_gather_object(out, obj, group=_control)
    return out


def barrier() -> None:
    if is_initialized() and world_size() > 1:
        torch.distributed.barrier(group=_control)


def sync_job(name: str, identity: Mapping[str, Any]) -> None:
    """Called by bench.training.loop.train on entry: rank 0 announces the training; followers check theirs is the same.

    identity: what must agree across ranks (config, iterations, meta). A follower whose harness was started with
    other arguments (a different --seed on one machine, say) stops with JobMismatchError instead of training a
    different model in lockstep.
    """
    global _pending
    if not is_initialized() or world_size() == 1:
        return
    mine = {"job": name, **plain(identity)}
    if is_rank0():
        _broadcast(mine)
        return
    theirs, _pending = (_pending if _pending is not None else _broadcast(None)), None
    if theirs is None:
        raise JobMismatchError(f"rank {rank()} started training {name!r} but rank 0 has finished")
    if theirs != mine:
        keys = sorted(set(theirs) | set(mine))
        diff = "; ".join(f"{k}: rank 0 {theirs.get(k)!r}, rank {rank()} {mine.get(k)!r}" for k in keys
                         if theirs.get(k) != mine.get(k))
        raise JobMismatchError(f"rank {rank()} cannot follow rank 0's training {theirs.get('job')!r}: {diff}. "
                               "Start every rank with the same arguments")


def rank0_result(fn: Callable[[], Any]) -> Any:
    """fn() computed on rank 0 only and shared with every rank (e.g. reading a checkpoint).

    If fn raises on rank 0, rank 0 re-raises it and every follower raises RankZeroError with its message, so all
    ranks fail together and stay in step. Without torchrun: just fn().
    """
    if not is_initialized() or world_size() == 1:
        return fn()
    if is_rank0():
        try:
            value = fn()
        except Exception as e:
            _broadcast(("error", f"{type(e).__name__}: {e}"))
            raise
        _broadcast(("ok", value))
        return value
    status, value = _broadcast(None)
    if status == "error":
        raise RankZeroError(f"rank 0: {value}")
    return value


# ------------------------------------------------------------------------------------------------------- model


def wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel around `model` (BatchNorm -> SyncBatchNorm on CUDA); `model` itself when alone.

    The wrapper shares `model`'s parameters, so the optimiser built on `model` and `model.state_dict()` (the
    checkpoint, without a `module.` prefix) work unchanged.
    """
    if not is_initialized() or world_size() == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    if has_bn and device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # shares parameters and buffers with the original
    elif has_bn:
        log.warning("BatchNorm on CPU under torchrun: batch statistics are per rank (its share of each batch), not "
                    "over the global batch (torch has no CPU SyncBatchNorm); results differ slightly from one process")
    ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" \
        else None
    return DistributedDataParallel(model, device_ids=ids)


# ----------------------------------------------------------------------------------------------------- signals


class StopRequest(AbstractContextManager):
    """While active, SIGTERM / SIGINT only set `requested` (the training loop checkpoints and stops after the
    current step); a second signal acts as it did before. Outside the main thread it does nothing."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.requested: int | None = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = signum
        signal.signal(signum, self._old.get(signum, signal.SIG_DFL))

    def __enter__(self) -> Self:
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._old[s] = signal.getsignal(s)
                signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)
        self._old = {}


# ---------------------------------------------------------------------------------------------------- followers


def follow(build: Callable[[str, dict[str, Any]], Callable[[], Any] | None]) -> int:
    """A follower's life: wait for rank 0's announced trainings and run each with the harness's own code.

    build(name, announcement) returns a callable that constructs the same model / loss / stream as rank 0 and
    calls bench.training.loop.train (which consumes the announcement), or None when this rank cannot build `name`.
    Failures that happen on every rank at once (NaN/Inf loss, a refused checkpoint) are logged and the follower
    waits for the next training, as rank 0's harness carries on; any other failure ends the process.
    """
    global _pending
    while True:
        msg = _broadcast(None)
        if msg is None:
            return 0
        job = build(msg["job"], msg)
        if job is None:
            raise JobMismatchError(f"rank 0 trains {msg['job']!r}, which rank {rank()} cannot build from its "
                                   "arguments; start every rank with the same arguments")
        _pending = msg
        try:
            job()
        except SharedFailure as e:
            log.warning("rank %d: training %s failed on every rank: %s", rank(), msg["job"], e)
        finally:
            _pending = None
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


@runtime_checkable
class Harness(Protocol):
    """What a harness (bench.sr.harness.SRHarness, bench.style.harness.StyleRun) offers this module: nothing else is used."""

    device: torch.device  # built on every rank; building it set the backend flags for this device

    def run(self) -> int:
        """The whole run, on rank 0 (or alone); returns the exit status."""

    def global_batches(self) -> list[tuple[int, str]]:
        """(global batch, the option or setting it comes from) of every training the run does."""

    def follower_jobs(self) -> Callable[[str, dict[str, Any]], Callable[[], Any] | None]:
        """A builder: training name and rank 0's announcement -> the training to run in lockstep (None: unknown)."""


def run_harness(harness: Harness) -> int:
    """Run a harness, alone or as one rank of a torchrun job; returns its exit status.

    Without torchrun this is `harness.run()`. Under torchrun: check the global batch splits evenly (exit status 2
    on every rank if not), start the process group, run the harness on rank 0 and `follow` on the others, and end
    the group (rank 0 releases the followers even when its harness raised an ordinary error, e.g. refusing --out).
    """
    if not launched():
        return harness.run()
    try:
        for batch, what in harness.global_batches():
            check_global_batch(batch, what)
        init(harness.device)  # every rank built its harness, which set the backend flags (perceptual.device)
    except DistributedConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    clean = True
    try:
        return harness.run() if is_rank0() else follow(harness.follower_jobs())
    except Exception:
        raise  # an ordinary error on rank 0 (outside a training): the followers are waiting and are released
    except BaseException:
        clean = False  # interrupted or aborted inside a training: the others are not listening
        raise
    finally:
        teardown(release_followers=True, clean=clean)
