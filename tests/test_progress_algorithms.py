"""agents.progress: finite-difference extrapolation, ideal-point fitting, the algorithms."""

from __future__ import annotations

import numpy as np
import pytest

from agents.progress import (
    ALGORITHMS,
    MAX_PAIR_WEIGHT,
    ExtrapolativeAligner,
    ExtrapolativeVectorAligner,
    LifelongAligner,
    OracleAligner,
    StaticAligner,
    finite_difference_extrapolate,
    finite_difference_weights,
    fit_ideal_point,
    ideal_point_features,
    make_aligner,
    recurrence_extrapolate,
    votes_to_fraction,
)


def test_weights_by_hand():
    np.testing.assert_array_equal(finite_difference_weights(0, 3), [1.0])
    np.testing.assert_array_equal(finite_difference_weights(1, 1), [-1.0, 2.0])  # 2y_t - y_{t-1}
    np.testing.assert_array_equal(finite_difference_weights(2, 1), [1.0, -3.0, 3.0])
    np.testing.assert_array_equal(finite_difference_weights(1, 0), [0.0, 1.0])
    for n in range(6):
        for k in range(5):
            assert finite_difference_weights(n, k).sum() == pytest.approx(1.0)  # constants kept


@pytest.mark.parametrize("order", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("steps", [1, 2, 5])
def test_extrapolation_exact_on_polynomials_of_its_order(order, steps):
    rng = np.random.default_rng(order * 10 + steps)
    coef = rng.normal(size=(order + 1, 3))  # three independent series (trailing axis)
    t = np.arange(12, dtype=float)
    series = np.stack([np.polyval(coef[:, j], t) for j in range(3)], axis=1)  # (12, 3)
    truth = np.array([np.polyval(coef[:, j], 11 + steps) for j in range(3)])
    np.testing.assert_allclose(
        finite_difference_extrapolate(series, steps, order), truth, rtol=1e-9, atol=1e-8
    )
    if order >= 1:  # one order too low is not exact on a genuine degree-`order` polynomial
        low = finite_difference_extrapolate(series, steps, order - 1)
        assert not np.allclose(low, truth)


def test_matches_progressgym_recurrence_and_short_histories():
    votes = np.random.default_rng(0).integers(-5, 6, size=(7, 50)).astype(float)
    for n in range(4):
        for k in range(4):
            np.testing.assert_array_equal(
                finite_difference_extrapolate(votes, k, n), recurrence_extrapolate(votes, k, n)
            )
    # two points with order 3: falls back to linear; one point: constant
    np.testing.assert_allclose(finite_difference_extrapolate([1.0, 3.0], 2, 3), 7.0)
    np.testing.assert_allclose(finite_difference_extrapolate([4.0], 3, 2), 4.0)
    with pytest.raises(ValueError, match="at least one timestep"):
        finite_difference_extrapolate(np.zeros((0, 2)), 1, 1)


def _labels(h, a, b, beta):
    x = ideal_point_features(a, b)
    logit = beta * (x @ np.append(h, 1.0))
    return x, 1 / (1 + np.exp(-logit))


def test_ideal_point_features_give_the_ideal_point_logit():
    rng = np.random.default_rng(1)
    h, a, b = rng.normal(size=4), rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    x, _ = _labels(h, a, b, 1.0)
    direct = ((b - h) ** 2).sum(1) - ((a - h) ** 2).sum(1)
    np.testing.assert_allclose(x @ np.append(h, 1.0), direct)


@pytest.mark.parametrize("beta", [0.3, 1.0, 3.0])
def test_fit_ideal_point_recovers_h_whatever_beta(beta):
    rng = np.random.default_rng(2)
    h = rng.uniform(-1, 1, size=5)
    a, b = rng.normal(size=(400, 5)), rng.normal(size=(400, 5))
    x, p = _labels(h, a, b, beta)
    np.testing.assert_allclose(fit_ideal_point(x, p), h, atol=1e-3)


def test_fit_ideal_point_without_signal_falls_back():
    x = ideal_point_features(np.eye(3), -np.eye(3))
    fallback = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(fit_ideal_point(x, np.full(3, 0.5), fallback=fallback), fallback)


def test_votes_to_fraction():
    np.testing.assert_allclose(votes_to_fraction([5, -5, 1, -3], 5), [1.0, 0.0, 0.6, 0.2])


def _info(m=300, d=4, r=5, seed=0, horizon=6):
    rng = np.random.default_rng(seed)
    return {
        "queries_a": rng.normal(size=(m, d)),
        "queries_b": rng.normal(size=(m, d)),
        "votes_per_pair": r,
        "history_trajectory": np.arange(horizon + 1)[:, None] * np.ones((1, d)),
    }


def _votes(info, h, beta=2.0):
    _, p = _labels(h, info["queries_a"], info["queries_b"], beta)
    return (2 * p - 1) * info["votes_per_pair"]  # expected net votes


def test_static_aligns_once_and_lifelong_follows():
    info = _info()
    h0, h1 = np.array([0.5, -0.5, 0.2, 0.0]), np.array([-0.4, 0.3, 0.6, -0.2])
    static, restart, pooled = StaticAligner(), LifelongAligner(True), LifelongAligner(False)
    for agent in (static, restart, pooled):
        agent.reset(info)
    for agent in (static, restart, pooled):
        np.testing.assert_allclose(agent.act(_votes(info, h0)), h0, atol=1e-3)
    np.testing.assert_allclose(static.act(_votes(info, h1)), h0, atol=1e-3)
    np.testing.assert_allclose(restart.act(_votes(info, h1)), h1, atol=1e-3)
    # no restart: one model trained on both steps = the fit on the mean vote fraction,
    # which lies between the two ideal points
    got = pooled.act(_votes(info, h1))
    frac = (votes_to_fraction(_votes(info, h0), 5) + votes_to_fraction(_votes(info, h1), 5)) / 2
    np.testing.assert_allclose(
        got,
        fit_ideal_point(ideal_point_features(info["queries_a"], info["queries_b"]), frac),
        atol=1e-9,
    )
    assert np.linalg.norm(got - h0) > 0.1 and np.linalg.norm(got - h1) > 0.1
    assert restart.name == "lifelong_restart" and pooled.name == "lifelong"


def test_extrapolative_flips_and_caps_weights_as_progressgym():
    info = _info(m=4)
    agent = ExtrapolativeAligner(order=1, lookahead=1)
    agent.reset(info)
    agent._votes = [np.array([1.0, 3.0, -1.0, 2.0]), np.array([5.0, 1.0, -1.0, 1.0])]
    # 2 v_t - v_{t-1} = [9, -1, -1, 0]: pair 0 kept with weight min(9, 5); pairs 1, 2
    # flipped (label 0) with weight 1; pair 3 (zero vote) dropped
    feats, labels, weights = agent.extrapolated_dataset()
    np.testing.assert_array_equal(labels, [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(weights, [MAX_PAIR_WEIGHT, 1.0, 1.0])
    np.testing.assert_array_equal(feats, agent.features[:3])


def test_extrapolative_leads_a_linearly_moving_population():
    info = _info(m=600, r=50)
    agents = {
        "ext": ExtrapolativeAligner(order=1, lookahead=2),
        "vec": ExtrapolativeVectorAligner(order=1, lookahead=2),
        "life": LifelongAligner(True),
    }
    for a in agents.values():
        a.reset(info)
    start, vel = np.array([0.2, -0.3, 0.1, 0.0]), np.array([0.15, 0.1, -0.1, 0.05])
    out = {}
    for t in range(4):
        votes = _votes(info, start + t * vel)
        out = {k: a.act(votes) for k, a in agents.items()}
    future = start + 5 * vel  # t = 3 plus lookahead 2
    err = {k: np.linalg.norm(v - future) for k, v in out.items()}
    assert err["vec"] < 0.01  # extrapolating exact estimates of a linear path is exact
    assert err["ext"] < err["life"]  # the vote-extrapolating algorithm also looks ahead


def test_oracle_and_factory():
    info = _info(horizon=4)
    oracle = OracleAligner(lookahead=3)
    oracle.reset(info)
    np.testing.assert_array_equal(
        oracle.act(np.zeros(300), {"t": 0}), info["history_trajectory"][3]
    )
    np.testing.assert_array_equal(
        oracle.act(np.zeros(300), {"t": 3}), info["history_trajectory"][4]
    )
    for name in ALGORITHMS:
        assert make_aligner(name).name == name
    with pytest.raises(ValueError, match="unknown algorithm 'dpo'; valid: static"):
        make_aligner("dpo")
    with pytest.raises(RuntimeError, match="call reset"):
        StaticAligner().act(np.zeros(3))
    with pytest.raises(KeyError, match="queries_a"):
        StaticAligner().reset({})
    agent = StaticAligner()
    agent.reset(info)
    with pytest.raises(ValueError, match="expected 300 votes"):
        agent.act(np.zeros(5))
