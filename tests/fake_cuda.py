"""A CPU stand-in for the parts of torch.cuda the suite calls, so its CUDA-only branches run in the unit tests.

Why: CI has no GPU; code behind `device.type == "cuda"` would otherwise first run on a GPU (which is how
`torch.cuda.getdevice_name` survived). Two pieces:

- `FakeCuda.install(monkeypatch)`: device name, availability, device count, memory statistics, synchronize (counted),
  Event (wall-clock), RNG states per device, streams and the device context; every call is recorded in `calls`.
- Fake CUDA graphs (`FakeCuda.install(..., graphs=True)`): `torch.cuda.graph(g, stream=...)` runs the captured body
  eagerly under `NoSyncCapture`, a TorchDispatchMode that raises `CaptureSyncError` on any op that would synchronise
  the host with the device (`.item()`, `aten._local_scalar_dense`, `aten.equal`, `aten.nonzero`, ...) and on
  device-to-host copies (`.cpu()`, `.numpy()`, `.tolist()`), and records every aten op with its arguments and
  outputs. A real capture runs no kernels, so on exit every in-place write the body made is undone (an undo log,
  reversed). `g.replay()` re-runs the recorded ops on the same tensors and copies each result into the output tensor
  the capture produced: the static-memory semantics of a CUDA graph (outputs overwritten by the next replay, inputs
  read from the captured buffers).
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

SYNCING_OPS = {"_local_scalar_dense", "item", "equal", "is_nonzero", "nonzero", "masked_select", "_unique2",
               "unique_dim", "unique_consecutive", "repeat_interleave", "allclose"}
D2H_METHODS = ("cpu", "numpy", "tolist")


class CaptureSyncError(RuntimeError):
    """An op inside a (fake) CUDA-graph capture would synchronise with the host or copy to it."""


def _tensors(obj: Any) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in _tensors(o)]
    return []


class NoSyncCapture(TorchDispatchMode):
    """Runs and records ops; raises on syncing ones; keeps an undo log of in-place writes to undo at the end."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[tuple[Any, tuple, dict, Any]] = []
        self.undo: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        if name in SYNCING_OPS:
            raise CaptureSyncError(f"{func} synchronises with the host inside a CUDA-graph capture")
        for i, arg in enumerate(func._schema.arguments):
            info = arg.alias_info
            if info is not None and info.is_write:
                value = kwargs.get(arg.name) if arg.kwarg_only or i >= len(args) else args[i]
                for t in _tensors(value):
                    self.undo.append((t, t.detach().clone()))
        out = func(*args, **kwargs)
        self.ops.append((func, args, kwargs, out))
        return out

    def restore(self) -> None:
        with torch.no_grad():
            for t, before in reversed(self.undo):
                t.detach().copy_(before)
        self.undo.clear()


class FakeGraph:
    """torch.cuda.CUDAGraph's replay/reset on recorded ops."""

    def __init__(self) -> None:
        self.ops: list[tuple[Any, tuple, dict, Any]] | None = None
        self.replays = 0
        self.stream: Any = None
        self.device_at_capture: Any = None

    def replay(self) -> None:
        if self.ops is None:
            raise RuntimeError("replay() of a graph that was never captured (or was reset)")
        self.replays += 1
        with torch.no_grad():
            for func, args, kwargs, out in self.ops:
                res = func(*args, **kwargs)
                for dst, src in zip(_tensors(out), _tensors(res)):
                    if dst.data_ptr() != src.data_ptr() or dst.stride() != src.stride():
                        dst.detach().copy_(src)

    def reset(self) -> None:
        self.ops = None


class FakeStream:
    def __init__(self, device: Any = None, **_: Any) -> None:
        self.device = torch.device("cuda" if device is None else device)

    def wait_stream(self, other: Any) -> None:
        pass

    def synchronize(self) -> None:
        pass


class FakeEvent:
    def __init__(self, enable_timing: bool = False, **_: Any) -> None:
        self.t: float | None = None

    def record(self, stream: Any = None) -> None:
        self.t = time.perf_counter()

    def synchronize(self) -> None:
        pass

    def elapsed_time(self, end: FakeEvent) -> float:
        assert self.t is not None and end.t is not None, "Event.elapsed_time before both events were recorded"
        return (end.t - self.t) * 1e3


