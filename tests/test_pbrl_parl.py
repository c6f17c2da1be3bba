"""PARL's covariance hypergradient against the exact gradient on a tabular soft-optimal MDP."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from agents.pbrl import (
    PbRLSettings,
    covariance_surrogate,
    pair_utilities,
    score_surrogate,
    unrolled_segment_log_probs,
    update_reward_model,
)
from sandbox.rewards import EnsembleRewardModel

S, A, T, ALPHA = 3, 2, 3, 0.7
# deterministic dynamics, one start state (the setting where rho ~ exp(R / alpha) is exact)
NEXT = torch.tensor([[1, 2], [2, 0], [0, 1]])
S0 = 0
TRUE_REWARD = torch.tensor([[0.0, 1.0], [0.5, -0.5], [1.0, 0.2]], dtype=torch.float64)


@pytest.fixture(autouse=True)
def _float64():
    """Exact comparisons in float64, one torch thread (small models on a shared machine);
    both restored afterwards for the rest of the suite."""
    before, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    yield
    torch.set_default_dtype(before)
    torch.set_num_threads(threads)


def soft_optimal_trajectories(nu: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities (K,) of all A^T trajectories under the finite-horizon soft-optimal
    policy for reward ``nu`` (soft value iteration), and their visit counts (K, S, A)."""
    value = torch.zeros(S, dtype=nu.dtype)
    policies = []
    for _ in range(T):
        q = nu + value[NEXT]
        value = ALPHA * torch.logsumexp(q / ALPHA, dim=1)
        policies.append(torch.softmax(q / ALPHA, dim=1))
    policies.reverse()
    probs, counts = [], []
    for actions in itertools.product(range(A), repeat=T):
        s, p, c = S0, torch.ones((), dtype=nu.dtype), torch.zeros(S, A, dtype=nu.dtype)
        for t, a in enumerate(actions):
            p = p * policies[t][s, a]
            c[s, a] += 1
            s = int(NEXT[s, a])
        probs.append(p)
        counts.append(c)
    return torch.stack(probs), torch.stack(counts)


