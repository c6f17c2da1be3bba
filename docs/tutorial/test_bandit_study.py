"""Tests of the tutorial's environment, agent and study (run: pytest test_bandit_study.py)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from bandit_agent import EpsilonGreedy
from bandit_env import ENV_ID, ProxyBanditEnv
from bandit_study import STUDY
from gymnasium.utils.env_checker import check_env

from sandbox.runner import plan, run_study
from sandbox.study import RunContext


def test_env_passes_gymnasium_checks():
    check_env(ProxyBanditEnv(horizon=5), skip_render_check=True)


def test_proxy_is_true_reward_plus_bias_on_the_flattering_arm():
    env = gym.make(ENV_ID, proxy_bias=0.7, noise=0.0, horizon=2)
    env.reset(seed=0)
    _, proxy, _, _, info = env.step(1)
    assert info["true_reward"] == 0.5 and proxy == pytest.approx(1.2)
    _, proxy, _, truncated, info = env.step(0)
    assert info["true_reward"] == proxy == 1.0 and truncated


def test_greedy_agent_follows_the_observed_reward():
    agent = EpsilonGreedy(2, epsilon=0.0, rng=np.random.default_rng(0))
    assert [agent.act(), agent.act()] == [0, 0]  # untried arms first
    agent.update(0, 1.0)
    assert agent.act() == 1
    agent.update(1, 3.0)
    agent.update(1, 1.0)
    assert agent.values.tolist() == [1.0, 2.0] and agent.act() == 1


def test_run_is_deterministic_under_a_seed():
    config = STUDY.Config(proxy_bias=1.0, steps=50)
    first = STUDY.run(config, seed=3, ctx=RunContext())
    pd.testing.assert_frame_equal(first, STUDY.run(config, seed=3, ctx=RunContext()))


def test_a_large_bias_makes_the_agent_pull_the_worse_arm(tmp_path):
    specs = plan(STUDY, "bandit_study:STUDY", scale="quick")
    summary = run_study(STUDY, specs, tmp_path / "out", quiet=True)
    assert not summary.failed
    results = pd.read_parquet(tmp_path / "out" / "results.parquet")
    share = results[results["metric"] == "flattering_share"].groupby("proxy_bias")["value"].mean()
    assert share[0.0] < 0.2 and share[1.0] > 0.8
    assert "**Supported**" in (tmp_path / "out" / "report.md").read_text()
