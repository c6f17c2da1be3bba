"""Partial-return and regret preference models over segment pairs."""

from __future__ import annotations

import numpy as np
import pytest

from envs.delivery import DeliveryMDP, random_mdp
from sandbox.preferences.segment_models import (
    SegmentPairs,
    all_segments,
    label_pairs,
    label_pairs_loop,
    partial_return,
    preference_probability,
    regret,
    regret_from_advantage,
    rollout,
    sample_segment_pairs,
    segment_features,
)

UP, RIGHT, DOWN, LEFT = range(4)


@pytest.fixture
def tiny() -> DeliveryMDP:
    return DeliveryMDP.from_layout("..G\n.S.\n...")


def _pair(
    mdp: DeliveryMDP, seg1: tuple[int, list[int]], seg2: tuple[int, list[int]]
) -> SegmentPairs:
    starts = np.array([[seg1[0], seg2[0]]])
    actions = np.array([[seg1[1], seg2[1]]])
    return SegmentPairs(rollout(mdp.next_state, starts, actions), actions)


def test_hand_computed_regret_and_partial_return(tiny: DeliveryMDP) -> None:
    sol = tiny.solve(gamma=0.9)
    r = tiny.reward()
    # into the sheep: down to 3, right into 4 (absorbed), then anything
    bad = _pair(tiny, (0, [DOWN, RIGHT, UP]), (0, [RIGHT, RIGHT, UP]))
    assert bad.states[0, 0].tolist() == [0, 3, 4, 4]
    assert bad.states[0, 1].tolist() == [0, 1, 2, 2]
    reg = regret(r, sol.V, bad.states, bad.actions, 0.9)[0]
    # V*(0) = 43.1; return = -1 + 0.9 * (-51) = -46.9; V*(sheep) = 0 -> regret 90
    assert reg[0] == pytest.approx(90.0)
    assert reg[1] == pytest.approx(0.0, abs=1e-10)  # optimal segment
    pr = partial_return(r, bad.states, bad.actions)[0]
    assert pr.tolist() == [-52.0, 48.0]


def test_regret_forms_agree_on_deterministic_mdps() -> None:
    rng = np.random.default_rng(0)
    for seed in range(5):
        mdp = random_mdp(seed)
        sol = mdp.solve(0.999)
        pairs = sample_segment_pairs(mdp.next_state, mdp.start_states, 2000, 4, rng)
        a = regret(mdp.reward(), sol.V, pairs.states, pairs.actions, 0.999)
        b = regret_from_advantage(sol.advantage, pairs.states, pairs.actions, 0.999)
        np.testing.assert_allclose(a, b, atol=1e-9)
        assert a.min() >= -1e-9


def test_optimal_segments_have_zero_regret() -> None:
    mdp = random_mdp(3)
    sol = mdp.solve(0.999)
    pi = sol.Q.argmax(axis=1)
    starts = mdp.start_states
    actions = np.empty((len(starts), 5), dtype=np.int64)
    s = starts.copy()
    for t in range(5):
        actions[:, t] = pi[s]
        s = mdp.next_state[s, pi[s]]
    states = rollout(mdp.next_state, starts, actions)
    np.testing.assert_allclose(regret(mdp.reward(), sol.V, states, actions, 0.999), 0.0, atol=1e-9)


def test_partial_return_is_the_sum_of_weighted_features() -> None:
    mdp = random_mdp(7)
    pairs = sample_segment_pairs(mdp.next_state, mdp.start_states, 500, 3, np.random.default_rng(1))
    phi = segment_features(mdp.features, pairs.states, pairs.actions)  # (N, 2, F)
    np.testing.assert_allclose(
        partial_return(mdp.reward(), pairs.states, pairs.actions), phi @ mdp.weights
    )


