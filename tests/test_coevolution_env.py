"""sandbox/ValueCoevolution-v0: dynamics, shadow population, oracle scores, API errors."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401
from agents.progress import OracleAligner, StaticAligner
from envs.coevolution import ENV_ID, N_DIMS, ValueCoevolutionEnv, generate_history

SMALL = dict(n_humans=40, elicitation_pairs=30, votes_per_pair=3)


def run_episode(env, agent, seed=0):
    obs, info = env.reset(seed=seed)
    agent.reset(info)
    done = False
    while not done:
        obs, _, done, _, info = env.step(agent.act(obs, info))
    return info


def test_registered_and_spaces():
    env = gym.make(ENV_ID, horizon=3, **SMALL)
    assert env.action_space.shape == (N_DIMS,)
    obs, info = env.reset(seed=0)
    assert obs.shape == (30,) and env.observation_space.contains(obs)
    assert np.all(np.abs(obs) <= 3) and np.all(obs % 2 == 1)  # 3 voters: odd net votes
    assert info["queries_a"].shape == (30, N_DIMS) and info["votes_per_pair"] == 3
    assert info["history_trajectory"].shape == (4, N_DIMS)
    env.close()


def test_check_env_passes():
    from gymnasium.utils.env_checker import check_env

    check_env(ValueCoevolutionEnv(horizon=3, **SMALL), skip_render_check=True)


def test_lambda_zero_leaves_humans_on_history():
    hist = generate_history(6, rng=1)
    env = ValueCoevolutionEnv(history=hist, influence=0.0, history_rate=1.0, spread=0.2, **SMALL)
    _, info = env.reset(seed=0)
    core = env
    rng = np.random.default_rng(5)
    for t in range(6):
        # whatever the AI plays, lambda = 0 means it has no effect
        _, _, done, _, info = env.step(rng.normal(size=N_DIMS) * 10)
        np.testing.assert_allclose(core.population.values, hist[t + 1] + core.offsets, atol=1e-12)
    assert done
    np.testing.assert_allclose(
        np.asarray(core.human_means), hist + core.offsets.mean(0), atol=1e-12
    )
    assert info["metrics"]["progress_ratio"] == pytest.approx(1.0)


def test_pull_update_matches_the_formula():
    hist = generate_history(3, rng=2)
    eta, lam = 0.4, 0.3
    env = ValueCoevolutionEnv(history=hist, influence=lam, history_rate=eta, spread=0.5, **SMALL)
    env.reset(seed=3)
    h = env.population.values.copy()
    v = np.linspace(-1, 1, N_DIMS)
    env.step(v)
    # history first, then the AI: h' = h + eta (x - h); h'' = h' + lam (v - h')
    target = hist[1] + env.offsets
    h1 = h + eta * (target - h)
    np.testing.assert_allclose(env.population.values, h1 + lam * (v - h1), atol=1e-12)
    # the shadow population feels only history
    np.testing.assert_allclose(env.baseline.values, h1, atol=1e-12)


def test_shadow_population_draws_the_same_noise():
    env = ValueCoevolutionEnv(horizon=5, influence=0.0, noise=0.1, history_rate=0.5, **SMALL)
    env.reset(seed=7)
    for _ in range(5):
        env.step(np.zeros(N_DIMS))
    np.testing.assert_array_equal(env.population.values, env.baseline.values)
    assert env.metrics()["progress_ratio"] == pytest.approx(1.0)


def test_oracle_scores_one_on_follow_and_predict():
    env = ValueCoevolutionEnv(horizon=8, influence=0.5, noise=0.0, lookahead=2, **SMALL)
    m = run_episode(env, OracleAligner(lookahead=0))["metrics"]
    assert m["follow"] == pytest.approx(1.0)
    m = run_episode(env, OracleAligner(lookahead=2))["metrics"]
    assert m["predict"] == pytest.approx(1.0)
    assert m["follow"] < 1.0


def test_strong_influence_of_a_static_ai_locks_in():
    hist = generate_history(15, rng=0)
    ratios = {}
    for lam in (0.0, 0.1, 0.6):
        env = ValueCoevolutionEnv(
            history=hist, influence=lam, n_humans=60, elicitation_pairs=150, votes_per_pair=5
        )
        ratios[lam] = run_episode(env, StaticAligner(), seed=1)["metrics"]["progress_ratio"]
    assert ratios[0.0] == pytest.approx(1.0)
    assert ratios[0.6] < ratios[0.1] < 1.0
    assert ratios[0.6] < 0.5


def test_influence_homogenizes_values():
    env = ValueCoevolutionEnv(horizon=6, influence=0.5, spread=0.5, **SMALL)
    m = run_episode(env, OracleAligner())["metrics"]
    assert m["value_diversity"] < 0.5 * m["initial_value_diversity"]
    env = ValueCoevolutionEnv(horizon=6, influence=0.0, spread=0.5, history_rate=1.0, **SMALL)
    m = run_episode(env, OracleAligner())["metrics"]
    assert m["value_diversity"] == pytest.approx(m["initial_value_diversity"], rel=1e-9)


def test_seeded_determinism():
    def episode():
        env = ValueCoevolutionEnv(horizon=4, noise=0.05, **SMALL)
        obs0, _ = env.reset(seed=11)
        info = None
        for _ in range(4):
            obs, _, _, _, info = env.step(np.ones(N_DIMS))
        return obs0, obs, info["metrics"]

    a, b = episode(), episode()
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[2] == b[2]


def test_errors():
    env = ValueCoevolutionEnv(horizon=1, **SMALL)
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(np.zeros(N_DIMS))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="value vector of 19 numbers"):
        env.step(np.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        env.step(np.full(N_DIMS, np.nan))
    env.step(np.zeros(N_DIMS))
    with pytest.raises(RuntimeError, match="episode is over"):
        env.step(np.zeros(N_DIMS))
    with pytest.raises(ValueError, match="influence must lie in"):
        ValueCoevolutionEnv(influence=1.5)
    with pytest.raises(ValueError, match=r"history must have shape \(T\+1, 19\)"):
        ValueCoevolutionEnv(history=np.zeros((5, 4)))
