"""The learned router: features, training, and identical decisions after loading."""

import functools

import jax.numpy as jnp
import numpy as np

import automix_jax as aj
from automix_jax import _learned, _soft

DATE = aj.demo_path("date")
MODELS = ["llama13b", "gpt35", "gpt4"]


@functools.cache
def date():
    data = aj.load_jsonl(DATE, MODELS, costs=[1.0, 10.0, 50.0])
    return data, _learned.load_features(DATE, data)


def test_vote_features_by_hand():
    # Answers 18, 18.0, 7, 9: shares 2/4, 1/4, 1/4 and 3 distinct of 4.
    assert _learned._vote_features([18, 18.0, "7", 9]) == [0.5, 0.25, 0.25, 0.75]


def test_features_shape_and_confidence_column():
    data, features = date()
    assert features.values.shape == (len(data), 3, 6)
    np.testing.assert_array_equal(
        features.values[:, :, 0], np.asarray(data.observations.confidences)
    )


def test_fallback_to_confidence(tmp_path):
    path = tmp_path / "plain.jsonl"
    rows = [
        {"a_f1": 1.0, "b_f1": 0.0, "p_ver_a": 0.5, "split": "train"},
        {"a_f1": 0.0, "b_f1": 1.0, "p_ver_a": 0.2, "split": "val"},
    ]
    path.write_text("".join(__import__("json").dumps(r) + "\n" for r in rows))
    data = aj.load_jsonl(path, ["a", "b"])
    features = _learned.load_features(path, data)
    assert features.names == _learned.FEATURES_CONFIDENCE


def test_train_route_save_load_identical(tmp_path):
    data, features = date()
    train = data.split_rows("train").observations
    inputs = features.split(data, "train")
    router = _learned.LearnedRouter.for_features(inputs, features.names, hidden=8)
    out = _soft.tune_soft(
        router, train, 15.0, inputs=inputs, config=_soft.TrainConfig(steps=30)
    )
    assert bool(out.met) and float(out.summary.cost) <= 15.0
    # The reported figures are those of routing with the final weights.
    stop = _learned.route_features(router, out.params, inputs)
    costs = np.asarray(_soft.stop_costs(train.costs, train.verifier_costs))
    np.testing.assert_allclose(
        costs[np.arange(len(stop)), stop].mean(), out.summary.cost, rtol=1e-6
    )
    tuned = _learned.router_to_tuned(router, out.params, data)
    tuned.save(tmp_path / "r.json")
    loaded = aj.load_tuned(tmp_path / "r.json")
    again = loaded.family()
    assert again == router
    np.testing.assert_array_equal(
        _learned.route_features(again, loaded.array_params(), inputs), stop
    )


def test_confidence_router_routes_from_observations():
    data, _ = date()
    obs = data.observations
    inputs = obs.confidences[..., None]
    router = _learned.LearnedRouter.for_features(inputs, _learned.FEATURES_CONFIDENCE)
    params = router.init_params()
    np.testing.assert_array_equal(
        aj.route(router, params, obs), _learned.route_features(router, params, inputs)
    )
    assert np.asarray(jnp.isfinite(params)).all()