def test_temperature_zero_is_the_noiseless_limit_with_ties() -> None:
    mdp = random_mdp(5)
    sol = mdp.solve(0.999)
    pairs = sample_segment_pairs(
        mdp.next_state, mdp.start_states, 3000, 3, np.random.default_rng(2)
    )
    for model in ("partial_return", "regret"):
        p0 = preference_probability(model, pairs, mdp.reward(), 0.0, sol.V, 0.999)
        p_small = preference_probability(model, pairs, mdp.reward(), 1e-6, sol.V, 0.999)
        decided = p0 != 0.5
        assert decided.any() and (~decided).any()  # both strict preferences and ties occur
        np.testing.assert_allclose(p_small[decided], p0[decided], atol=1e-12)
        np.testing.assert_allclose(p_small[~decided], 0.5)
        labels = label_pairs(
            model, pairs, mdp.reward(), 0.0, np.random.default_rng(0), sol.V, 0.999
        )
        np.testing.assert_array_equal(labels, p0)
        # the per-pair Python reference agrees exactly
        np.testing.assert_array_equal(
            label_pairs_loop(model, pairs[:300], mdp.reward(), sol.V, 0.999), p0[:300]
        )


def test_boltzmann_labels_follow_the_probabilities() -> None:
    mdp = random_mdp(5)
    sol = mdp.solve(0.999)
    pairs = sample_segment_pairs(
        mdp.next_state, mdp.start_states, 20000, 3, np.random.default_rng(3)
    )
    p = preference_probability("regret", pairs, mdp.reward(), 5.0, sol.V, 0.999)
    y = label_pairs("regret", pairs, mdp.reward(), 5.0, np.random.default_rng(4), sol.V, 0.999)
    assert abs(y.mean() - p.mean()) < 0.01
    assert set(np.unique(y)) <= {0.0, 0.5, 1.0}


def test_segment_pair_sampling_is_distinct_and_seeded() -> None:
    mdp = DeliveryMDP.from_layout("...\n..G")
    a = sample_segment_pairs(mdp.next_state, mdp.start_states, 5000, 3, np.random.default_rng(11))
    b = sample_segment_pairs(mdp.next_state, mdp.start_states, 5000, 3, np.random.default_rng(11))
    assert len(a) == 5000 and a.length == 3
    np.testing.assert_array_equal(a.states, b.states)
    np.testing.assert_array_equal(a.actions, b.actions)
    rows = np.concatenate([a.states[:, :, :1], a.actions], axis=2)  # (N, 2, 1 + k)
    seg1, seg2 = rows[:, 0].tolist(), rows[:, 1].tolist()
    assert all(x != y for x, y in zip(seg1, seg2, strict=True))
    unordered = {tuple(sorted((tuple(x), tuple(y)))) for x, y in zip(seg1, seg2, strict=True)}
    assert len(unordered) == 5000
    assert set(a.states[:, :, 0].ravel()) <= set(mdp.start_states.tolist())
    # long segments take the row-comparison path and are still distinct
    c = sample_segment_pairs(mdp.next_state, mdp.start_states, 300, 20, np.random.default_rng(1))
    assert len(c) == 300 and c.length == 20


def test_all_segments_enumerates_every_action_sequence() -> None:
    mdp = DeliveryMDP.from_layout("..G")
    states, actions = all_segments(mdp.next_state, mdp.start_states, 2)
    assert states.shape == (2 * 16, 3) and actions.shape == (32, 2)
    assert len({(s[0], *a) for s, a in zip(states.tolist(), actions.tolist(), strict=True)}) == 32


def test_bad_inputs_raise_clear_errors() -> None:
    mdp = DeliveryMDP.from_layout("..G")
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="n_pairs must be >= 0"):
        sample_segment_pairs(mdp.next_state, mdp.start_states, -1, 3, rng)
    with pytest.raises(ValueError, match="only 28 exist"):
        sample_segment_pairs(mdp.next_state, mdp.start_states, 100, 1, rng)
    with pytest.raises(ValueError, match="no start state"):
        sample_segment_pairs(mdp.next_state, np.array([], dtype=int), 10, 3, rng)
    pairs = sample_segment_pairs(mdp.next_state, mdp.start_states, 5, 2, rng)
    with pytest.raises(ValueError, match="unknown preference model 'return'"):
        preference_probability("return", pairs, mdp.reward(), 0.0)
    with pytest.raises(ValueError, match="needs the optimal values"):
        preference_probability("regret", pairs, mdp.reward(), 0.0)
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        preference_probability("partial_return", pairs, mdp.reward(), -1.0)
