import json

import numpy as np
import pytest
import torch

from evo1cli.errors import Evo1Error
from evo1cli.model.normalization import FeatureStats, Normalizer, NormStats, StatsTable


def stats_from(data: np.ndarray) -> FeatureStats:
    return FeatureStats(
        min=data.min(0), max=data.max(0), mean=data.mean(0), std=data.std(0),
        q01=np.quantile(data, 0.01, axis=0), q99=np.quantile(data, 0.99, axis=0),
    )  # fmt: skip


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 6)) * [1, 2, 3, 4, 5, 6] + [0, 1, -1, 10, 0, 0]
    x[:, 4] = 0.25  # a constant dim
    return x


@pytest.mark.parametrize("mode", ["bounds", "bounds_q99", "normal"])
def test_round_trip_pads_and_constant_dims(data, mode):
    stats = stats_from(data)
    norm = Normalizer(mode, pad_to=24)
    y = norm.normalize(data, stats)
    assert y.shape == (500, 24) and y.dtype == torch.float32
    assert torch.all(y[:, 6:] == 0), "padded dims must stay exactly 0"
    assert torch.all(y[:, 4] == 0), "a constant dim maps to 0"
    back = norm.denormalize(y, stats).double().numpy()
    assert back.shape == (500, 6)
    assert np.allclose(back[:, 4], 0.25)
    if mode == "bounds_q99":  # values beyond the percentiles are clamped
        inside = ((data >= stats.q01) & (data <= stats.q99)).all(1)
        assert inside.sum() > 400
        assert np.allclose(back[inside], data[inside], atol=1e-4)
        assert np.all(back <= stats.q99 + 1e-5)
    else:
        assert np.allclose(back, data, atol=1e-4 * np.abs(data).max())


def test_bounds_formula_and_clamp():
    stats = FeatureStats(min=np.array([0.0, -2.0]), max=np.array([4.0, 2.0]))
    y = Normalizer("bounds", pad_to=3).normalize(np.array([[1.0, 2.0], [8.0, -9.0]]), stats)
    assert torch.allclose(y, torch.tensor([[-0.5, 1.0, 0.0], [1.0, -1.0, 0.0]]))


def test_normal_is_not_clamped():
    stats = FeatureStats(min=np.zeros(1), max=np.ones(1), mean=np.array([1.0]), std=np.array([2.0]))
    assert Normalizer("normal", 1).normalize(np.array([11.0]), stats).item() == pytest.approx(5.0)


# The edge cases the module's docstring states, one test each.
EDGE = FeatureStats(
    min=np.array([0.0, -2.0, 5.0]), max=np.array([4.0, 2.0, 5.0]),  # dim 2 is constant
    mean=np.array([2.0, 0.0, 5.0]), std=np.array([1.0, 0.5, 0.0]),
    q01=np.array([0.5, -1.0, 5.0]), q99=np.array([3.5, 1.0, 5.0]),
)  # fmt: skip
OUTSIDE = np.array([[9.0, -10.0, 5.0], [-3.0, 3.0, 5.0]])  # beyond every range of EDGE


@pytest.mark.parametrize("mode", ["bounds", "bounds_q99"])
def test_out_of_range_values_clamp_unless_clamping_is_off(mode):
    clamped = Normalizer(mode, 3).normalize(OUTSIDE, EDGE)
    assert torch.equal(clamped[:, :2], torch.tensor([[1.0, -1.0], [-1.0, 1.0]]))  # the authors' behaviour
    plain = Normalizer(mode, 3, clamp=False).normalize(OUTSIDE, EDGE)  # LeRobot's MIN_MAX
    lo, hi = (EDGE.min, EDGE.max) if mode == "bounds" else (EDGE.q01, EDGE.q99)
    expected = 2 * (OUTSIDE[:, :2] - lo[:2]) / (hi[:2] - lo[:2]) - 1
    assert torch.allclose(plain[:, :2], torch.tensor(expected).float()) and plain.abs().max() > 1
    back = Normalizer(mode, 3, clamp=False).denormalize(plain, EDGE).double().numpy()
    assert np.allclose(back, OUTSIDE, atol=1e-5)  # unclamped, the map is exactly invertible


def test_normal_never_clamps_and_the_way_back_never_does():
    y = Normalizer("normal", 3, clamp=True).normalize(OUTSIDE, EDGE)
    assert torch.allclose(y[:, :2], torch.tensor([[7.0, -20.0], [-5.0, 6.0]]))
    wild = torch.tensor([[3.0, -2.0, 0.0]])  # a model output outside [-1, 1]
    back = Normalizer("bounds", 3).denormalize(wild, EDGE)
    assert torch.allclose(back, torch.tensor([[8.0, -4.0, 5.0]]))


