"""Every CUDA-only branch of the suite, run on the CPU with torch.cuda replaced by tests/fake_cuda.py.

CI has no GPU, so these are the only runs most CUDA branches get before a GPU session: device names, backend
flags, synchronisation in timing, memory statistics, the benchmark JSON hook, CUDA RNG restore with fewer GPUs,
CUDA data loading, and the CUDA-graph capture discipline of FastStylizer / FastTrainer (fake graphs that refuse
syncing ops inside a capture and replay by re-running the captured ops into the static outputs).
"""
from __future__ import annotations

import copy
import re
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn

from tests.fake_cuda import CaptureSyncError, FakeCuda

CUDA = torch.device("cuda")


@pytest.fixture
def flags():
    """Backend flags as they were, restored after the test (configure() changes process-wide state)."""
    saved = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic, torch.backends.cudnn.allow_tf32,
             torch.backends.cuda.matmul.allow_tf32, torch.get_float32_matmul_precision(),
             torch.are_deterministic_algorithms_enabled())
    yield
    (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic, torch.backends.cudnn.allow_tf32,
     torch.backends.cuda.matmul.allow_tf32) = saved[:4]
    torch.set_float32_matmul_precision(saved[4])
    torch.use_deterministic_algorithms(saved[5])


@pytest.fixture
def cuda(monkeypatch, flags) -> FakeCuda:
    return FakeCuda().install(monkeypatch)


@pytest.fixture
def cuda_graphs(monkeypatch, flags) -> FakeCuda:
    from perceptual.fast import FastConfig

    monkeypatch.setattr(FastConfig, "check", lambda self, device: None)  # cuda_graphs on a CPU device
    return FakeCuda().install(monkeypatch, graphs=True)


# ------------------------------------------------------------------------------------------- names and timing


def test_device_names_on_cuda(cuda):
    from bench.benchmarks import runner as timing
    from bench.run import provenance as runinfo

    assert timing.device_name(CUDA) == cuda.name  # was torch.cuda.getdevice_name: AttributeError
    assert runinfo.device_name(CUDA) == cuda.name
    assert ("get_device_name", CUDA) in cuda.calls


def test_timing_synchronises_cuda(cuda):
    from perceptual.speed import Stopwatch, synchronize, time_fn

    synchronize("cuda")
    assert cuda.calls[-1] == ("synchronize", CUDA)
    n = len([c for c in cuda.calls if c[0] == "synchronize"])
    t = time_fn(lambda: None, "cuda", warmup=2, repeats=3)
    syncs = len([c for c in cuda.calls if c[0] == "synchronize"]) - n
    assert syncs == 1 + 3 and t.device == "cuda"  # once after the warm-up, once after every timed call
    sw = Stopwatch("cuda").start()
    assert sw.elapsed() >= 0.0


class _Config:
    def __init__(self, **opts: Any):
        self.opts = {"--bench-heavy": False, "--bench-sweep": False, "--bench-compile": "auto",
                     "--bench-case-timeout": 0.0, "--bench-rounds": 2, "--bench-paired": "auto",
                     "--bench-device": "cuda"} | opts

    def getoption(self, name: str, default: Any = None) -> Any:
        return self.opts.get(name, default)