class FakeCuda:
    """Installs the fakes with pytest's monkeypatch (undone after the test); records calls in `calls`."""

    def __init__(self, name: str = "NVIDIA H200 (emulated)", count: int = 1):
        self.name, self.count = name, count
        self.calls: list[tuple[str, Any]] = []
        self.rng_set: list[int] = []
        self.capturing: NoSyncCapture | None = None
        self.graphs: list[FakeGraph] = []
        self.current_device: Any = 0
        self.peak = 123 * 2**20

    def install(self, monkeypatch: Any, graphs: bool = False) -> FakeCuda:
        c = torch.cuda
        rec = self.calls.append
        monkeypatch.setattr(c, "is_available", lambda: True)
        monkeypatch.setattr(c, "is_initialized", lambda: True)
        monkeypatch.setattr(c, "device_count", lambda: self.count)
        monkeypatch.setattr(c, "current_device", lambda: 0)
        monkeypatch.setattr(c, "get_device_name", lambda d=None: rec(("get_device_name", d)) or self.name)
        monkeypatch.setattr(c, "synchronize", self._synchronize)
        monkeypatch.setattr(c, "empty_cache", lambda: rec(("empty_cache", None)))
        monkeypatch.setattr(c, "max_memory_allocated", lambda d=None: rec(("max_memory_allocated", d)) or self.peak)
        monkeypatch.setattr(c, "memory_allocated", lambda d=None: self.peak // 2)
        monkeypatch.setattr(c, "reset_peak_memory_stats", lambda d=None: rec(("reset_peak_memory_stats", d)))
        monkeypatch.setattr(c, "get_device_properties",
                            lambda d=None: type("Props", (), {"name": self.name, "total_memory": 141 * 2**30,
                                                              "multi_processor_count": 132})())
        monkeypatch.setattr(c, "Event", FakeEvent)
        monkeypatch.setattr(c, "get_rng_state_all", lambda: [torch.ByteTensor(16).zero_() for _ in range(self.count)])
        monkeypatch.setattr(c, "get_rng_state", lambda d=0: torch.ByteTensor(16).zero_())
        monkeypatch.setattr(c, "set_rng_state", self._set_rng_state)
        monkeypatch.setattr(c, "set_rng_state_all", self._set_rng_state_all)
        if graphs:
            monkeypatch.setattr(c, "Stream", FakeStream)
            monkeypatch.setattr(c, "current_stream", lambda device=None: FakeStream(device))
            monkeypatch.setattr(c, "stream", self._stream)
            monkeypatch.setattr(c, "device", self._device)
            monkeypatch.setattr(c, "CUDAGraph", FakeGraph)
            monkeypatch.setattr(c, "graph", self._graph)
            monkeypatch.setattr(c, "is_current_stream_capturing", lambda: self.capturing is not None)
            capturing = type("AcceleratorStream", (), {"is_capturing": lambda _: self.capturing is not None})
            monkeypatch.setattr(torch.accelerator, "current_stream", lambda device=None: capturing())
            import torch.optim.adam as adam_mod

            # capturable Adam on CPU tensors: torch refuses it outside CUDA-like devices
            monkeypatch.setattr(adam_mod, "_get_capturable_supported_devices",
                                lambda supports_xla=True: ["cuda", "cpu"])
        return self

    # -- recorded fakes -------------------------------------------------------------------------------------------
    def _synchronize(self, device: Any = None) -> None:
        if self.capturing is not None:
            raise CaptureSyncError("torch.cuda.synchronize() inside a CUDA-graph capture")
        self.calls.append(("synchronize", device))

    def _set_rng_state(self, state: torch.Tensor, device: Any = "cuda") -> None:
        index = device if isinstance(device, int) else torch.device(device).index or 0
        if index >= self.count:
            raise RuntimeError(f"CUDA error: invalid device ordinal {index} ({self.count} visible)")
        self.rng_set.append(index)

    def _set_rng_state_all(self, states: Any) -> None:  # torch's: one set_rng_state per saved state
        for i, s in enumerate(states):
            self._set_rng_state(s, i)

    @contextlib.contextmanager
    def _stream(self, stream: Any) -> Iterator[None]:
        yield

    @contextlib.contextmanager
    def _device(self, device: Any) -> Iterator[None]:
        before, self.current_device = self.current_device, device
        try:
            yield
        finally:
            self.current_device = before

    @contextlib.contextmanager
    def _graph(self, graph: FakeGraph, pool: Any = None, stream: Any = None, **_: Any) -> Iterator[None]:
        if self.capturing is not None:
            raise RuntimeError("nested CUDA-graph capture")
        graph.stream, graph.device_at_capture = stream, self.current_device
        mode = NoSyncCapture()
        self.capturing = mode
        originals = {m: getattr(torch.Tensor, m) for m in D2H_METHODS}

        def refuse(method: str) -> Any:
            def f(self_: torch.Tensor, *a: Any, **k: Any) -> Any:
                raise CaptureSyncError(f"Tensor.{method}() copies device to host inside a CUDA-graph capture")
            return f

        try:
            for m in D2H_METHODS:
                setattr(torch.Tensor, m, refuse(m))
            with mode:
                yield
        finally:
            for m, f in originals.items():
                setattr(torch.Tensor, m, f)
            self.capturing = None
            mode.restore()  # a real capture runs no kernels: nothing it wrote may remain
        graph.ops = mode.ops
        self.graphs.append(graph)
