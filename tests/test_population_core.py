"""sandbox.population: label probabilities, seeding, builders and validation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sandbox.population import Annotator, Population, validate_shares


def _logistic(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def test_bradley_terry_probabilities_match_hand_computation():
    values = np.array([[1.0, 0.0], [0.5, -2.0]])
    pop = Population(values, beta=np.array([2.0, 0.5]), bias=np.array([0.0, 0.3]), seed=0)
    a = np.array([[1.0, 1.0], [0.0, 1.0], [2.0, 0.0]])
    b = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 0.0]])
    p = pop.label_probabilities(np.array([0, 1, 1]), a, b)
    # annotator 0: r(A)-r(B) = 1 -> logistic(2 * 1)
    # annotator 1: w.(A-B) = 0.5*(-1) + (-2)*1 = -2.5 -> logistic(0.5 * -2.5 + 0.3)
    # annotator 1, identical items -> logistic(bias) = logistic(0.3)
    expected = [_logistic(2.0), _logistic(-1.25 + 0.3), _logistic(0.3)]
    np.testing.assert_allclose(p, expected, rtol=1e-12)


def test_ideal_point_probabilities_match_hand_computation():
    pop = Population(np.array([[0.0, 0.0], [1.0, 1.0]]), beta=1.5, seed=0)
    a = np.array([[1.0, 0.0], [1.0, 0.0]])
    b = np.array([[0.0, 2.0], [0.0, 2.0]])
    p = pop.label_probabilities(np.array([0, 1]), a, b, model="ideal_point")
    # annotator at (0,0): -|A|^2 = -1, -|B|^2 = -4 -> diff 3
    # annotator at (1,1): -|A-z|^2 = -1, -|B-z|^2 = -2 -> diff 1
    np.testing.assert_allclose(p, [_logistic(4.5), _logistic(1.5)], rtol=1e-12)
    # the closer item is always the likelier choice
    assert np.all(p > 0.5)


def test_noiseless_and_random_annotators():
    pop = Population(np.array([[1.0], [1.0], [1.0]]), beta=np.array([np.inf, np.inf, 0.0]))
    p = pop.label_probabilities(
        np.array([0, 1, 2]), np.array([[2.0], [1.0], [5.0]]), np.array([[1.0], [1.0], [0.0]])
    )
    np.testing.assert_array_equal(p, [1.0, 0.5, 0.5])


def test_single_item_broadcasts_and_agent_path_agrees():
    rng = np.random.default_rng(3)
    pop = Population(rng.normal(size=(4, 3)), beta=rng.uniform(0.5, 2, 4), seed=1)
    a = rng.normal(size=(4, 3))
    b = rng.normal(size=3)
    idx = np.arange(4)
    p = pop.label_probabilities(idx, a, b)
    np.testing.assert_allclose(p, pop.label_probabilities(idx, a, np.tile(b, (4, 1))))
    # the thin agent sees the same numbers: noiseless agents label deterministically
    pop.beta[:] = np.inf
    p_inf = pop.label_probabilities(idx, a, b)
    agents = sorted(pop.agents, key=lambda ag: ag.index)
    for ag in agents:
        assert isinstance(ag, Annotator)
        assert ag.label(a[ag.index], b)[0] == p_inf[ag.index]


def test_labels_follow_probabilities():
    pop = Population(np.array([[1.0]]), beta=1.0, seed=7)
    q = 200_000
    labels = pop.label(np.zeros(q, dtype=int), np.full((q, 1), 0.5), np.zeros((q, 1)))
    assert set(np.unique(labels)) <= {0.0, 1.0}
    p = _logistic(0.5)
    assert abs(labels.mean() - p) < 4 * math.sqrt(p * (1 - p) / q)


def test_agents_are_views_of_the_arrays():
    pop = Population(np.array([[1.0, 2.0], [3.0, 4.0]]), groups=np.array([0, 1]), beta=2.0)
    ag = next(a for a in pop.agents if a.index == 1)
    assert ag.group == 1 and ag.beta == 2.0 and ag.bias == 0.0
    pop.values[1, 0] = 9.0
    assert ag.values[0] == 9.0
    ag.values[1] = -1.0
    assert pop.values[1, 1] == -1.0
    assert len(pop.agents) == 2
    assert len(Population(np.zeros((5, 2)), create_agents=False).agents) == 0


def test_from_groups_sizes_centres_and_spread():
    centres = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    pop = Population.from_groups(10, [0.55, 0.3, 0.15], centres, spread=0.0, seed=0)
    # quotas 5.5, 3.0, 1.5 -> floors 5, 3, 1, one seat left: a tie 0.5 vs 0.5 -> group 0
    np.testing.assert_array_equal(pop.group_sizes(), [6, 3, 1])
    np.testing.assert_array_equal(pop.values, centres[pop.groups])
    np.testing.assert_allclose(pop.group_means(), centres)
    np.testing.assert_allclose(pop.group_dispersion(), 0.0)

    big = Population.from_groups(
        20_000, [0.8, 0.2], centres[:2], spread=0.5, seed=1, create_agents=False
    )
    np.testing.assert_array_equal(big.group_sizes(), [16_000, 4_000])
    np.testing.assert_allclose(big.group_means(), centres[:2], atol=0.03)
    np.testing.assert_allclose(big.group_dispersion(), 0.5 * math.sqrt(2), rtol=0.02)


def test_seeding_is_reproducible():
    def make(seed):
        pop = Population.from_groups(50, [0.7, 0.3], np.eye(2), spread=1.0, seed=seed)
        idx = pop.rng.integers(0, 50, 100)
        lab = pop.label(idx, np.ones((100, 2)), np.zeros((100, 2)))
        pop.step(social="degroot", social_rate=0.1, noise=0.2)
        return pop.values.copy(), lab

    v1, l1 = make(5)
    v2, l2 = make(5)
    v3, _ = make(6)
    np.testing.assert_array_equal(v1, v2)
    np.testing.assert_array_equal(l1, l2)
    assert not np.array_equal(v1, v3)


@pytest.mark.parametrize(
    ("shares", "match"),
    [
        ([0.0, 1.0], r"shares\[0\]=0\.0 is outside \(0, 1\)"),
        ([1.2, -0.2], r"shares\[0\]=1\.2 is outside \(0, 1\)"),
        ([0.5, -0.1, 0.6], r"shares\[1\]=-0\.1 is outside \(0, 1\)"),
        ([0.5, float("nan")], r"shares\[1\]=nan is outside"),
        ([0.5, 0.4], r"must sum to 1, got 0\.9"),
        ([0.7, 0.7], r"must sum to 1, got 1\.4"),
        ([], r"non-empty"),
    ],
)
def test_bad_shares_are_refused(shares, match):
    with pytest.raises(ValueError, match=match):
        Population.from_groups(10, shares, np.zeros((max(len(shares), 1), 2)))


def test_single_group_share_one_is_allowed():
    np.testing.assert_array_equal(validate_shares([1.0]), [1.0])


def test_input_validation_messages():
    with pytest.raises(ValueError, match="2-D"):
        Population(np.zeros(3))
    with pytest.raises(ValueError, match="groups must have shape"):
        Population(np.zeros((3, 1)), groups=np.zeros(2, dtype=int))
    with pytest.raises(ValueError, match="beta"):
        Population(np.zeros((3, 1)), beta=-1.0)
    with pytest.raises(ValueError, match="centres must have shape"):
        Population.from_groups(10, [0.5, 0.5], np.zeros((3, 2)))
    pop = Population(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="unknown label model 'logit'"):
        pop.label_probabilities(np.array([0]), np.zeros((1, 2)), np.zeros((1, 2)), model="logit")
    with pytest.raises(ValueError, match=r"item_a must have shape \(1, 2\)"):
        pop.label_probabilities(np.array([0]), np.zeros((1, 3)), np.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 3\)"):
        pop.label_probabilities(np.array([3]), np.zeros((1, 2)), np.zeros((1, 2)))


def test_datacollector_records_group_statistics():
    pop = Population.from_groups(4, [0.5, 0.5], np.array([[0.0], [2.0]]), seed=0)
    pop.step(pull_targets=[(np.array([1.0]), 0.5)])
    df = pop.datacollector.get_model_vars_dataframe()
    assert len(df) == 2  # at construction and after the step
    np.testing.assert_allclose(df["group_means"].iloc[0], [[0.0], [2.0]])
    np.testing.assert_allclose(df["group_means"].iloc[1], [[0.5], [1.5]])
    assert pop.steps == 1


def test_statistics_off_records_nothing_and_steps_the_same():
    values = np.array([[0.0], [2.0], [4.0]])
    kept = Population(values, seed=1)
    bare = Population(values, seed=1, collect_statistics=False)
    for pop in (kept, bare):
        pop.step(
            pull_targets=[(np.array([1.0]), 0.5)], social="degroot", social_rate=0.2, noise=0.1
        )
    np.testing.assert_array_equal(bare.values, kept.values)
    assert len(kept.datacollector.get_model_vars_dataframe()) == 2
    assert len(bare.datacollector.get_model_vars_dataframe()) == 0


def test_reward_differences_are_the_noiseless_rewards():
    pop = Population(np.array([[1.0, 2.0]]), beta=0.5, bias=np.array([1.0]))
    a, b = np.array([[1.0, 1.0]]), np.array([[0.0, 0.0]])
    # Bradley-Terry: w . (A - B) = 3; ideal point: |B - z|^2 - |A - z|^2 = 5 - 1 = 4
    np.testing.assert_allclose(pop.reward_differences(np.array([0]), a, b), [3.0])
    np.testing.assert_allclose(pop.reward_differences(np.array([0]), a, b, "ideal_point"), [4.0])
    # beta and bias act only on the probabilities
    np.testing.assert_allclose(
        pop.label_probabilities(np.array([0]), a, b), [_logistic(0.5 * 3.0 + 1.0)]
    )
