"""Reward learners under the partial-return and regret models, evaluation, identifiability."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.reward_learning import (
    PartialReturnLearner,
    RegretLearner,
    build_policy_library,
    evaluate_weights,
    find_partial_return_twin,
    heldout_metrics,
    same_noiseless_preferences,
)
from envs.delivery import DeliveryMDP, random_mdp
from sandbox.preferences.segment_models import label_pairs, regret, sample_segment_pairs
from sandbox.rewards import preference_nll

GAMMA = 0.999


def test_soft_max_value_matches_exact_v_star_when_the_optimal_policy_is_in_the_library() -> None:
    for seed in range(4):
        mdp = random_mdp(seed)
        sol = mdp.solve(GAMMA)
        pi_star = sol.Q.argmax(axis=1)
        lib = build_policy_library(
            mdp,
            16,
            GAMMA,
            np.random.default_rng(seed),
            exclude_optimal_for=mdp.weights,
            extra_policies=pi_star,
        )
        tau = 1e-3
        v_hat = lib.soft_max_value(mdp.weights, tau)
        # the max over the library is exactly V*; the soft max adds at most tau log K
        assert np.all(v_hat >= sol.V - 1e-8)
        assert np.all(v_hat <= sol.V + tau * np.log(len(lib)) + 1e-8)
        # the exclusion leaves no policy that is optimal from every start state (the
        # state-wise maximum over several policies may still reach V*)
        excluded = build_policy_library(
            mdp, 16, GAMMA, np.random.default_rng(seed), exclude_optimal_for=mdp.weights
        )
        values = excluded.values(mdp.weights)[:, mdp.start_states]
        assert np.all(values <= sol.V[mdp.start_states] + 1e-8)
        assert np.all(np.any(values < sol.V[mdp.start_states] - 1e-6, axis=1))


def test_library_values_equal_policy_evaluation() -> None:
    mdp = random_mdp(2)
    lib = build_policy_library(mdp, 8, GAMMA, np.random.default_rng(0))
    w = np.random.default_rng(1).normal(size=6)
    for k in range(len(lib)):
        onehot = np.eye(4)[lib.actions[:, k]]
        np.testing.assert_allclose(
            lib.values(w)[k], mdp.evaluate(onehot, GAMMA, weights=w), atol=1e-7
        )


def test_regret_gradient_matches_torch_autograd() -> None:
    rng = np.random.default_rng(0)
    mdp = random_mdp(3)
    sol = mdp.solve(GAMMA)
    pairs = sample_segment_pairs(mdp.next_state, mdp.start_states, 400, 3, rng)
    y = label_pairs("regret", pairs, mdp.reward(), 1.0, rng, sol.V, GAMMA)
    learner = RegretLearner(
        build_policy_library(mdp, 32, GAMMA, rng), tau=0.5, l2=1e-3, device="cpu"
    )
    w = rng.normal(size=6)
    loss, grad = learner.loss_and_grad(w, learner._arrays(mdp, pairs), y)
    wt = torch.tensor(w, requires_grad=True)
    ref = (
        preference_nll(learner.logits_torch(mdp, pairs, wt), torch.as_tensor(y))
        + 1e-3 * (wt * wt).sum()
    )
    ref.backward()
    assert loss == pytest.approx(float(ref.detach()), rel=1e-10)
    np.testing.assert_allclose(grad, wt.grad.numpy(), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(
        learner.logits(mdp, pairs, w),
        learner.logits_torch(mdp, pairs, torch.tensor(w)).numpy(),
        atol=1e-9,
    )


def test_regret_logits_with_exact_values_are_regret_differences() -> None:
    mdp = random_mdp(4)
    sol = mdp.solve(GAMMA)
    pairs = sample_segment_pairs(mdp.next_state, mdp.start_states, 200, 3, np.random.default_rng(0))
    lib = build_policy_library(
        mdp, 4, GAMMA, np.random.default_rng(0), extra_policies=sol.Q.argmax(axis=1)
    )
    learner = RegretLearner(lib, tau=1e-9, device="cpu")
    reg = regret(mdp.reward(), sol.V, pairs.states, pairs.actions, GAMMA)
    np.testing.assert_allclose(
        learner.logits(mdp, pairs, mdp.weights), reg[:, 1] - reg[:, 0], atol=1e-5
    )


def test_regret_learner_is_near_optimal_on_noiseless_regret_labels() -> None:
    near, n = 0, 8
    for i in range(n):
        mdp = random_mdp(np.random.SeedSequence([100, i]))
        sol = mdp.solve(GAMMA)
        rng = np.random.default_rng(i)
        pairs = sample_segment_pairs(mdp.next_state, mdp.start_states, 300, 3, rng)
        y = label_pairs("regret", pairs, mdp.reward(), 0.0, rng, sol.V, GAMMA)
        lib = build_policy_library(mdp, 64, GAMMA, rng, exclude_optimal_for=mdp.weights)
        w = RegretLearner(lib, device="cpu").fit(
            mdp, pairs, y, init=PartialReturnLearner().fit(mdp, pairs, y)
        )
        near += evaluate_weights(mdp, w, GAMMA, sol).near_optimal
    assert near >= 6, f"only {near}/{n} MDPs near-optimal"


def test_partial_return_learner_recovers_weights_from_boltzmann_labels() -> None:
    true_w = np.array([-1.0, 3.0, -2.0, 1.0, -1.0, -2.0])
    mdp = DeliveryMDP.from_layout("C.R.S\n.M.C.\nR..MG\n.C.R.", weights=true_w)
    rng = np.random.default_rng(0)
    pairs = sample_segment_pairs(mdp.next_state, mdp.start_states, 6000, 3, rng)
    y = label_pairs("partial_return", pairs, mdp.reward(), 1.0, rng)
    w = PartialReturnLearner(l2=0.0).fit(mdp, pairs, y)
    np.testing.assert_allclose(w, true_w, atol=0.25)


def test_evaluation_scales_between_random_and_optimal() -> None:
    mdp = random_mdp(6)
    assert evaluate_weights(mdp, mdp.weights).scaled_return == pytest.approx(1.0)
    assert evaluate_weights(mdp, 3.0 * mdp.weights).near_optimal
    zero = evaluate_weights(mdp, np.zeros(6))  # every action ties: the uniform random policy
    assert zero.scaled_return == pytest.approx(0.0, abs=1e-9)
    assert not zero.near_optimal
    assert evaluate_weights(mdp, -mdp.weights).scaled_return < 0.5


def test_heldout_metrics() -> None:
    acc, ll = heldout_metrics(np.array([2.0, -1.0, 3.0, 0.0]), np.array([1.0, 0.0, 0.0, 0.5]))
    assert acc == pytest.approx(2 / 3)  # the tie label is not scored for accuracy
    expected = -np.mean(
        [np.log1p(np.exp(-2.0)), np.log1p(np.exp(-1.0)), np.log1p(np.exp(3.0)), np.log(2.0)]
    )
    assert ll == pytest.approx(expected)


def test_same_noiseless_preferences() -> None:
    a = np.array([1.0, 2.0, 2.0, 5.0])
    assert same_noiseless_preferences(a, 3 * a + 1)
    assert same_noiseless_preferences(a, np.array([0.0, 7.0, 7.0, 9.0]))
    assert not same_noiseless_preferences(a, np.array([1.0, 2.0, 2.5, 5.0]))  # breaks a tie
    assert not same_noiseless_preferences(a, np.array([3.0, 2.0, 2.0, 5.0]))  # flips an order


def test_partial_return_twin_is_real() -> None:
    """Independent check: sampled pairs get identical PR labels, yet optima and regret differ."""
    mdp = DeliveryMDP.from_layout("CC...\n....G")
    twin = find_partial_return_twin(mdp, 3, GAMMA)
    assert twin is not None and twin.labels_equal
    assert twin.n_segments == 9 * 4**3 and twin.regret_pairs_compared == 576 * 575 // 2
    assert twin.regret_pairs_differing > 0
    other = mdp.with_weights(twin.twin_weights)
    rng = np.random.default_rng(0)
    pairs = sample_segment_pairs(mdp.next_state, mdp.start_states, 20000, 3, rng)
    pr_a = label_pairs("partial_return", pairs, mdp.reward(), 0.0, rng)
    pr_b = label_pairs("partial_return", pairs, other.reward(), 0.0, rng)
    np.testing.assert_array_equal(pr_a, pr_b)
    reg_a = label_pairs("regret", pairs, mdp.reward(), 0.0, rng, mdp.solve(GAMMA).V, GAMMA)
    reg_b = label_pairs("regret", pairs, other.reward(), 0.0, rng, other.solve(GAMMA).V, GAMMA)
    assert np.mean(reg_a != reg_b) > 0.01
    assert twin.twin_scaled_return < 0.9
    assert not np.array_equal(
        mdp.solve(GAMMA).optimal_actions(), other.solve(GAMMA).optimal_actions()
    )


def test_learner_input_errors() -> None:
    mdp = random_mdp(1)
    rng = np.random.default_rng(0)
    pairs = sample_segment_pairs(mdp.next_state, mdp.start_states, 10, 3, rng)
    learner = RegretLearner(build_policy_library(mdp, 4, GAMMA, rng), device="cpu")
    with pytest.raises(ValueError, match="labels must be"):
        learner.fit(mdp, pairs, np.full(10, 2.0))
    with pytest.raises(ValueError, match="zero preferences"):
        learner.fit(mdp, pairs[:0], np.zeros(0))
    with pytest.raises(ValueError, match="at least one policy"):
        build_policy_library(mdp, 0, GAMMA, rng)
