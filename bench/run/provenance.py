"""What run.json records so a number can be traced to its run: command, versions, device, commit, seed."""
from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from bench.training.distributed import describe

REPO_ROOT = Path(__file__).resolve().parents[2]
VERSIONED = ("torch", "torchvision", "numpy", "scikit-image", "lpips", "resize-right", "pillow", "pandas")


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


NOT_CODE = ("results", "runs")  # committed measurements and run folders: editing them does not change what runs


def git_state() -> dict[str, Any]:
    """Commit hash and whether tracked files other than results/ differ from it (a dirty tree means the commit alone
    cannot rerun it), with the differing paths. Taken once per process, at the run's start: the code a run executes
    is what was imported then, whatever is committed or edited while it runs."""
    state = _git_state_at_start()
    return dict(state, dirty_paths=list(state["dirty_paths"]))


@functools.cache
def _git_state_at_start() -> dict[str, Any]:
    return read_git_state()


def read_git_state() -> dict[str, Any]:
    """git_state's value now (uncached)."""
    commit = _git("rev-parse", "HEAD")
    status = _git("diff", "--name-only", "HEAD", "--", ".", *(f":(exclude){p}" for p in NOT_CODE))  # staged or not
    paths = status.splitlines() if status else []
    return {"commit": commit or "unknown", "dirty": bool(paths) if status is not None else None,
            "dirty_paths": paths[:50]}


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    versions["python"] = platform.python_version()
    return versions


@functools.cache
def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo, read once per process), or what the platform module knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: str | torch.device) -> str:
    """What a run or a benchmark ran on: the GPU's name, or the CPU model with its cores and torch threads."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({cpu_model()}, {os.cpu_count()} cpus, {torch.get_num_threads()} torch threads)"


# Environment variables that choose a CPU's float code path (ATen's vector kernels, oneDNN's convolutions, MKL's BLAS)
# or its threads: a run made under them is another float path, so run.json records those that are set.
FLOAT_PATH_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR",
                  "OMP_NUM_THREADS", "MKL_NUM_THREADS")
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")


@functools.cache
def _cpu_flags() -> tuple[str, ...]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return tuple(flag for flag in CPU_FLAGS if flag in have)
    except OSError:
        pass
    return ()


def float_path() -> dict[str, Any]:
    """Which float code path a CPU run took: ATen's kernel level, torch threads, the CPU's vector extensions and the
    environment variables that override them. Two runs that differ here differ in float summation order, which a
    few training steps amplify like another seed (docs/testing.md has the measured spread)."""
    return {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
            "cpu_flags": list(_cpu_flags()), "env": {k: os.environ[k] for k in FLOAT_PATH_ENV if k in os.environ}}


def command_line(module: str, args: Sequence[str] | None) -> list[str]:
    """The command that reruns a harness: `python -m <module> <args>` (args: what its main() parsed; None: this
    process's own arguments). Recorded instead of sys.argv, which names the module's file path under `python -m` and
    pytest's arguments when a test calls main(argv)."""
    return ["python", "-m", module, *(sys.argv[1:] if args is None else args)]


def environment(device: str | torch.device, seed: int, profile: str,
                command: Sequence[str] | None = None) -> dict[str, Any]:
    """The fields every run.json starts with. command: the harness's command line (command_line(...)); default
    sys.argv. run.json gets it as `argv` (a list) and `command` (one shell-quoted line to paste)."""
    argv = list(command) if command is not None else list(sys.argv)
    return {
        "argv": argv,
        "command": shlex.join(argv),
        "profile": profile,
        "seed": seed,
        "device": str(device),
        "device_name": device_name(device),
        "float_path": float_path(),
        "versions": package_versions(),
        "git": git_state(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(),
        "distributed": _distributed(),
    }


def _distributed() -> dict[str, Any]:
    """World size, backend and layout of a torchrun job (world_size 1 for a plain run): see bench.training.distributed."""
    return describe()


def file_hashes(paths: Iterable[Path | str]) -> dict[str, str]:
    """File name -> sha256 of each file (for the few files a run reads directly: evaluation, style, content images)."""
    from data.files import sha256_file

    return {Path(p).name: sha256_file(p) for p in paths}


def file_list_digest(paths: Iterable[Path | str]) -> str:
    """One sha256 over the sorted file names and sizes of a corpus: cheap for 80k images (it reads no pixels); the
    catalog's per-dataset digests (data.catalog.dataset_digest) vouch for the contents of catalog corpora."""
    h = hashlib.sha256()
    for p in sorted(Path(p) for p in paths):
        h.update(f"{p.name}\t{p.stat().st_size}\n".encode())
    return h.hexdigest()
