"""DM Control and Meta-World envs: API conformance, seeding, episode structure, reward hiding."""

from __future__ import annotations

import os
import warnings

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401  (registers the ids)
from envs.control import (
    DMC_TASKS,
    METAWORLD_TASKS,
    HiddenReward,
    dmc_id,
    make,
    metaworld_id,
    task_id,
)

ALL_IDS = [dmc_id(d, t) for d, t in DMC_TASKS] + [metaworld_id(t) for t in METAWORLD_TASKS]


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_check_env_is_clean(env_id: str) -> None:
    env = gym.make(env_id)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped, skip_render_check=True)
    messages = [str(w.message) for w in caught if "absl" not in str(w.filename)]
    assert messages == []
    assert env.observation_space.dtype == np.float32
    assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    env.close()


def _rollout(env: gym.Env, seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(123)
    observations, rewards = [obs], []
    for _ in range(n):
        obs, reward, *_ = env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
        observations.append(obs)
        rewards.append(reward)
    return np.stack(observations), np.asarray(rewards)


@pytest.mark.parametrize("env_id", [dmc_id("walker", "walk"), metaworld_id("door-open")])
def test_reset_seed_reproduces(env_id: str) -> None:
    env = gym.make(env_id)
    obs_a, rew_a = _rollout(env, seed=3, n=5)
    obs_b, rew_b = _rollout(env, seed=3, n=5)
    np.testing.assert_array_equal(obs_a, obs_b)
    np.testing.assert_array_equal(rew_a, rew_b)
    obs_c, _ = _rollout(env, seed=4, n=0)
    assert not np.array_equal(obs_a[0], obs_c[0])
    env.close()


def test_dmc_flat_observation_matches_dm_control() -> None:
    from dm_control import suite

    env = gym.make(dmc_id("cartpole", "swingup"))
    obs, _ = env.reset(seed=7)
    raw = suite.load("cartpole", "swingup", task_kwargs={"random": 7})
    ts = raw.reset()
    expected = np.concatenate([ts.observation["position"], ts.observation["velocity"]])
    np.testing.assert_allclose(obs, expected.astype(np.float32))
    action = np.array([0.3], dtype=np.float32)
    obs, reward, terminated, truncated, _ = env.step(action)
    ts = raw.step(action.astype(np.float64))
    expected = np.concatenate([ts.observation["position"], ts.observation["velocity"]])
    np.testing.assert_allclose(obs, expected.astype(np.float32))
    assert reward == pytest.approx(ts.reward)
    assert not terminated and not truncated


@pytest.mark.parametrize(("domain", "task"), DMC_TASKS)
@pytest.mark.parametrize("action_repeat", [1, 3])
def test_dmc_step_is_dm_control_step(domain: str, task: str, action_repeat: int) -> None:
    """Our step drives the task and physics itself; it must be dm_control's env.step."""
    from dm_control import suite

    ours = gym.make(dmc_id(domain, task), action_repeat=action_repeat).unwrapped
    raw = suite.load(domain, task, task_kwargs={"random": 5})
    obs, _ = ours.reset(seed=5)
    ts = raw.reset()
    keys = list(raw.observation_spec())

    def flat(observation: dict) -> np.ndarray:
        return np.concatenate([np.ravel(observation[k]) for k in keys]).astype(np.float32)

    np.testing.assert_array_equal(obs, flat(ts.observation))
    spec = raw.action_spec()
    rng = np.random.default_rng(0)
    for _ in range(12):
        action = rng.uniform(-1, 1, spec.shape).astype(np.float32)
        obs, reward, terminated, truncated, _ = ours.step(action)
        raw_action = spec.minimum + (action.astype(np.float64) + 1) * 0.5 * (
            spec.maximum - spec.minimum
        )
        raw_reward = 0.0
        for _ in range(action_repeat):
            ts = raw.step(raw_action)
            raw_reward += ts.reward
        np.testing.assert_array_equal(obs, flat(ts.observation))
        assert reward == raw_reward
        assert not terminated and not truncated


def test_dmc_discount_zero_is_termination() -> None:
    env = gym.make(dmc_id("cartpole", "swingup"))
    env.reset(seed=0)
    task = env.unwrapped._task
    task.get_termination = lambda physics: 0.0  # a task that ends the episode
    _, _, terminated, truncated, _ = env.step(np.zeros(1, dtype=np.float32))
    assert terminated and not truncated
    env.close()


def test_dmc_action_repeat_sums_rewards_and_truncates_at_1000_control_steps() -> None:
    single = gym.make(dmc_id("cartpole", "swingup"))
    double = gym.make(dmc_id("cartpole", "swingup"), action_repeat=4)
    single.reset(seed=1)
    double.reset(seed=1)
    action = np.array([0.5], dtype=np.float32)
    total = sum(single.step(action)[1] for _ in range(4))
    obs_single = single.step(action)[0]
    obs_double, reward_double, *_ = double.step(action)
    assert reward_double == pytest.approx(total)
    steps, done = 1, False
    while not done:
        _, _, terminated, truncated, _ = double.step(action)
        steps += 1
        done = terminated or truncated
        assert not terminated
    assert truncated and steps == 1000 // 4
    assert obs_single.shape == obs_double.shape
    with pytest.raises(ValueError, match="action_repeat"):
        gym.make(dmc_id("cartpole", "swingup"), action_repeat=0)


def test_metaworld_goal_observable_resampled_and_500_step_episodes() -> None:
    env = gym.make(metaworld_id("reach"))
    goals = set()
    for seed in range(6):
        obs, info = env.reset(seed=seed)
        np.testing.assert_allclose(obs[-3:], env.unwrapped.goal, atol=1e-6)
        assert np.any(obs[-3:] != 0)
        goals.add(info["goal_index"])
    assert len(goals) > 1  # the goal is re-drawn from the fixed set
    steps, truncated = 0, False
    action = np.zeros(4, dtype=np.float32)
    while not truncated:
        _, _, terminated, truncated, info = env.step(action)
        assert not terminated and "success" in info
        steps += 1
    assert steps == 500
    env.close()


@pytest.mark.parametrize("env_id", [dmc_id("point_mass", "easy"), metaworld_id("button-press")])
def test_rgb_array_render(env_id: str) -> None:
    env = gym.make(env_id, render_mode="rgb_array", width=48, height=32)
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (32, 48, 3) and frame.dtype == np.uint8 and frame.max() > 0
    env.close()


def test_hidden_reward_cannot_leak() -> None:
    plain = gym.make(dmc_id("walker", "walk"))
    hidden = make("walker-walk", hide_reward=True)
    assert isinstance(hidden, HiddenReward)
    obs_p, _ = plain.reset(seed=5)
    obs_h, info_h = hidden.reset(seed=5)
    np.testing.assert_array_equal(obs_p, obs_h)
    assert "true_reward" not in info_h
    rng = np.random.default_rng(0)
    true_rewards = []
    for _ in range(4):
        action = rng.uniform(-1, 1, 6).astype(np.float32)
        obs_p, rew_p, *_ = plain.step(action)
        obs_h, rew_h, _, _, info = hidden.step(action)
        np.testing.assert_array_equal(obs_p, obs_h)  # observations carry nothing extra
        assert rew_h == 0.0
        assert info["true_reward"] == rew_p
        true_rewards.append(rew_p)
    assert any(r != 0 for r in true_rewards)  # so that "0" above is hiding, not agreeing

    seen = []

    def learned(obs: np.ndarray, action: np.ndarray) -> float:
        seen.append((obs.copy(), action.copy()))
        return float(obs.sum() + action.sum())

    hidden.set_reward_fn(learned)
    obs0, _ = hidden.reset(seed=6)
    action = np.full(6, 0.25, dtype=np.float32)
    _, reward, _, _, info = hidden.step(action)
    assert reward == pytest.approx(obs0.sum() + action.sum(), rel=1e-6)
    np.testing.assert_array_equal(seen[-1][0], obs0)  # rewarded on the state acted in
    assert "true_reward" in info


def test_task_names() -> None:
    assert task_id("cartpole-swingup") == "sandbox/DMC-cartpole-swingup-v0"
    assert task_id("point_mass-easy") == "sandbox/DMC-point_mass-easy-v0"
    assert task_id("metaworld-sweep-into") == "sandbox/MetaWorld-sweep-into-v0"
    with pytest.raises(ValueError, match="unknown task 'walker-fly'"):
        task_id("walker-fly")
    with pytest.raises(ValueError, match="unknown Meta-World task"):
        task_id("metaworld-fly")
