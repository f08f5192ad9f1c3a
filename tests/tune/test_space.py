"""workbench.tune search spaces: grid coverage, bounds, log scale, conditionals, seeds."""
import itertools
import json
import math

import numpy as np
import pytest

from workbench import tune
from workbench.tune.space import sample_params


def _space():
    return {
        "learningrate": tune.loguniform(1e-4, 1.0),
        "batch_size": tune.choice([16, 32, 64]),
        "optim": tune.choice(["SGD", "Adam"]),
        "hidden": tune.randint(32, 256, step=32),
        "dropout": tune.uniform(0.0, 0.5),
        "momentum": tune.conditional("optim", {"SGD": tune.uniform(0.5, 0.99)}),
    }


def _sample(space, n, seed):
    """n params dicts drawn through optuna's RandomSampler, as Study(algo="random") does."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        t = study.ask()
        out.append(sample_params(space, t))
        study.tell(t, 0.0)
    return out


def test_grid_covers_every_point_with_conditionals():
    space = {"optim": tune.choice(["SGD", "Adam"]),
             "lr": tune.loguniform(1e-3, 1e-1),
             "hidden": tune.randint(1, 3),
             "momentum": tune.conditional("optim", {"SGD": tune.choice([0.0, 0.9])})}
    points = tune.grid_points(space, resolution=3)
    lrs = [1e-3, 1e-2, 1e-1]
    expected = []
    for optim, lr, hidden in itertools.product(["SGD", "Adam"], lrs, [1, 2, 3]):
        if optim == "SGD":
            expected += [(optim, lr, hidden, m) for m in (0.0, 0.9)]
        else:
            expected.append((optim, lr, hidden, None))
    got = [(p["optim"], p["lr"], p["hidden"], p.get("momentum")) for p in points]
    assert len(got) == len(expected) == 2 * 3 * 3 + 3 * 3
    # every point exactly once (floats compared after rounding the log-spaced values)
    key = lambda t: (t[0], round(math.log10(t[1]), 9), t[2], t[3])  # noqa: E731
    assert sorted(map(key, got)) == sorted(map(key, expected))
    assert all("momentum" not in p for p in points if p["optim"] == "Adam")


def test_grid_resolution_for_ranges():
    assert tune.uniform(0, 1).grid_values(5) == pytest.approx([0, .25, .5, .75, 1])
    assert tune.loguniform(1e-4, 1).grid_values(5) == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1, 1])
    assert tune.randint(1, 3).grid_values(3) == [1, 2, 3]
    assert tune.randint(0, 100, step=10).grid_values(3) == [0, 50, 100]


def test_study_grid_runs_every_point_once(tmp_path):
    space = {"a": tune.choice([1, 2, 3]), "b": tune.uniform(0.0, 1.0)}
    seen = []

    def objective(params, trial):
        seen.append((params["a"], params["b"]))
        return params["a"] + params["b"]

    result = tune.Study(objective, space, algo="grid", grid_resolution=2, pruner=None,
                        parallelism=2, log_dir=False, backend="local").run()
    assert sorted(seen) == sorted(itertools.product([1, 2, 3], [0.0, 1.0]))
    assert len(result.trials) == 6
    assert result.best_params == {"a": 3, "b": 1.0}


def test_random_respects_bounds_types_and_log_scale():
    space = _space()
    draws = _sample(space, 400, seed=3)
    for p in draws:
        for name, value in p.items():
            assert space[name].contains(value), (name, value)
        assert ("momentum" in p) == (p["optim"] == "SGD")
        assert p["hidden"] % 32 == 0 and isinstance(p["hidden"], int)
    lrs = np.array([p["learningrate"] for p in draws])
    # log-uniform: each decade of [1e-4, 1] gets about a quarter of the draws (a plain uniform
    # draw would put ~90% in the top decade)
    decades = np.histogram(np.log10(lrs), bins=[-4, -3, -2, -1, 0])[0] / len(lrs)
    assert decades.min() > 0.15 and decades.max() < 0.35, decades
    drop = np.array([p["dropout"] for p in draws])
    assert 0.2 < drop.mean() < 0.3  # uniform on [0, 0.5]
    assert {p["batch_size"] for p in draws} == {16, 32, 64}


def test_same_seed_same_params_and_other_seed_differs():
    a, b = _sample(_space(), 20, seed=7), _sample(_space(), 20, seed=7)
    c = _sample(_space(), 20, seed=8)
    assert a == b
    assert a != c


def test_space_round_trips_through_json():
    space = _space()
    d = json.loads(json.dumps(tune.space_to_dict(space)))
    assert d["momentum"]["type"] == "conditional"
    back = tune.space_from_dict(d)
    assert back == space
    assert tune.space_to_dict(back) == d


@pytest.mark.parametrize("make, message", [
    (lambda: tune.loguniform(0, 1), "low must be > 0"),
    (lambda: tune.uniform(1, 1), "low must be < high"),
    (lambda: tune.randint(0, 10, step=3), "multiple of step"),
    (lambda: tune.choice([]), "non-empty"),
    (lambda: tune.choice([[1]]), "str, int, float, bool or None"),
    (lambda: tune.conditional("x", {"a": 3}), "tune distribution"),
])
def test_bad_distributions_are_clear(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_conditional_needs_its_parent():
    with pytest.raises(ValueError, match="not in the space"):
        tune.grid_points({"m": tune.conditional("optim", {"SGD": tune.uniform(0, 1)})})
    with pytest.raises(ValueError, match="cycle"):
        tune.space_from_dict({"a": {"type": "conditional", "parent": "b",
                                    "branches": [[1, {"type": "choice", "options": [1]}]]},
                              "b": {"type": "conditional", "parent": "a",
                                    "branches": [[1, {"type": "choice", "options": [1]}]]}})
