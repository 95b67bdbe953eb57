"""Networks from outside the harness: a user's `PATH.py:FACTORY` / `package.module:FACTORY`, or a checkpoint of ours.

Guarantees: an error raised by the user's own code (importing their file, calling their factory) surfaces as a
`UserCodeError` carrying the user's traceback only (no importlib or harness frames), so the CLIs print it once and
exit with status 2; every other problem (bad spec, missing file, weights that do not fit) is a ValueError /
FileNotFoundError naming the argument and the fix. Weights are always read with `torch.load(weights_only=True)`:
no code runs from a weights file.

Where a reproduce run keeps its networks (the `CKPT` of `stylize` / `upscale`):
- SR (`python -m bench.sr`): `RUN/checkpoints/johnson_feat_x4.pt`, `johnson_pixel_x8.pt`, `srcnn_x4.pt`, ... (the
  training checkpoints: weights + optimiser state + meta with method, scale and variant).
- Style (`python -m bench.style`): `RUN/models/<style>.pt` (the exported network: weights, variant, style, loss
  weights), and its training checkpoint `RUN/checkpoints/<style>.pt`.
- Either: `RUN/weights/<name>.safetensors` (bench.tools.export), or the name of a hubconf.py entry point (`sr_x4_feat`,
  `style_la_muse`, ...: the committed networks; bench.tools.hub).
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.tools import hub
from bench.training.loop import CHECKPOINT_FORMAT

__all__ = ["SuiteModel", "UserCodeError", "build_model", "load_factory", "load_state_dict_file",
           "load_suite_checkpoint"]

CHECKPOINT_HELP = ("a reproduce run keeps its networks in RUN/checkpoints/<method>_x<scale>.pt (SR) and "
                   "RUN/models/<style>.pt (style), exported as RUN/weights/<name>.safetensors; or name a committed "
                   "network (python -m bench.tools.hub lists them)")


class UserCodeError(Exception):
    """The user's own code raised: `user_traceback` holds only the user's frames and the exception."""

    def __init__(self, message: str, user_traceback: str):
        self.user_traceback = user_traceback
        super().__init__(message)


def _user_traceback(error: BaseException, user_files: set[str]) -> str:
    """The traceback of `error` limited to frames outside importlib and this harness (the user's code)."""
    root = Path(__file__).resolve().parents[2]
    harness = tuple(str(root / pkg) + "/" for pkg in ("bench", "data", "perceptual", "baselines", "reports"))
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if not f.filename.startswith("<frozen") and "importlib" not in f.filename
              and (str(Path(f.filename).resolve()) in user_files
                   or not str(Path(f.filename).resolve()).startswith(harness))]
    text = "".join(traceback.format_exception_only(type(error), error))
    if frames:
        text = "Traceback (most recent call last):\n" + "".join(traceback.format_list(frames)) + text
    return text


def call_user_network(net: Callable[[Any], Any], x: Any, where: str) -> Any:
    """`net(x)` for a user's network: an exception it raises stops as a UserCodeError that shows the user's own
    traceback once (`where` names the model spec, image and input shape)."""
    try:
        return net(x)
    except Exception as e:  # noqa: BLE001 - the user's network raised: their traceback, once
        raise UserCodeError(f"{where}: the network raised {type(e).__name__}: {e}", _user_traceback(e, set())) from None


def _split(spec: str) -> tuple[str, str]:
    target, sep, factory = spec.rpartition(":")
    if not sep or not target or not factory.isidentifier():
        raise ValueError(f"--model {spec!r} must be PATH.py:FACTORY or package.module:FACTORY (e.g. "
                         f"my_net.py:build), FACTORY being a function that returns an nn.Module")
    return target, factory


def load_factory(spec: str) -> Callable[..., Any]:
    """The FACTORY callable named by `spec` (the module is imported; its own errors become UserCodeError)."""
    target, factory = _split(spec)
    is_file = target.endswith(".py") or "/" in target or "\\" in target
    if is_file:
        path = Path(target).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"--model {spec}: no such file {path}; give the path of a .py file defining "
                                    f"{factory}()")
        name = f"_user_model_{abs(hash(str(path.resolve())))}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise ValueError(f"--model {spec}: {path} cannot be imported as a Python module")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module  # dataclasses and pickling look their module up here
        user_files = {str(path.resolve())}
        try:
            module_spec.loader.exec_module(module)
        except Exception as e:  # noqa: BLE001 - the user's code: shown as their traceback
            sys.modules.pop(name, None)
            raise UserCodeError(f"--model {spec}: importing {path} raised {type(e).__name__} (traceback above)",
                                _user_traceback(e, user_files)) from None
    else:
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as e:
            if e.name and (target == e.name or target.startswith(e.name + ".")):
                raise ValueError(f"--model {spec}: no module named {e.name!r}; put its package on PYTHONPATH or "
                                 f"give PATH.py:FACTORY") from None
            raise UserCodeError(f"--model {spec}: importing {target} raised {type(e).__name__} (traceback above)",
                                _user_traceback(e, set())) from None
        except Exception as e:  # noqa: BLE001
            raise UserCodeError(f"--model {spec}: importing {target} raised {type(e).__name__} (traceback above)",
                                _user_traceback(e, set())) from None
    fn = getattr(module, factory, None)
    if not callable(fn):
        found = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_")
                       and getattr(v, "__module__", None) == module.__name__)
        raise ValueError(f"--model {spec}: {target} defines no callable {factory!r}"  # noqa: TRY004
                         + (f"; it defines {', '.join(found)}" if found else ""))
    return fn


