"""Sharding over the query axis: the same results on 1 and on 4 host devices.

The device count of a process is fixed when JAX starts, so each count runs in its
own subprocess with `XLA_FLAGS=--xla_force_host_platform_device_count=D` set
before JAX is imported; the results are compared here, and against the in-memory
router run in this process.
"""

import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import automix_jax as am
from automix_jax import _shard

N = 3_001  # not a multiple of the block or the device count: padding is exercised

_SCRIPT = textwrap.dedent(
    """
    import sys
    import jax
    import numpy as np
    import automix_jax as am
    from automix_jax import _shard, _stream

    devices, out_path, data_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    assert jax.device_count() == devices, jax.devices()
    data = np.load(data_path)
    obs = am.Observations(data["scores"], data["conf"], data["costs"], 1.0)
    mesh = _shard.query_mesh()
    batch = _shard.shard_observations(obs, mesh)
    assert batch.observations.confidences.sharding.num_devices == devices
    policy, grid = am.DoubleThreshold(), am.DoubleThreshold().grid(8, 2)
    stop, cost, perf = _shard.sharded_outcome(policy, grid[5], batch)
    tuned = _shard.sharded_tune(am.Threshold(), am.Threshold().grid(8, 2), obs)
    scored = _shard.sharded_score_grid(policy, grid, batch)
    sweep = _shard.lambda_sweep(policy, grid, batch, [0.0, 0.002, 0.01, 0.1])
    random_stop = _shard.sharded_route(am.RandomRate(), np.float32(0.3), obs)
    chunks = _stream.read_chunks(data_path.replace(".npz", "_rows.npz"),
                                 ["s", "l"], chunk_size=1000)
    streamed = _stream.evaluate_stream(am.Threshold(), 0.5, chunks, mesh=mesh)
    np.savez(
        out_path,
        stop=stop, cost=cost, perf=perf,
        tuned_index=tuned.index, tuned_objective=tuned.objective,
        grid_cost=scored.summary.cost, grid_perf=scored.summary.performance,
        base_cost=scored.baseline.cost, base_perf=scored.baseline.performance,
        sweep_index=sweep.index, random_stop=random_stop,
        stream_cost=streamed.summary.cost, stream_perf=streamed.summary.performance,
        stream_stops=streamed.stops,
    )
    """
)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shard")
    rng = np.random.default_rng(3)
    scores = rng.random((N, 2)).round(3)
    conf = rng.integers(0, 17, (N, 2)) / 16
    costs = rng.uniform(0.5, 2.0, (N, 2)) * np.array([1.0, 40.0])
    path = str(folder / "data.npz")
    np.savez(path, scores=scores, conf=conf, costs=costs)
    np.savez(str(folder / "data_rows.npz"), scores=scores, confidences=conf)
    return folder, path, scores, conf, costs


