"""The PEBBLE / PARL loop on SB3 SAC: buffer relabelling, state entropy, segments, and a
tiny end-to-end run in which PARL with hypergradient "none" is PEBBLE exactly."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import pytest
import torch
from gymnasium import spaces

from agents.pbrl import PbRLSettings, PreferenceReplayBuffer, PreferenceSAC, SegmentStore
from envs.control import make

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _buffer(n: int, obs_dim: int = 3) -> PreferenceReplayBuffer:
    obs_space = spaces.Box(-10, 10, (obs_dim,), np.float32)
    act_space = spaces.Box(-1, 1, (2,), np.float32)
    return PreferenceReplayBuffer(n, obs_space, act_space, device="cpu")


def test_relabel_changes_every_stored_reward() -> None:
    buf = _buffer(50)
    buf.reward_fn = lambda o, a: o.sum(1) + a.sum(1)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(30, 3)).astype(np.float32)
    act = rng.uniform(-1, 1, (30, 2)).astype(np.float32)
    for t in range(30):
        # the environment's reward (here 123) is ignored: the learned reward is stored
        buf.add(
            obs[t : t + 1], obs[t : t + 1], act[t : t + 1], np.array([123.0]), np.array([0.0]), [{}]
        )
    np.testing.assert_allclose(buf.rewards[:30, 0], obs.sum(1) + act.sum(1), rtol=1e-6)
    before = buf.rewards[:30, 0].copy()
    buf.relabel(lambda o, a: 2.0 * o[:, 0] - a[:, 1] + 0.5)
    after = buf.rewards[:30, 0]
    np.testing.assert_allclose(after, 2 * obs[:, 0] - act[:, 1] + 0.5, rtol=1e-6)
    assert np.all(after != before)
    assert np.all(buf.rewards[30:] == 0)  # nothing beyond what is stored


def test_state_entropy_reward_is_knn_distance_over_running_std() -> None:
    buf = _buffer(10, obs_dim=1)
    for x in (0.0, 1.0, 3.0, 7.0):
        o = np.array([[x]], dtype=np.float32)
        buf.add(o, o, np.zeros((1, 2), np.float32), np.array([0.0]), np.array([0.0]), [{}])
    buf.state_entropy_k = 1
    reward = buf._state_entropy(torch.tensor([[0.0], [7.0], [3.0]]))
    knn = np.array([1.0, 4.0, 2.0])  # nearest *other* stored state
    # (SB3's RunningMeanStd starts from a tiny prior count, hence rtol)
    np.testing.assert_allclose(reward.numpy(), knn / knn.std(), rtol=1e-3)
    samples = buf._get_samples(np.array([0, 3]))
    assert samples.rewards.shape == (2, 1) and torch.all(samples.rewards > 0)


def test_segments_stay_inside_one_episode() -> None:
    store = SegmentStore(capacity=20, feature_dim=2)
    for t in range(33):  # episodes of 7 steps, wrapping the ring
        store.add(
            np.array([t], np.float32), np.array([0.0], np.float32), float(t), done=(t % 7 == 6)
        )
    idx = store.sample_segments(200, 4, np.random.default_rng(0))
    steps = store.segment_features(idx)[..., 0]
    assert np.all(np.diff(steps, axis=1) == 1)  # consecutive
    assert np.all(steps[:, 0] // 7 == steps[:, -1] // 7)  # same episode
    assert steps.min() >= 33 - 20  # only the window
    np.testing.assert_array_equal(store.teacher_rewards(idx), steps)
    with pytest.raises(ValueError, match="no complete segment of length 8"):
        store.sample_segments(1, 8, np.random.default_rng(0))


TINY = dict(
    feedback_budget=12,
    queries_per_session=5,
    session_interval=30,
    segment_length=10,
    unsup_steps=60,
    learning_starts=30,
    query_window=1000,
    reward_hidden=(16, 16),
    reward_epochs=3,
    net_arch=(16, 16),
    batch_size=32,
    buffer_size=1000,
    n_accuracy_pairs=20,
)


def _run(method: str, hypergradient: str = "covariance") -> PreferenceSAC:
    settings = PbRLSettings(method=method, hypergradient=hypergradient, **TINY)
    agent = PreferenceSAC(
        lambda: make("cartpole-swingup", hide_reward=True, action_repeat=2, max_episode_steps=40),
        settings,
        seed=3,
        device="cpu",
    )
    agent.learn(150, eval_interval=75, eval_episodes=1)
    agent.close()
    return agent


def test_parl_none_equals_pebble_end_to_end() -> None:
    pebble = _run("pebble")
    parl_none = _run("parl", "none")
    assert pebble.feedback_used == 12 and pebble.sessions == 3  # 5 + 5 + 2
    for a, b in zip(
        pebble.reward_model.parameters(), parl_none.reward_model.parameters(), strict=True
    ):
        assert torch.equal(a, b)
    for a, b in zip(pebble.sac.policy.parameters(), parl_none.sac.policy.parameters(), strict=True):
        assert torch.equal(a, b)
    assert [e.true_return for e in pebble.evaluations] == [
        e.true_return for e in parl_none.evaluations
    ]
    # the learner's buffer holds learned rewards only (tanh-bounded), never the true ones
    stored = pebble.buffer.rewards[: pebble.buffer.stored(), 0]
    np.testing.assert_allclose(
        stored,
        pebble.learned_reward(
            pebble.buffer.observations[: len(stored), 0], pebble.buffer.actions[: len(stored), 0]
        ),
        rtol=1e-5,
        atol=1e-6,
    )
    # the unrolled hypergradient runs in the loop and changes the reward update
    unrolled = _run("parl", "unrolled")
    assert unrolled.feedback_used == 12
    assert any(
        not torch.equal(a, b)
        for a, b in zip(
            pebble.reward_model.parameters(), unrolled.reward_model.parameters(), strict=True
        )
    )
    steps = [e.step for e in pebble.evaluations]
    assert steps == [75, 150]
    assert 0 <= pebble.evaluations[-1].reward_model_accuracy <= 1


def test_oracle_sac_sees_the_true_reward() -> None:
    agent = _run("sac_true_reward")
    assert agent.reward_model is None and agent.feedback_used == 0
    stored = agent.buffer.rewards[: agent.buffer.stored(), 0]
    assert stored.max() > 0  # cartpole-swingup pays a positive reward every step
    assert np.isnan(agent.evaluations[-1].reward_model_accuracy)