@pytest.mark.parametrize("mode", ["bounds", "bounds_q99", "normal"])
@pytest.mark.parametrize("clamp", [True, False])
def test_a_constant_dim_is_0_in_and_its_constant_out(mode, clamp):
    norm = Normalizer(mode, 3, clamp)
    y = norm.normalize(np.array([[1.0, 0.0, 5.0], [1.0, 0.0, 7.5]]), EDGE)  # 7.5: off the recorded constant
    assert torch.equal(y[:, 2], torch.zeros(2))
    back = norm.denormalize(torch.tensor([[0.0, 0.0, 0.9], [0.0, 0.0, -3.0]]), EDGE)
    assert torch.equal(back[:, 2], torch.full((2,), 5.0))


def test_padded_dims_are_exactly_0_and_ignored_on_the_way_back():
    norm = Normalizer("bounds", 8)
    y = norm.normalize(OUTSIDE, EDGE)
    assert y.shape == (2, 8) and torch.equal(y[:, 3:], torch.zeros(2, 5))
    noisy = y.clone()
    noisy[:, 3:] = torch.randn(2, 5)  # whatever the model puts in padded dims
    assert torch.equal(norm.denormalize(noisy, EDGE), norm.denormalize(y, EDGE))
    with pytest.raises(Evo1Error, match="3 dims, more than the model's 2"):
        Normalizer("bounds", 2).normalize(OUTSIDE, EDGE)  # never a silent crop


def test_missing_metrics_are_errors():
    stats = FeatureStats(min=np.zeros(2), max=np.ones(2))
    with pytest.raises(Evo1Error, match="q01/q99"):
        Normalizer("bounds_q99").normalize(np.zeros(2), stats)
    with pytest.raises(Evo1Error, match="mean/std"):
        Normalizer("normal").normalize(np.zeros(2), stats)
    with pytest.raises(Evo1Error, match="has 3 dims"):
        Normalizer("bounds").normalize(np.zeros(3), stats)


def test_table_round_trip_and_lookup(tmp_path, data):
    table = StatsTable()
    table.add("franka", "libero_10", NormStats(stats_from(data), stats_from(data[:, :4])))
    table.add("franka", "libero_goal", NormStats.identity(8, 7))
    path = tmp_path / "norm_stats.json"
    table.save(path)
    loaded = StatsTable.load(path)
    assert set(loaded) == {("franka", "libero_10"), ("franka", "libero_goal")}
    got = loaded.get("franka", "libero_10")
    assert np.array_equal(got.state.q99, stats_from(data).q99)  # float64 survives JSON exactly
    assert loaded.get(dataset="libero_goal").action.dim == 7
    with pytest.raises(Evo1Error, match="several stats match"):
        loaded.get("franka")
    with pytest.raises(Evo1Error, match="no stats for aloha/"):
        loaded.get("aloha")


def test_reads_the_authors_older_form(tmp_path):
    path = tmp_path / "norm_stats.json"
    legacy = {
        "metaworld_robot": {"observation.state": {"min": [0, 0], "max": [1, 2]}, "action": {"min": [-1], "max": [1]}}
    }
    path.write_text(json.dumps(legacy))
    stats = StatsTable.load(path).get()
    assert stats.state.dim == 2 and stats.action.dim == 1


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"a": {"d": {"action": {"min": [0], "max": [1]}}}}, "a.d.observation.state: missing"),
        (
            {"a": {"d": {"observation.state": {"min": [0]}, "action": {"min": [0], "max": [1]}}}},
            "observation.state.max",
        ),
        (
            {"a": {"d": {"observation.state": {"min": [0], "max": [1, 2]}, "action": {"min": [0], "max": [1]}}}},
            "max: has 2",
        ),
        ({"a": {"d": {"observation.state": {"min": ["x"], "max": [1]}, "action": {"min": [0], "max": [1]}}}}, "min"),
        ({"a": {"d": {"observation.state": {"min": [2], "max": [1]}, "action": {"min": [0], "max": [1]}}}}, "below"),
        (
            {"a": {"d": {"observation.state": {"min": [0] * 25, "max": [1] * 25}, "action": {"min": [0], "max": [1]}}}},
            "25",
        ),
        ([1, 2], "expected"),
    ],
)
def test_malformed_stats_name_file_and_field(tmp_path, doc, field):
    path = tmp_path / "norm_stats.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(Evo1Error) as info:
        StatsTable.load(path)
    assert str(info.value).startswith(str(path)) and field in str(info.value)
