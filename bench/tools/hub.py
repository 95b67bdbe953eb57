"""The committed networks (hubconf.py at the repository root) for the suite's own commands: `upscale --checkpoint
sr_x4_feat`, `stylize --checkpoint style_la_muse`, `evaluate --model NAME`; and `python -m bench.tools.hub`, which lists
them with the file each loads and whether it is there.

Why a module of its own: hubconf.py is torch.hub's file, outside the packages; this module finds it once (beside
the bench package), so the table of names and files stays the one in hubconf.py.
"""
from __future__ import annotations

import importlib.util
import sys
from functools import lru_cache
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

__all__ = ["hubconf", "load", "names", "weights_path"]
HUBCONF = Path(__file__).resolve().parents[2] / "hubconf.py"


@lru_cache(maxsize=1)
def hubconf() -> ModuleType | None:
    """hubconf.py of this checkout (None when the suite runs from an installed copy without it)."""
    if not HUBCONF.is_file():
        return None
    spec = importlib.util.spec_from_file_location("perceptual_hubconf", HUBCONF)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def names() -> tuple[str, ...]:
    conf = hubconf()
    return () if conf is None else tuple(conf.WEIGHTS)


def weights_path(name: str) -> Path:
    conf = hubconf()
    assert conf is not None and name in conf.WEIGHTS
    return Path(conf.weights_path(name))


def load(name: str, device: torch.device | str = "cpu") -> nn.Module:
    """The committed network `name`, ready to run (as torch.hub.load gives it)."""
    conf = hubconf()
    assert conf is not None
    return conf.load(name, device)


def main() -> int:
    conf = hubconf()
    if conf is None:
        print(f"no hubconf.py at {HUBCONF}", file=sys.stderr)
        return 2
    for name in conf.WEIGHTS:
        path = Path(conf.weights_path(name))
        print(f"{name:16s} {'ok     ' if path.is_file() else 'MISSING'} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