class _Benchmark:
    """pytest-benchmark's fixture as BenchRunner uses it."""

    def __init__(self) -> None:
        self.group, self.extra_info, self.times = None, {}, []

    def pedantic(self, fn, setup=None, rounds=1, warmup_rounds=0, iterations=1) -> None:
        import time

        for _ in range(rounds):
            if setup:
                setup()
            t0 = time.perf_counter()
            fn()
            self.times.append(time.perf_counter() - t0)
        med = sorted(self.times)[len(self.times) // 2]
        self.stats = SimpleNamespace(stats=SimpleNamespace(median=med, min=min(self.times)))


def test_bench_runner_cuda_branches(cuda, monkeypatch):
    from bench.benchmarks import runner as timing

    monkeypatch.setattr(timing, "_REFERENCE", {})
    monkeypatch.setattr(timing, "_FLOPS", {})
    runner = timing.BenchRunner(_Config(), CUDA)
    assert runner.on_cuda and not runner.paired  # paired rounds are a CPU thing
    assert torch.backends.cudnn.benchmark and torch.backends.cuda.matmul.allow_tf32  # configure() ran
    calls = []
    case = timing.Case(group="g", path="reference", size=8, batch=1, pixels=64,
                       build=lambda: (lambda: calls.append(1)))
    bench = _Benchmark()
    before = len([c for c in cuda.calls if c[0] == "synchronize"])
    runner.run(bench, case)
    assert len(calls) == 3 + 2  # three CUDA warm-up calls, then the two rounds asked for
    assert len([c for c in cuda.calls if c[0] == "synchronize"]) - before >= 5  # every timed call is synchronised
    assert ("empty_cache", None) in cuda.calls
    info = bench.extra_info
    assert info["device_name"] == cuda.name and info["tf32_conv"] is True and info["speedup_vs_reference"] == 1.0

    def oom() -> Any:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    with pytest.raises(pytest.skip.Exception, match=f"out of memory at 8x8 .* on {re.escape(cuda.name)}"):
        runner.run(_Benchmark(), timing.Case(group="g2", path="fast", size=8, batch=1, pixels=64, build=oom))


def test_benchmark_json_hook_on_cuda(cuda, monkeypatch):
    from bench.benchmarks import conftest
    from bench.benchmarks import runner as timing

    timing.BenchRunner(_Config(), CUDA)  # the session fixture: sets and records the device flags
    out: dict[str, Any] = {}
    conftest.pytest_benchmark_update_json(_Config(), [], out)
    meta = out["perceptual_bench"]
    assert meta["device"] == "cuda" and meta["device_name"] == cuda.name
    assert meta["device_settings"]["tf32_cudnn"] is True and meta["device_settings"]["applied"] is True
    assert "skipped" in out


def test_gpu_measure_timing_on_cuda(cuda):
    """bench.gpu.measure.timed on CUDA: peak memory reset and read, CUDA events around each call, synchronised."""
    from bench.gpu.measure import timed

    calls = []
    res = timed(lambda: calls.append(1), CUDA, warmup=1, repeats=3)
    assert len(calls) == 4 and res["repeats"] == 3
    assert res["peak_mem_bytes"] == cuda.peak and ("reset_peak_memory_stats", CUDA) in cuda.calls
    assert 0.0 <= res["gpu_median_s"] <= res["median_s"] + 1e-3
    assert len([c for c in cuda.calls if c[0] == "synchronize"]) == 1 + 3


def test_harness_records_the_uncompiled_cuda_layout(cuda):
    """--no-compile on CUDA runs (and run.json records) NCHW: channels_last only where torch.compile runs."""
    from bench.training.exec_path import ExecPath

    eager = ExecPath("fast", CUDA, False).describe()
    assert eager["train"]["channels_last"] is False and eager["train"]["fused_norm"] is True
    assert eager["evaluation"]["channels_last"] is False
    compiled = ExecPath("fast", CUDA, None).describe()
    assert compiled["train"]["channels_last"] is True and compiled["train"]["compile"] is True
    assert compiled["evaluation"]["channels_last"] is False  # evaluation is uncompiled unless --compile


def test_bench_device_refuses_cuda_without_it(monkeypatch):
    from bench.benchmarks.runner import bench_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(pytest.UsageError, match="--bench-device cuda"):
        bench_device(_Config())


# ----------------------------------------------------------------------------------------------- device flags


def test_configure_sets_cuda_flags_and_leaves_cpu_alone(flags):
    from perceptual.device import configure

    torch.backends.cudnn.benchmark = False
    torch.backends.cuda.matmul.allow_tf32 = False
    cpu = configure("cpu")
    assert cpu["applied"] is False and cpu["cudnn_benchmark"] is False and cpu["tf32_matmul"] is False
    gpu = configure("cuda")
    assert gpu["applied"] and gpu["cudnn_benchmark"] and gpu["tf32_matmul"] and gpu["tf32_cudnn"]
    assert not gpu["cudnn_deterministic"] and gpu["float32_matmul_precision"] == "high"
    det = configure("cuda:0", deterministic=True)
    assert det["cudnn_deterministic"] and not det["cudnn_benchmark"] and det["deterministic_algorithms"]


def test_style_and_sr_harnesses_record_device_settings(tmp_path, monkeypatch):
    """Both harnesses call perceptual.device.configure for their device and record what it returned in run.json."""
    import json

    from bench.sr import cli as sr_cli
    from bench.sr import harness as sr
    from bench.style import cli as style_cli
    from bench.style import harness as style

    calls = []

    def fake_configure(device, *args, **kwargs):
        calls.append(str(device))
        return {"applied": False, "marker": len(calls)}

    monkeypatch.setattr(sr, "configure_device", fake_configure)
    monkeypatch.setattr(style, "configure_device", fake_configure)
    out = tmp_path / "sr"
    assert sr_cli.main(["--profile", "smoke", "--methods", "bicubic", "--scales", "4", "--out", str(out), "--no-report",
                    "--no-progress", "--no-lpips"]) == 0
    assert calls == ["cpu"]
    assert json.loads((out / "run.json").read_text())["device_settings"] == {"applied": False, "marker": 1}
    out = tmp_path / "style"
    assert style_cli.main(["--profile", "smoke", "--vgg-weights", "random", "--stages", "report", "--out", str(out)]) == 0
    assert calls == ["cpu", "cpu"]
    assert json.loads((out / "run.json").read_text())["device_settings"] == {"applied": False, "marker": 2}


# ------------------------------------------------------------------------------------------------ checkpoints


def test_cuda_rng_restore_with_fewer_visible_gpus(monkeypatch, flags, caplog):
    from bench.training.loop import capture_rng_state, restore_cuda_rng_states, restore_rng_state

    two = FakeCuda(count=2).install(monkeypatch)
    state = capture_rng_state()
    assert len(state["cuda"]) == 2
    monkeypatch.setattr(two, "count", 1)  # resumed where one GPU is visible
    with pytest.raises(RuntimeError, match="invalid device ordinal"):
        torch.cuda.set_rng_state_all(state["cuda"])  # what the loop used to call
    two.rng_set.clear()
    restore_rng_state(state)
    assert two.rng_set == [0]
    assert "2 GPU(s), 1 visible" in caplog.text
    monkeypatch.setattr(two, "count", 4)  # more GPUs than saved: the saved ones are restored, the rest untouched
    two.rng_set.clear()
    assert restore_cuda_rng_states(state["cuda"]) == 2 and two.rng_set == [0, 1]


# ----------------------------------------------------------------------------------------------- data loading


def test_cuda_data_loading_defaults(cuda):
    from bench.training.distributed import DistContext
    from bench.training.loading import default_workers, loader_options
    from bench.training.loop import TrainConfig, make_loader

    assert loader_options("cpu", 0) == {"num_workers": 0, "pin_memory": False, "persistent_workers": False}
    assert loader_options("cpu", 2) == {"num_workers": 2, "pin_memory": False, "persistent_workers": False}
    opts = loader_options("cuda", 3)
    assert opts["pin_memory"] and opts["persistent_workers"] and opts["prefetch_factor"] == 4
    assert default_workers("cpu", None, 0) == 0 and default_workers("cpu", None, 2) == 2
    assert default_workers("cuda", 0, 0) == 0  # an explicit --num-workers wins
    assert 1 <= default_workers("cuda", None, 0) <= 4 and default_workers("cuda", None, 4) >= 4
    cfg = TrainConfig(iterations=2, batch_size=2, num_workers=1, progress=False)
    loader = make_loader(list(range(8)), cfg, 0, DistContext(), CUDA)  # not iterated: no real pinned memory here
    assert loader.pin_memory and loader.persistent_workers and loader.num_workers == 1 and loader.prefetch_factor == 4
    cpu_loader = make_loader(list(range(8)), replace_workers(cfg, 0), 0, DistContext(), torch.device("cpu"))
    assert not cpu_loader.pin_memory and not cpu_loader.persistent_workers and cpu_loader.num_workers == 0
    assert [b.tolist() for b in cpu_loader] == [[0, 1], [2, 3]]


def replace_workers(cfg: Any, n: int) -> Any:
    from dataclasses import replace

    return replace(cfg, num_workers=n)


def test_harnesses_use_workers_on_cuda_only(cuda):
    from bench.sr import harness as sr
    from bench.style import harness as style

    args = sr.build_parser().parse_args(["--device", "cuda", "--profile", "smoke"])
    assert sr.config_from_args(args).workers >= 1
    args = sr.build_parser().parse_args(["--device", "cpu", "--profile", "smoke"])
    assert sr.config_from_args(args).workers == 0  # the smoke profile's number, as before
    assert style.build_parser().parse_args([]).num_workers is None  # resolved per device at training time


# ---------------------------------------------------------------------------------------- fake CUDA graphs


def _tiny_style_net() -> nn.Module:
    from perceptual.nets import TransformNet

    torch.manual_seed(0)
    return TransformNet().eval()


def test_fake_graph_refuses_syncing_ops(cuda_graphs):
    """The fake capture can fail: .item(), .cpu(), .tolist() and torch.cuda.synchronize inside it all raise."""
    x = torch.ones(3)
    for bad in (lambda: x.sum().item(), lambda: x.cpu(), lambda: x.tolist(), lambda: bool(x.sum() > 0),
                lambda: torch.cuda.synchronize(), lambda: torch.equal(x, x)):
        g = torch.cuda.CUDAGraph()
        with pytest.raises(CaptureSyncError), torch.cuda.graph(g):
            bad()


def test_fake_graph_replays_into_static_outputs(cuda_graphs):
    """Capture runs no kernels (in-place writes undone); replay recomputes into the same output tensor."""
    a, w = torch.tensor([1.0, 2.0]), torch.tensor([0.0])
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        out = a * 2
        w.add_(1)
    assert w.item() == 0.0
    a.copy_(torch.tensor([5.0, 7.0]))
    g.replay()
    assert out.tolist() == [10.0, 14.0] and w.item() == 1.0
    g.replay()
    assert w.item() == 2.0


def test_fast_stylizer_capture_discipline(cuda_graphs):
    from perceptual.fast import FastConfig, FastStylizer

    net = _tiny_style_net()
    cfg = FastConfig(cuda_graphs=True)
    fast = FastStylizer(net, "cpu", config=cfg, max_graphs=2)
    eager = FastStylizer(net, "cpu", config=FastConfig())
    x1, x2 = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    y1 = fast(x1)
    y2 = fast(x2)
    assert len(cuda_graphs.graphs) == 1 and cuda_graphs.graphs[0].replays == 2
    graph = cuda_graphs.graphs[0]
    assert graph.stream is not None and graph.stream.device == fast.device  # its own device's stream
    assert graph.device_at_capture == fast.device
    assert graph.capture_error_mode == "thread_local"  # another thread's CUDA call cannot invalidate the capture
    torch.testing.assert_close(y1, eager(x1), rtol=0, atol=1e-6)  # y1 not overwritten by the second replay
    torch.testing.assert_close(y2, eager(x2), rtol=0, atol=1e-6)
    for size in (20, 24, 16):  # LRU: at most two captured shapes; 16 was evicted by 20 and 24, so captured again
        fast(torch.rand(1, 3, size, size))
    assert len(fast._graphs) == 2 and len(cuda_graphs.graphs) == 4
    assert cuda_graphs.graphs[0].ops is None  # the evicted graph was reset (its memory freed)


def test_fast_stylizer_capture_catches_a_syncing_network(cuda_graphs):
    from perceptual.fast import FastConfig, FastStylizer

    class Syncs(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * float(x.mean())  # a host read inside the forward

    with pytest.raises(CaptureSyncError):
        FastStylizer(Syncs(), "cpu", config=FastConfig(cuda_graphs=True))(torch.rand(1, 3, 8, 8))


def _trainer(cuda_graphs: bool, net: nn.Module, **cfg: Any) -> Any:
    from perceptual.fast import FastConfig, FastTrainer, fast_style_loss_fn
    from perceptual.losses import PerceptualObjective
    from perceptual.vgg import LossNetwork

    torch.manual_seed(1)
    objective = PerceptualObjective(LossNetwork(weights="random"), torch.rand(1, 3, 32, 32))
    config = FastConfig(cuda_graphs=cuda_graphs, **cfg)
    loss = fast_style_loss_fn(objective, config)
    trainer = FastTrainer(net, loss, device="cpu", lr=1e-2, config=config)
    if not cuda_graphs:  # the same optimiser arithmetic as the graphed trainer (capturable Adam)
        trainer.optimizer = torch.optim.Adam(list(net.parameters()), lr=1e-2, capturable=True,
                                             fused=True if cfg.get("fused_adam") else None)
    return trainer


@pytest.mark.parametrize("cfg", [{}, {"channels_last": True, "dtype": "bf16", "fused_adam": True},
                                 {"channels_last": True, "dtype": "bf16", "fused_adam": True, "fused_norm": True}],
                         ids=["fp32", "cuda-default-layout", "cuda-default"])
def test_fast_trainer_capture_discipline(cuda_graphs, cfg):
    """A graphed FastTrainer (warm-up undone, whole step captured with no sync, replayed) trains exactly like the
    eager one with the same optimiser; each step's returned losses survive the next replay."""
    torch.manual_seed(0)
    from perceptual.nets import TransformNet

    base = TransformNet()
    graphed_net, eager_net = copy.deepcopy(base), copy.deepcopy(base)
    graphed, eager = _trainer(True, graphed_net, **cfg), _trainer(False, eager_net, **cfg)
    gen = torch.Generator().manual_seed(2)
    batches = [torch.rand(2, 3, 32, 32, generator=gen) for _ in range(4)]
    outs_g = [graphed.step(b) for b in batches]
    outs_e = [eager.step(b) for b in batches]
    assert len(cuda_graphs.graphs) == 1 and cuda_graphs.graphs[0].replays == 4
    assert cuda_graphs.graphs[0].device_at_capture == graphed.device
    assert cuda_graphs.graphs[0].capture_error_mode == "thread_local"  # a pin-memory thread's cudaHostAlloc is safe
    for g, e in zip(outs_g, outs_e):
        torch.testing.assert_close(g, e, rtol=1e-6, atol=0)
    assert not torch.equal(outs_g[0], outs_g[-1])  # it trained (and outputs were cloned, not aliased)
    for p, q in zip(graphed_net.parameters(), eager_net.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="fixed batch shape"):
        graphed.step(torch.rand(1, 3, 32, 32))


# ------------------------------------------------------------------------------------------ receptive radius


class _WinogradNoise(torch.autograd.Function):
    """Identity forward; the backward adds tiny noise to every input pixel's gradient, as cuDNN's Winograd/FFT
    convolutions do where the exact gradient is 0 (here 1e-15 of the largest value: float64 rounding size)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        noise = torch.rand(g.shape, generator=torch.Generator().manual_seed(0), dtype=g.dtype).to(g.device)
        return g + 1e-15 * g.abs().max() * noise


class _Noisy(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _WinogradNoise.apply(x)


def test_receptive_radius_tolerates_fast_convolution_noise():
    """With non-zero noise everywhere the old exact-zero test saw the whole probe as the field (and raised); the
    relative threshold still finds SRCNN's exact radius of 6 px."""
    from baselines.srcnn import SRCNN
    from perceptual.fast import receptive_radius

    net = nn.Sequential(_Noisy(), SRCNN())
    assert receptive_radius(net, channels=1) == 6
    with pytest.raises(ValueError, match="reaches the border"):  # exact zero: the noise fills the whole probe
        receptive_radius(net, channels=1, size=64, rel_threshold=0.0, trials=1)