def enumerate_pairs(k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    i, j, label = (
        torch.tensor(v)
        for v in zip(*itertools.product(range(k), range(k), (0.0, 1.0)), strict=True)
    )
    return i, j, label.to(torch.float64)


def upper_objective(nu_members: torch.Tensor) -> torch.Tensor:
    """G = sum_e E_{y ~ rho(pi*_{mean nu})}[U_e(y)], exactly, differentiable in every nu_e."""
    rho, counts = soft_optimal_trajectories(nu_members.mean(0))
    true_ret = (counts * TRUE_REWARD).sum((1, 2))
    i, j, label = enumerate_pairs(len(rho))
    p_first = torch.sigmoid(true_ret[i] - true_ret[j])
    weight = rho[i] * rho[j] * torch.where(label == 1.0, p_first, 1 - p_first)
    returns = torch.einsum("ksa,esa->ek", counts, nu_members)
    utilities = pair_utilities(returns[:, i] - returns[:, j], label)
    return (weight * utilities).sum()


def estimator_loss(nu_members: torch.Tensor, weights=None, sample=None) -> torch.Tensor:
    """-(E[U] + covariance surrogate) with rho held fixed: the loss PARL minimises."""
    with torch.no_grad():
        rho, counts = soft_optimal_trajectories(nu_members.mean(0))
        true_ret = (counts * TRUE_REWARD).sum((1, 2))
    if sample is None:
        i, j, label = enumerate_pairs(len(rho))
        p_first = torch.sigmoid(true_ret[i] - true_ret[j])
        w = rho[i] * rho[j] * torch.where(label == 1.0, p_first, 1 - p_first)
    else:
        i, j, label = sample
        w = torch.full((len(i),), 1.0 / len(i))
    returns = torch.einsum("ksa,esa->ek", counts, nu_members)
    r1, r2 = returns[:, i], returns[:, j]
    utilities = pair_utilities(r1 - r2, label)
    pebble_term = -(w * utilities).sum()
    return pebble_term + covariance_surrogate(
        utilities, r1, r2, ALPHA, weights=w if sample is None else None
    )


def _grad(fn, nu: torch.Tensor) -> torch.Tensor:
    nu = nu.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(fn(nu), nu)
    return g


def test_trajectory_distribution_is_exp_return_over_alpha() -> None:
    nu = torch.randn(S, A, generator=torch.Generator().manual_seed(0))
    rho, counts = soft_optimal_trajectories(nu)
    returns = (counts * nu).sum((1, 2))
    torch.testing.assert_close(rho, torch.softmax(returns / ALPHA, 0))


@pytest.mark.parametrize("members", [1, 2])
def test_covariance_term_equals_exact_gradient(members: int) -> None:
    nu = torch.randn(members, S, A, generator=torch.Generator().manual_seed(members))
    exact = _grad(upper_objective, nu)
    estimate = -_grad(estimator_loss, nu)
    torch.testing.assert_close(estimate, exact, rtol=1e-9, atol=1e-10)

    # the policy-dependent term matters here: PEBBLE's term alone is off
    def pebble_only(n: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            rho, counts = soft_optimal_trajectories(n.mean(0))
            true_ret = (counts * TRUE_REWARD).sum((1, 2))
        i, j, label = enumerate_pairs(len(rho))
        p_first = torch.sigmoid(true_ret[i] - true_ret[j])
        w = rho[i] * rho[j] * torch.where(label == 1.0, p_first, 1 - p_first)
        returns = torch.einsum("ksa,esa->ek", counts, n)
        return (w * pair_utilities(returns[:, i] - returns[:, j], label)).sum()

    pebble = _grad(pebble_only, nu)
    assert torch.linalg.norm(exact - pebble) > 0.1 * torch.linalg.norm(exact)


def test_sampled_covariance_estimate_converges() -> None:
    nu = torch.randn(1, S, A, generator=torch.Generator().manual_seed(3))
    exact = _grad(upper_objective, nu)
    rho, counts = soft_optimal_trajectories(nu[0].detach())
    true_ret = (counts * TRUE_REWARD).sum((1, 2))
    gen = torch.Generator().manual_seed(0)
    n = 200_000
    i = torch.multinomial(rho, n, replacement=True, generator=gen)
    j = torch.multinomial(rho, n, replacement=True, generator=gen)
    label = (torch.rand(n, generator=gen) < torch.sigmoid(true_ret[i] - true_ret[j])).double()
    estimate = -_grad(lambda v: estimator_loss(v, sample=(i, j, label)), nu)
    assert torch.linalg.norm(estimate - exact) < 0.05 * torch.linalg.norm(exact)


def test_surrogate_by_hand() -> None:
    u = torch.tensor([[-1.0, -0.2, -0.6]])
    r1 = torch.tensor([[1.0, 2.0, 0.0]], requires_grad=True)
    r2 = torch.tensor([[0.0, 1.0, 1.0]], requires_grad=True)
    covariance_surrogate(u, r1, r2, alpha=0.5).backward()
    centred = (u - u.mean())[0]
    torch.testing.assert_close(r1.grad[0], -centred / 3 / 0.5)
    torch.testing.assert_close(r2.grad[0], -centred / 3 / 0.5)
    with pytest.raises(ValueError, match="alpha must be > 0"):
        covariance_surrogate(u, r1, r2, alpha=0.0)


def _labelled(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=(40, 6, 4)), rng.normal(size=(40, 6, 4))
    y = (x1.sum((1, 2)) > x2.sum((1, 2))).astype(np.float64)
    return x1, x2, y


def test_hypergradient_none_is_pebbles_update_exactly() -> None:
    torch.set_default_dtype(torch.float32)
    data, recent = _labelled(0), _labelled(1)

    def model() -> EnsembleRewardModel:
        return EnsembleRewardModel(4, hidden_sizes=(8, 8), device="cpu", seed=5)

    pebble, parl_none, parl_cov = model(), model(), model()
    # PEBBLE's update written out: epochs of plain Bradley-Terry training
    rng = np.random.default_rng(9)
    for _ in range(3):
        acc = pebble.train_epoch(*data, rng=rng)
        if acc > 0.97:
            break
    update_reward_model(parl_none, data, recent, "none", 0.1, np.random.default_rng(9), 3)
    update_reward_model(parl_cov, data, recent, "covariance", 0.1, np.random.default_rng(9), 3)
    for a, b, c in zip(
        pebble.parameters(), parl_none.parameters(), parl_cov.parameters(), strict=True
    ):
        assert torch.equal(a, b)
        assert not torch.equal(a, c)
    with pytest.raises(ValueError, match="unknown hypergradient 'hessian'; valid: none"):
        PbRLSettings(method="parl", hypergradient="hessian")  # type: ignore[arg-type]


def _tiny_sac_modules():
    from stable_baselines3 import SAC

    sac = SAC("MlpPolicy", "Pendulum-v1", policy_kwargs={"net_arch": [8, 8]}, seed=0, device="cpu")
    actor, critic = sac.actor.double(), sac.critic.double()
    # SB3 casts observations to float32; skip that so the check can run in float64
    for module in (actor, critic):
        module.extract_features = lambda obs, extractor: extractor(obs)
    return actor, critic


def test_unrolled_log_probs_match_finite_differences() -> None:
    actor, critic = _tiny_sac_modules()
    model = EnsembleRewardModel(4, hidden_sizes=(8,), device="cpu", seed=0).double()
    gen = torch.Generator().manual_seed(0)
    states = torch.randn(16, 3, generator=gen)
    noise = torch.randn(16, 1, generator=gen)
    segments = torch.cat(
        [torch.randn(5, 4, 3, generator=gen), 1.8 * torch.rand(5, 4, 1, generator=gen) - 0.9], -1
    )
    weights = torch.randn(5, generator=gen)

    def objective(steps: int) -> torch.Tensor:
        log_probs = unrolled_segment_log_probs(
            model, actor, critic, states, noise, segments, 3, alpha=0.2, lr=0.5, steps=steps
        )
        return (weights * log_probs).sum()

    params = list(model.parameters())
    grads = torch.autograd.grad(objective(2), params)
    direction = [torch.randn(p.shape, generator=gen) for p in params]
    analytic = sum((g * d).sum() for g, d in zip(grads, direction, strict=True))
    eps = 1e-6
    values = []
    for sign in (1, -1):
        with torch.no_grad():
            for p, d in zip(params, direction, strict=True):
                p.add_(sign * eps * d)
        values.append(objective(2).item())  # the unroll itself needs autograd
        with torch.no_grad():
            for p, d in zip(params, direction, strict=True):
                p.sub_(sign * eps * d)
    numeric = (values[0] - values[1]) / (2 * eps)
    assert abs(analytic.item()) > 1e-4  # the unrolled policy does depend on the reward
    assert numeric == pytest.approx(analytic.item(), rel=1e-5, abs=1e-9)
    # with no actor step the policy cannot depend on the reward
    zero = torch.autograd.grad(objective(0), params, allow_unused=True)
    assert all(g is None or torch.all(g == 0) for g in zero)


def test_score_surrogate_by_hand() -> None:
    u = torch.tensor([[-1.0, -0.2, -0.6]])
    log_rho = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
    score_surrogate(u, log_rho).backward()
    torch.testing.assert_close(log_rho.grad, -(u[0] - u.mean()) / 3)
