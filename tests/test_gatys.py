"""The Gatys baseline: it minimises PerceptualObjective (Eq. 5), L-BFGS descends, pixels stay in [0, 1], and the trace
counts iterations and time honestly. Mechanics only: a randomly initialised VGG-16 on tiny images (fast, no weights)."""
import itertools
import math

import pytest
import torch

from baselines.gatys import (
    TRACE_COLUMNS,
    GatysConfig,
    initial_image,
    read_trace,
    stylise,
    trace_csv,
    write_trace,
)
from perceptual.losses import LossWeights, PerceptualObjective
from perceptual.vgg import LossNetwork

SIZE = 32


@pytest.fixture(scope="module")
def loss_net():
    torch.manual_seed(0)
    return LossNetwork(weights="random")


pytestmark = pytest.mark.usefixtures("one_thread")


def images(seed=1, size=SIZE):
    g = torch.Generator().manual_seed(seed)
    # a smooth content image and a high-contrast striped style image
    content = torch.nn.functional.interpolate(torch.rand(1, 3, size // 4, size // 4, generator=g), size=(size, size),
                                              mode="bilinear", align_corners=False)
    style = torch.zeros(1, 3, size, size)
    style[..., ::4, :] = 1.0
    style[:, 0] = torch.rand(size, size, generator=g)
    return content, style


BALANCED = LossWeights(content=1.0, style=5.0, tv=1.0)


def objective(loss_net, weights=BALANCED):
    content, style = images()
    return PerceptualObjective(loss_net, style, weights), content


def out_of_range_objective(loss_net):
    """Style statistics of a brighter-than-white image: the unconstrained optimum has pixels above 1."""
    content, style = images()
    return PerceptualObjective(loss_net, 2.5 * style + 0.5, LossWeights(content=0.0, style=50.0, tv=0.0)), content


def totals(result):
    return [row["total"] for row in result.trace]


def test_gatys_minimises_the_perceptual_objective_itself(loss_net):
    """Row 0 of a content-initialised trace is exactly objective(content): the function the network is trained on."""
    obj, content = objective(loss_net)
    result = stylise(obj, content, GatysConfig(iterations=0, init="content"))
    direct = obj(content, obj.content_targets(content))
    for term in ("total", "content", "style", "tv"):
        assert result.trace[0][term] == pytest.approx(float(direct[term].sum()), rel=1e-6)
    assert result.trace[0]["content"] == pytest.approx(0.0, abs=1e-9)
    # and after optimisation the image's objective, recomputed directly, is the trace's last value
    result = stylise(obj, content, GatysConfig(iterations=4))
    again = obj(result.image, obj.content_targets(content))["total"].item()
    assert result.final["total"] == pytest.approx(again, rel=1e-5)


def test_lbfgs_lowers_the_objective_monotonically(loss_net):
    obj, content = objective(loss_net)
    result = stylise(obj, content, GatysConfig(iterations=15, init="noise", seed=3))
    t = totals(result)
    assert all(b <= a * (1 + 1e-6) for a, b in itertools.pairwise(t)), t
    assert t[-1] < 0.2 * t[0]


def test_lbfgs_with_line_search_is_monotone_and_counts_its_evaluations(loss_net):
    obj, content = objective(loss_net)
    result = stylise(obj, content, GatysConfig(iterations=8, line_search="strong_wolfe"))
    t = totals(result)
    assert all(b <= a * (1 + 1e-6) for a, b in itertools.pairwise(t)), t
    evals = [row["evaluations"] for row in result.trace]
    assert evals[0] == 0 and all(b > a for a, b in itertools.pairwise(evals))
    assert evals[-1] >= 8


def test_one_iteration_is_one_evaluation_without_line_search(loss_net, monkeypatch):
    obj, content = objective(loss_net)
    calls = []
    original = obj.forward
    monkeypatch.setattr(obj, "forward", lambda *a, **k: calls.append(1) or original(*a, **k))
    result = stylise(obj, content, GatysConfig(iterations=7))
    assert [row["evaluations"] for row in result.trace] == list(range(8))
    # 7 forward+backward evaluations, plus one forward for the last iterate's value (after the clock stops)
    assert len(calls) == 8


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_pixels_stay_in_range_and_the_clamp_is_what_keeps_them_there(loss_net, optimizer):
    obj, content = out_of_range_objective(loss_net)
    cfg = GatysConfig(iterations=10, optimizer=optimizer, init="content", lr=0.2 if optimizer == "adam" else None)
    clamped = stylise(obj, content, cfg)
    assert clamped.image.min() >= 0.0 and clamped.image.max() <= 1.0
    free = stylise(obj, content, GatysConfig(**{**cfg.as_dict(), "clamp": False}))
    assert free.image.min() < 0.0 or free.image.max() > 1.0  # so the check above can fail


def test_the_projected_step_is_what_lbfgs_remembers(loss_net, monkeypatch):
    """After a clamp, L-BFGS's stored step d*t must be the step actually taken (consistent curvature pairs)."""
    from baselines import gatys

    seen = []
    original = gatys._sync_lbfgs_step

    def spy(opt, x, before):
        original(opt, x, before)
        state = opt.state[x]
        seen.append(torch.allclose(state["d"] * state["t"], (x.detach() - before).reshape(-1)))

    monkeypatch.setattr(gatys, "_sync_lbfgs_step", spy)
    obj, content = out_of_range_objective(loss_net)
    result = stylise(obj, content, GatysConfig(iterations=10, init="content"))
    assert seen and all(seen)
    assert result.image.min() >= 0.0 and result.image.max() <= 1.0


def test_adam_variant_descends(loss_net):
    obj, content = objective(loss_net)
    result = stylise(obj, content, GatysConfig(iterations=10, optimizer="adam", init="noise", lr=0.05))
    t = totals(result)
    assert t[-1] < t[0]
    assert [row["evaluations"] for row in result.trace] == list(range(11))


def test_trace_rows_times_and_iteration_count(loss_net, tmp_path):
    obj, content = objective(loss_net)
    result = stylise(obj, content, GatysConfig(iterations=5))
    assert [row["iteration"] for row in result.trace] == list(range(6))
    times = [row["wall_time_s"] for row in result.trace]
    assert times[0] > 0 and all(b > a for a, b in itertools.pairwise(times))
    for row in result.trace:
        assert set(row) == set(TRACE_COLUMNS)
        assert math.isclose(row["total"], row["content"] + row["style"] + row["tv"], rel_tol=1e-5)
    path = write_trace(tmp_path / "traces" / "gatys_32_x.csv", result.trace)
    assert trace_csv(result.trace).splitlines()[0] == ",".join(TRACE_COLUMNS)
    back = read_trace(path)
    assert back == [{k: (int(v) if k in ("iteration", "evaluations") else float(v)) for k, v in r.items()}
                    for r in result.trace]


def test_noise_init_is_seeded_white_noise_and_bad_configs_are_refused():
    content = torch.rand(1, 3, 8, 8)
    a, b, c = (initial_image(content, "noise", s) for s in (1, 1, 2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert 0.0 <= a.min() and a.max() <= 1.0 and 0.3 < a.mean() < 0.7
    assert torch.equal(initial_image(content, "content", 0), content)
    for bad in ({"iterations": -1}, {"optimizer": "sgd"}, {"init": "zeros"}, {"lr": 0.0},
                {"line_search": "backtracking"}):
        with pytest.raises(ValueError):
            GatysConfig(**bad)
    obj = PerceptualObjective(LossNetwork(taps=("relu1_2", "relu2_2", "relu3_3", "relu4_3"), weights="random"),
                              torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="one RGB image"):
        stylise(obj, torch.rand(2, 3, 8, 8), GatysConfig(iterations=1))
