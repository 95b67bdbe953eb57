"""Profile names shared by every harness: `smoke` (seconds, CI), `quick` (minutes on CPU), `paper` (the protocol)."""
from __future__ import annotations

import torch

PROFILES = ("smoke", "quick", "paper")


def default_profile() -> str:
    """`paper` where CUDA is available, otherwise `quick` (DESIGN.md section 4)."""
    return "paper" if torch.cuda.is_available() else "quick"


def check_profile(name: str) -> str:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}: choose one of {', '.join(PROFILES)} (--profile)")
    return name


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"
