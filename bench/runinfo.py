"""What run.json records so a number can be traced to its run: command, versions, device, commit, seed."""
from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
VERSIONED = ("torch", "torchvision", "numpy", "scikit-image", "lpips", "resize-right", "pillow", "pandas")


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state() -> dict[str, Any]:
    """Commit hash and whether tracked files differ from it (a dirty tree means the commit alone cannot rerun it)."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit or "unknown", "dirty": bool(status) if status is not None else None}


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    versions["python"] = platform.python_version()
    return versions


def device_name(device: str | torch.device) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def environment(device: str | torch.device, seed: int, profile: str) -> dict[str, Any]:
    """The fields every run.json starts with."""
    return {
        "argv": sys.argv,
        "profile": profile,
        "seed": seed,
        "device": str(device),
        "device_name": device_name(device),
        "versions": package_versions(),
        "git": git_state(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(),
        "distributed": _distributed(),
    }


def _distributed() -> dict[str, Any]:
    """World size, backend and layout of a torchrun job (world_size 1 for a plain run): see bench.distributed."""
    from bench.distributed import describe

    return describe()