def load_state_dict_file(path: Path | str) -> dict[str, torch.Tensor]:
    """A state dict from `path` (weights_only=True); a checkpoint of this suite or {'state_dict': ...} is unwrapped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--weights {path}: no such file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure names the file and the fix
        raise ValueError(f"--weights {path} cannot be read as a state dict with weights_only=True ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''}); save it with "
                         f"torch.save(model.state_dict(), FILE)") from None
    if isinstance(obj, dict):
        for key in ("model", "state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"--weights {path} does not hold a state dict (name -> tensor); save it with "
                         f"torch.save(model.state_dict(), FILE)")
    return obj


def build_model(spec: str, weights: Path | str | None = None, device: torch.device | str = "cpu") -> nn.Module:
    """Import `spec`, call its factory with no arguments, load `weights` (strict), move to `device`, eval mode.
    A committed network's name (hubconf.py: sr_x4_feat, style_la_muse, ...) gives that network, ready to run."""
    if ":" not in spec and spec in hub.names():
        if weights is not None:
            raise ValueError(f"--weights applies to PATH.py:FACTORY models; --model {spec} is a committed network "
                             f"with its own weights")
        return hub.load(spec, device)
    factory = load_factory(spec)
    try:
        model = factory()
    except Exception as e:  # noqa: BLE001 - the user's code
        raise UserCodeError(f"--model {spec}: calling the factory raised {type(e).__name__} (traceback above)",
                            _user_traceback(e, {str(Path(spec.rpartition(':')[0]).resolve())})) from None
    if not isinstance(model, nn.Module):
        raise ValueError(f"--model {spec}: the factory returned {type(model).__name__}, not a torch.nn.Module")  # noqa: TRY004
    if weights is not None:
        state = load_state_dict_file(weights)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise ValueError(f"--weights {weights} does not fit the model of --model {spec}: "
                             f"{str(e).splitlines()[0]} {' '.join(str(e).split())[:400]}") from None
    return model.to(device).eval()


@dataclass
class SuiteModel:
    """A network of this suite read from a checkpoint: `kind` is sr, srcnn or style."""

    kind: str
    net: nn.Module
    path: Path
    scale: int | None = None
    name: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


def load_suite_model(path: Path, device: torch.device | str = "cpu") -> SuiteModel:
    """An export (RUN/weights/<name>.safetensors + .json) as the SuiteModel upscale and stylize apply."""
    conf = hub.hubconf()
    if conf is None:
        raise FileNotFoundError(f"{path}: reading exports needs hubconf.py beside the bench package ({hub.HUBCONF})")
    net, meta = conf.load_export(path, device)
    kind = str(meta["kind"])
    name = {"sr": str(meta["name"]).rsplit("_x", 1)[0], "srcnn": "srcnn"}.get(kind, str(meta.get("style", meta["name"])))
    return SuiteModel(kind, net, path, scale=meta.get("scale"), name=name, meta=meta)


def load_suite_checkpoint(path: Path | str, device: torch.device | str = "cpu") -> SuiteModel:
    """Rebuild a network from a reproduce run's checkpoint or exported model (see the module doc for where)."""
    from perceptual.nets import SRNet, TransformNet

    path = Path(path)
    if not path.is_file() and str(path) in hub.names():
        path = hub.weights_path(str(path))
    if path.suffix == ".safetensors":
        return load_suite_model(path, device)
    if not path.is_file():
        raise FileNotFoundError(f"--checkpoint {path}: no such file ({CHECKPOINT_HELP})")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"--checkpoint {path} is not a checkpoint of this suite ({type(e).__name__}); "
                         f"{CHECKPOINT_HELP}") from None
    if not isinstance(ck, dict) or not isinstance(ck.get("model"), dict):
        raise ValueError(f"--checkpoint {path} is not a checkpoint of this suite; {CHECKPOINT_HELP}")  # noqa: TRY004
    meta = dict(ck.get("meta") or {})
    if ck.get("format") == CHECKPOINT_FORMAT:  # a training checkpoint (bench.training.loop)
        if meta.get("task") == "style":
            model = SuiteModel("style", TransformNet(meta.get("variant", "common")), path,
                               name=str(meta.get("style", path.stem)), meta=meta)
        elif meta.get("method") in ("johnson_feat", "johnson_pixel"):
            model = SuiteModel("sr", SRNet(int(meta["scale"]), meta.get("variant", "common")), path,
                               scale=int(meta["scale"]), name=str(meta["method"]), meta=meta)
        elif meta.get("method") == "srcnn":
            from baselines.srcnn import SRCNN

            model = SuiteModel("srcnn", SRCNN(), path, scale=int(meta["scale"]), name="srcnn", meta=meta)
        else:
            raise ValueError(f"--checkpoint {path}: a training checkpoint of an unknown network (meta {meta}); "
                             f"{CHECKPOINT_HELP}")
    elif "variant" in ck and "style" in ck:  # an exported style network (RUN/models/<style>.pt)
        model = SuiteModel("style", TransformNet(ck["variant"]), path, name=str(ck["style"]),
                           meta={k: v for k, v in ck.items() if k != "model"})
    else:
        raise ValueError(f"--checkpoint {path} is not a checkpoint of this suite; {CHECKPOINT_HELP}")
    model.net.load_state_dict(ck["model"])
    model.net.to(device).eval()
    return model
