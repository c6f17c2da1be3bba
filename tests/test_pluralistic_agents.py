"""agents.pluralistic: KL / MaxMin policies, EM mixture, PAL ideal-point mixture."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agents.pluralistic import (
    IdealPointMixture,
    PreferenceData,
    centre_rewards,
    cluster_purity,
    fit_em_mixture,
    fit_single_reward,
    kl_regularized_policy,
    maxmin_policy,
    policy_objective,
    preference_accuracy,
    win_rate,
)
from sandbox.population import Population
from sandbox.rewards import fit_linear_bradley_terry

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ----------------------------------------------------------------------- policies


def test_kl_policy_closed_form_by_hand():
    beta = 0.5
    ref = np.array([[0.5, 0.5], [0.2, 0.8]])
    r = np.array([[0.0, beta * math.log(2)], [1.0, 1.0]])
    pi = kl_regularized_policy(r, ref, beta)
    np.testing.assert_allclose(pi, [[1 / 3, 2 / 3], [0.2, 0.8]], rtol=1e-12)


def test_kl_policy_maximizes_the_objective():
    rng = np.random.default_rng(0)
    ref = rng.dirichlet(np.ones(5), size=3)
    r = rng.normal(size=(3, 5))
    pi = kl_regularized_policy(r, ref, 0.7)
    best = policy_objective(pi, r, ref, 0.7)[0]
    for _ in range(50):
        other = rng.dirichlet(np.ones(5), size=3)
        assert policy_objective(other, r, ref, 0.7)[0] < best
    # J(pi*) = beta * E_x log sum ref exp(r / beta)
    expected = 0.7 * np.mean(np.log((ref * np.exp(r / 0.7)).sum(1)))
    assert best == pytest.approx(expected, rel=1e-10)


def test_win_rate_by_hand():
    ref = np.array([[0.5, 0.5]])
    r = np.array([[1.0, 0.0]])
    # pi always picks the better response: beats it half the time, ties the other half
    assert win_rate(np.array([[1.0, 0.0]]), ref, r) == pytest.approx(0.75)
    assert win_rate(ref, ref, r) == pytest.approx(0.5)


def test_centred_rewards_have_zero_reference_mean():
    rng = np.random.default_rng(1)
    ref = rng.dirichlet(np.ones(4), size=6)
    r = rng.normal(size=(2, 6, 4)) + 10.0
    c = centre_rewards(r, ref)
    np.testing.assert_allclose((c * ref).sum(-1), 0.0, atol=1e-12)


def test_maxmin_equals_closed_form_when_one_group_binds():
    rng = np.random.default_rng(2)
    ref = rng.dirichlet(np.ones(6), size=10)
    r0 = rng.normal(size=(10, 6))
    r1 = r0 + 2.0 + 0.1 * rng.normal(size=(10, 6))  # group 1 is always better off
    beta = 0.5
    pi0 = kl_regularized_policy(r0, ref, beta)
    j = policy_objective(pi0, np.stack([r0, r1]), ref, beta)
    assert j[1] > j[0]  # group 0 binds at its own optimum, so pi0 is the max-min policy
    sol = maxmin_policy(np.stack([r0, r1]), ref, beta)
    assert sol.converged and sol.duality_gap < 1e-6
    np.testing.assert_allclose(sol.policy, pi0, atol=1e-5)
    np.testing.assert_allclose(sol.weights, [1.0, 0.0], atol=1e-4)


def test_maxmin_opposed_groups_stay_at_reference():
    rng = np.random.default_rng(3)
    ref = rng.dirichlet(np.ones(5), size=4)
    r = centre_rewards(rng.normal(size=(4, 5)), ref)
    sol = maxmin_policy(np.stack([r, -r]), ref, 1.0)
    # lambda . r = 0 at lambda = (1/2, 1/2): the policy is the reference, both get 0
    np.testing.assert_allclose(sol.weights, [0.5, 0.5], atol=1e-4)
    np.testing.assert_allclose(sol.policy, ref, atol=1e-4)
    np.testing.assert_allclose(sol.values, 0.0, atol=1e-6)


def test_maxmin_matches_brute_force_on_one_prompt():
    ref = np.array([[0.3, 0.3, 0.4]])
    r = np.array([[[2.0, 0.0, 0.5]], [[0.0, 1.5, 0.2]]])
    beta = 0.4
    sol = maxmin_policy(r, ref, beta)
    grid = np.linspace(1e-4, 1 - 1e-4, 400)
    p0, p1 = (g.ravel() for g in np.meshgrid(grid, grid))
    keep = p0 + p1 < 1
    pis = np.stack([p0[keep], p1[keep], 1 - p0[keep] - p1[keep]], axis=1)  # (M, 3)
    kl = (pis * np.log(pis / ref[0])).sum(1)
    best = float((pis @ r[:, 0, :].T - beta * kl[:, None]).min(axis=1).max())
    assert sol.values.min() >= best - 1e-9
    assert sol.values.min() == pytest.approx(best, abs=2e-3)
    # at the saddle point both groups are active and get the same value
    assert sol.values[0] == pytest.approx(sol.values[1], abs=1e-5)


def test_maxmin_no_worse_for_worst_group_than_single_reward():
    rng = np.random.default_rng(4)
    ref = rng.dirichlet(np.ones(8), size=20)
    r = rng.normal(size=(3, 20, 8)) * np.array([1.0, 2.0, 0.5])[:, None, None]
    beta = 0.3
    sol = maxmin_policy(r, ref, beta)
    assert sol.converged and sol.duality_gap < 1e-5
    pooled = kl_regularized_policy(r.mean(0), ref, beta)
    worst_single = policy_objective(pooled, r, ref, beta).min()
    assert sol.values.min() >= worst_single - 1e-9
    for g in range(3):
        own = kl_regularized_policy(r[g], ref, beta)
        assert sol.values.min() >= policy_objective(own, r, ref, beta).min() - 1e-9
    assert sol.dual_value >= sol.values.min() - 1e-12  # weak duality


def test_policy_input_validation():
    ref = np.array([[0.5, 0.5]])
    with pytest.raises(ValueError, match="beta"):
        kl_regularized_policy(np.zeros((1, 2)), ref, 0.0)
    with pytest.raises(ValueError, match="strictly positive distribution"):
        kl_regularized_policy(np.zeros((1, 2)), np.array([[1.0, 0.0]]), 1.0)
    with pytest.raises(ValueError, match=r"\(K, P, C\)"):
        maxmin_policy(np.zeros((1, 2)), ref, 1.0)


# ------------------------------------------------------------------ reward models


def _planted(n_users=60, pairs=40, shares=(0.7, 0.3), seed=0, noise_beta=5.0, model="bt"):
    """Users in groups with opposite linear rewards; labels from the Population."""
    centres = np.array([[2.0, 0.0, 1.0], [-2.0, 0.0, 1.0]])
    pop = Population.from_groups(n_users, list(shares), centres, 0.1, beta=noise_beta, seed=seed)
    rng = np.random.default_rng(seed + 100)
    users = np.repeat(np.arange(n_users), pairs)
    a = rng.normal(size=(users.size, 3))
    b = rng.normal(size=(users.size, 3))
    kind = "bradley_terry" if model == "bt" else "ideal_point"
    labels = pop.label(users, a, b, model=kind)
    return pop, PreferenceData(users, a, b, labels, n_users)


def test_single_reward_is_the_pooled_bradley_terry_fit():
    _, data = _planted()
    w = fit_single_reward(data, l2=1e-3)
    np.testing.assert_allclose(w, fit_linear_bradley_terry(data.diffs, data.labels, l2=1e-3))
    # the pooled reward follows the 70% majority on the contested axis
    assert w[0] > 0 and w[2] > 0


def test_em_starts_from_user_id_mod_k():
    _, data = _planted()
    res = fit_em_mixture(data, 2, max_iter=1)
    for k in range(2):
        mask = (data.users % 2) == k
        np.testing.assert_allclose(
            res.weights[k], fit_linear_bradley_terry(data.diffs[mask], data.labels[mask], l2=1e-3)
        )
    assert res.n_iter == 1


def test_em_recovers_planted_groups():
    pop, data = _planted()
    res = fit_em_mixture(data, 2)
    assert res.converged
    assert cluster_purity(res.assignment, pop.groups) == 1.0
    # each cluster's reward points the way of its group on the contested axis
    signs = {int(np.sign(res.weights[res.assignment[pop.groups == g][0]][0])) for g in (0, 1)}
    assert signs == {1, -1}
    # log-likelihood does not fall across E-steps (monotone up to the small L2 penalty)
    ll = res.log_likelihood
    assert all(b >= a - 1e-3 * abs(a) for a, b in zip(ll, ll[1:], strict=False))
    # a new minority-like user is assigned to the minority's cluster
    rng = np.random.default_rng(9)
    xa, xb = rng.normal(size=(10, 3)), rng.normal(size=(10, 3))
    lab = ((xa - xb) @ np.array([-2.0, 0.0, 1.0]) > 0).astype(float)
    minority_cluster = np.bincount(res.assignment[pop.groups == 1]).argmax()
    assert res.assign(xa - xb, lab) == minority_cluster


def test_cluster_purity_by_hand():
    assert cluster_purity([0, 0, 1, 1, 1], [0, 1, 1, 1, 0]) == pytest.approx(3 / 5)
    assert cluster_purity([0, 0, 0], [2, 2, 2]) == 1.0


def test_pal_fits_groups_and_adapts_to_new_users():
    centres = np.array([[1.5, 0.0], [-1.5, 0.0]])
    pop = Population.from_groups(60, [0.7, 0.3], centres, 0.1, beta=3.0, seed=1)
    rng = np.random.default_rng(5)
    users = np.repeat(np.arange(60), 30)
    a, b = rng.normal(size=(users.size, 2)), rng.normal(size=(users.size, 2))
    data = PreferenceData(users, a, b, pop.label(users, a, b, "ideal_point"), 60)
    pal = IdealPointMixture(2, 2, 60, seed=0, device="cpu")
    losses = pal.fit(data, steps=200)
    assert losses[-1] < losses[0]
    w = pal.user_weights()
    np.testing.assert_allclose(w.sum(1), 1.0)
    assert cluster_purity(w.argmax(1), pop.groups) >= 0.95
    # held-out accuracy of the training users against their true preferences
    ta, tb = rng.normal(size=(users.size, 2)), rng.normal(size=(users.size, 2))
    truth = pop.reward_differences(users, ta, tb, "ideal_point")
    assert preference_accuracy(pal.predict_logits(users, ta, tb), truth) > 0.85

    # unseen users: no pairs -> the uniform mixture; more pairs -> better predictions
    np.testing.assert_allclose(pal.adapt(np.zeros((0, 2)), np.zeros((0, 2)), []), [0.5, 0.5])
    z = np.array([-1.5, 0.1])  # a minority member never seen in training
    sa, sb = rng.normal(size=(40, 2)), rng.normal(size=(40, 2))
    slab = (((sb - z) ** 2).sum(1) > ((sa - z) ** 2).sum(1)).astype(float)
    qa, qb = rng.normal(size=(400, 2)), rng.normal(size=(400, 2))
    qtruth = ((qb - z) ** 2).sum(1) - ((qa - z) ** 2).sum(1)
    # the batched adaptation of several users (1, 5 and 20 pairs; one without pairs)
    shots = [1, 5, 20]
    many = pal.adapt(
        np.concatenate([sa[:k] for k in shots]),
        np.concatenate([sb[:k] for k in shots]),
        np.concatenate([slab[:k] for k in shots]),
        users=np.repeat([0, 1, 2], shots),
        n_users=4,
    )
    acc = [preference_accuracy(pal.logits_for(w, qa, qb), qtruth) for w in many[:3]]
    assert acc[2] > 0.9 and acc[2] >= acc[0]
    np.testing.assert_allclose(many[3], [0.5, 0.5])
    # ... equals adapting each user alone
    np.testing.assert_allclose(many[1], pal.adapt(sa[:5], sb[:5], slab[:5]), atol=1e-8)


def test_pal_is_seeded():
    _, data = _planted(n_users=10, pairs=10, model="ip")
    a = IdealPointMixture(2, 3, 10, seed=3, device="cpu")
    b = IdealPointMixture(2, 3, 10, seed=3, device="cpu")
    a.fit(data, steps=20)
    b.fit(data, steps=20)
    np.testing.assert_array_equal(a.ideal_points(), b.ideal_points())