@pytest.fixture(scope="module")
def results(data):
    folder, path, *_ = data
    script = folder / "run.py"
    script.write_text(_SCRIPT)
    runs = {}
    for devices in (1, 4):
        env = dict(os.environ, JAX_PLATFORMS="cpu")
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
        out = str(folder / f"out{devices}.npz")
        runs[devices] = (
            subprocess.Popen(
                [sys.executable, str(script), str(devices), out, path],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
            out,
        )
    loaded = {}
    for devices, (process, out) in runs.items():
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        loaded[devices] = dict(np.load(out))
    return loaded


def test_four_devices_give_the_same_results_as_one(results):
    one, four = results[1], results[4]
    assert one.keys() == four.keys()
    for name in one:
        np.testing.assert_array_equal(one[name], four[name], err_msg=name)


def test_sharded_outcome_equals_in_memory_outcome(data, results):
    _, _, scores, conf, costs = data
    obs = am.Observations(scores, conf, costs, 1.0)
    grid = am.DoubleThreshold().grid(8, 2)
    stop, cost, perf = am.outcome(am.DoubleThreshold(), grid[5], obs)
    for devices in (1, 4):
        np.testing.assert_array_equal(results[devices]["stop"], stop)
        np.testing.assert_array_equal(results[devices]["cost"], cost)
        np.testing.assert_array_equal(results[devices]["perf"], perf)
    random = am.route(am.RandomRate(), np.float32(0.3), obs)
    np.testing.assert_array_equal(results[4]["random_stop"], random)


def test_sharded_means_are_exact_sums(data, results):
    _, _, scores, conf, costs = data
    obs = am.Observations(scores, conf, costs, 1.0)
    policy, grid = am.DoubleThreshold(), am.DoubleThreshold().grid(8, 2)
    for c in (0, 7, len(grid) - 1):
        _, cost, perf = (np.asarray(x) for x in am.outcome(policy, grid[c], obs))
        # Block sums are float32, so compare with a float32-level tolerance.
        want_cost = math.fsum(cost.astype(float).tolist()) / N
        want_perf = math.fsum(perf.astype(float).tolist()) / N
        assert results[4]["grid_cost"][c] == pytest.approx(want_cost, rel=1e-6)
        assert results[4]["grid_perf"][c] == pytest.approx(want_perf, rel=1e-6)
    np.testing.assert_allclose(
        results[4]["base_cost"],
        costs.astype(np.float32).astype(float).mean(0),
        rtol=1e-6,
    )


def test_sharded_tune_and_sweep_agree_with_numpy(data, results):
    _, _, scores, conf, costs = data
    obs = am.Observations(scores, conf, costs, 1.0)
    grid = am.Threshold().grid(8, 2)
    assert int(results[4]["tuned_index"]) == int(
        am.tune(am.Threshold(), grid, obs).index
    )
    # The sweep's choice, recomputed with NumPy from the exact grid means.
    cost, perf = results[1]["grid_cost"], results[1]["grid_perf"]
    lambdas = np.array([0.0, 0.002, 0.01, 0.1])
    want = np.argmax(perf[None] - lambdas[:, None] * cost[None], axis=1)
    np.testing.assert_array_equal(results[4]["sweep_index"], want)
    assert results[4]["sweep_index"][0] != results[4]["sweep_index"][-1]


def test_streaming_over_a_mesh_matches_in_memory(data, results):
    _, _, scores, conf, _ = data
    obs = am.Observations(scores, conf, np.array([1.0, 50.0]), 1.0)
    stop, cost, perf = (
        np.asarray(x) for x in am.outcome(am.Threshold(), np.float32(0.5), obs)
    )
    for devices in (1, 4):
        got = results[devices]
        np.testing.assert_array_equal(got["stream_stops"], np.bincount(stop))
        want = math.fsum(cost.astype(float).tolist()) / N
        assert float(got["stream_cost"]) == pytest.approx(want, rel=1e-15)


def test_padding_is_a_multiple_of_block_and_devices():
    assert _shard.padded_size(1, 4) == _shard.BLOCK * 4
    assert _shard.padded_size(_shard.BLOCK * 4, 4) == _shard.BLOCK * 4
    assert _shard.padded_size(0, 3) == _shard.BLOCK * 3


def test_in_process_mesh_matches_route():
    rng = np.random.default_rng(0)
    obs = am.Observations(rng.random((300, 3)), rng.random((300, 3)), [1, 5, 20])
    params = am.ChainedThreshold().grid(4, 3)[7]
    got = _shard.sharded_route(am.ChainedThreshold(), params, obs)
    np.testing.assert_array_equal(got, am.route(am.ChainedThreshold(), params, obs))


def test_empty_sweep_is_refused():
    obs = am.Observations(np.zeros((4, 2)), np.zeros((4, 2)), [1.0, 2.0])
    with pytest.raises(am.DegenerateError, match="`lambdas` is empty"):
        _shard.lambda_sweep(am.Threshold(), am.Threshold().grid(2, 2), obs, [])
