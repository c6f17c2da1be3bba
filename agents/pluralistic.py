"""Learners for heterogeneous preferences: one reward, MaxMin-RLHF's EM mixture, PAL, policies.

Reward learners (fitted to pairwise preferences from many users):

* :func:`fit_single_reward` -- standard RLHF: one linear Bradley-Terry reward on the pooled
  data of all users.
* :func:`fit_em_mixture` -- MaxMin-RLHF (Chakraborty et al., ICML 2024), Algorithm 1's
  hard EM: K linear Bradley-Terry rewards; users start in cluster ``user_id % K``; the
  E-step moves each user to the reward with the highest total log-likelihood of that
  user's labels, the M-step refits each reward on its users' data; until no user moves.
* :class:`IdealPointMixture` -- PAL (Chen et al., 2024), the ideal-point mixture: K shared
  prototype points, each user's ideal point a convex combination (softmax weights) of
  them, preference logit ``s (||b - a_u||^2 - ||a - a_u||^2)``; an unseen user is
  adapted by fitting only its K weights on a few pairs (torch, any device).

Policies for a KL-regularized contextual bandit (prompts x candidate responses):

* :func:`kl_regularized_policy` -- the closed form pi(y|x) ∝ pi_ref(y|x) exp(r(x,y)/beta).
* :func:`maxmin_policy` -- MaxMin alignment, max_pi min_g E[r_g] - beta KL(pi || pi_ref),
  solved as a saddle point: the dual min over group weights lambda in the simplex of
  beta E_x log sum_y pi_ref exp(lambda . r / beta) is convex, minimized by exponentiated
  gradient (mirror descent); the primal policy is pi_lambda and the duality gap certifies
  the answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from numpy.typing import ArrayLike
from scipy.special import logsumexp

from sandbox.device import pick
from sandbox.rewards import fit_linear_bradley_terry, preference_nll

# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class PreferenceData:
    """Pairwise preferences of many users: query q compares ``feat_a[q]`` with ``feat_b[q]``.

    ``labels[q]`` is 1 when user ``users[q]`` preferred A, 0 for B (soft labels allowed).
    """

    users: np.ndarray  # (Q,) int in [0, n_users)
    feat_a: np.ndarray  # (Q, F)
    feat_b: np.ndarray  # (Q, F)
    labels: np.ndarray  # (Q,)
    n_users: int

    def __post_init__(self) -> None:
        q = self.users.shape[0]
        if self.feat_a.shape != self.feat_b.shape or self.feat_a.shape[0] != q:
            raise ValueError(
                f"feat_a {self.feat_a.shape} and feat_b {self.feat_b.shape} must be (Q={q}, F)"
            )
        if self.labels.shape != (q,):
            raise ValueError(f"labels must have shape ({q},), got {self.labels.shape}")
        if q and (self.users.min() < 0 or self.users.max() >= self.n_users):
            raise ValueError(f"user ids must lie in [0, {self.n_users})")

    @property
    def diffs(self) -> np.ndarray:
        return self.feat_a - self.feat_b

    def __len__(self) -> int:
        return int(self.users.shape[0])


def _log_likelihood(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-query Bradley-Terry log-likelihood y log s(z) + (1 - y) log s(-z), stable."""
    return -(labels * np.logaddexp(0.0, -logits) + (1.0 - labels) * np.logaddexp(0.0, logits))


def preference_accuracy(pred_logits: ArrayLike, true_diff: ArrayLike) -> float:
    """Share of pairs whose predicted preferred item is the truly better one (ties skipped)."""
    z = np.asarray(pred_logits, dtype=np.float64)
    t = np.asarray(true_diff, dtype=np.float64)
    keep = t != 0
    if not keep.any():
        return float("nan")
    return float(np.mean(np.sign(z[keep]) == np.sign(t[keep])))


# ---------------------------------------------------------------- single reward


def fit_single_reward(data: PreferenceData, l2: float = 1e-3) -> np.ndarray:
    """Standard RLHF: one linear Bradley-Terry reward fitted on everyone's pooled labels."""
    return fit_linear_bradley_terry(data.diffs, data.labels, l2=l2)


# ------------------------------------------------------------ MaxMin-RLHF's EM


@dataclass
class EMResult:
    """A fitted mixture: per-cluster linear weights and each user's cluster."""

    weights: np.ndarray  # (K, F)
    assignment: np.ndarray  # (U,)
    n_iter: int
    converged: bool
    log_likelihood: list[float] = field(default_factory=list)  # total, after each E-step

    def user_loglik(self, data: PreferenceData) -> np.ndarray:
        """(U, K): total log-likelihood of each user's labels under each cluster's reward."""
        return _user_loglik(self.weights, data)

    def assign(
        self,
        diffs: ArrayLike,
        labels: ArrayLike,
        users: ArrayLike | None = None,
        n_users: int | None = None,
    ) -> int | np.ndarray:
        """Clusters of new users from their few labelled pairs (feature diffs, labels).

        Without ``users`` all pairs belong to one user and an int is returned; with
        ``users`` (Q,) ids in [0, n_users) an (n_users,) array. A user with no pairs goes
        to the largest cluster.
        """
        largest = int(np.bincount(self.assignment, minlength=len(self.weights)).argmax())
        d = np.asarray(diffs, dtype=np.float64).reshape(-1, self.weights.shape[1])
        y = np.asarray(labels, dtype=np.float64)
        ll = _log_likelihood(d @ self.weights.T, y[:, None])  # (Q, K)
        if users is None:
            return int(ll.sum(axis=0).argmax()) if len(y) else largest
        u = np.asarray(users)
        n = int(n_users if n_users is not None else (u.max() + 1 if u.size else 0))
        total = np.zeros((n, self.weights.shape[0]))
        np.add.at(total, u, ll)
        has = np.bincount(u, minlength=n) > 0
        return np.where(has, total.argmax(axis=1), largest)


def _user_loglik(weights: np.ndarray, data: PreferenceData) -> np.ndarray:
    ll = _log_likelihood(data.diffs @ weights.T, data.labels[:, None])  # (Q, K)
    out = np.zeros((data.n_users, weights.shape[0]))
    np.add.at(out, data.users, ll)
    return out


def fit_em_mixture(
    data: PreferenceData,
    n_clusters: int,
    l2: float = 1e-3,
    max_iter: int = 50,
) -> EMResult:
    """MaxMin-RLHF's hard EM over K linear Bradley-Terry rewards (see the module doc).

    Users start in cluster ``user_id % K``. A cluster left without users keeps its last
    reward. Stops when no user changes cluster (``converged``) or after ``max_iter``.
    """
    if n_clusters < 1:
        raise ValueError(f"n_clusters must be >= 1, got {n_clusters}")
    assignment = np.arange(data.n_users) % n_clusters
    weights = np.zeros((n_clusters, data.feat_a.shape[1]))
    diffs = data.diffs
    history: list[float] = []
    converged = False
    it = 0
    for _ in range(max_iter):
        it += 1
        # M-step: refit each cluster's reward on its users' pairs
        q_cluster = assignment[data.users]
        for k in range(n_clusters):
            mask = q_cluster == k
            if mask.any():
                weights[k] = fit_linear_bradley_terry(diffs[mask], data.labels[mask], l2=l2)
        # E-step: each user to the reward that explains its labels best
        ll = _user_loglik(weights, data)
        new = ll.argmax(axis=1)
        has_data = np.bincount(data.users, minlength=data.n_users) > 0
        new = np.where(has_data, new, assignment)
        history.append(float(ll[np.arange(data.n_users), new].sum()))
        if np.array_equal(new, assignment):
            converged = True
            break
        assignment = new
    return EMResult(weights, assignment, it, converged, history)


def cluster_purity(assignment: ArrayLike, truth: ArrayLike) -> float:
    """Share of users in the majority true group of their cluster (1 = clusters are groups)."""
    a = np.asarray(assignment)
    t = np.asarray(truth)
    if a.size == 0:
        return float("nan")
    total = 0
    for c in np.unique(a):
        total += np.bincount(t[a == c]).max()
    return float(total / a.size)


# ------------------------------------------------------------------------ PAL


class IdealPointMixture:
    """PAL's ideal-point mixture of K prototypes with per-user simplex weights.

    User u's ideal point is ``a_u = softmax(theta_u) @ P`` (P: (K, d) prototypes); it
    prefers item ``x_a`` over ``x_b`` with logit ``s (||x_b - a_u||^2 - ||x_a - a_u||^2)``
    (``s = exp(log_scale)`` > 0, the users' shared rationality). Training fits P, theta and
    s by full-batch Adam on the Bradley-Terry loss; :meth:`adapt` fits only a new user's
    K weights with P and s frozen.
    """

    def __init__(
        self,
        n_prototypes: int,
        dim: int,
        n_users: int,
        seed: int = 0,
        weight_l2: float = 1e-3,
        device: str = "auto",
    ) -> None:
        if n_prototypes < 1 or dim < 1 or n_users < 0:
            raise ValueError("need n_prototypes >= 1, dim >= 1, n_users >= 0")
        self.device = pick(device)
        self.n_prototypes = n_prototypes
        self.dim = dim
        self.n_users = n_users
        self.weight_l2 = weight_l2
        gen = torch.Generator().manual_seed(int(seed))
        kw = {"dtype": torch.float64}
        self.prototypes = torch.randn(n_prototypes, dim, generator=gen, **kw).to(self.device)
        self.user_logits = (0.01 * torch.randn(n_users, n_prototypes, generator=gen, **kw)).to(
            self.device
        )
        self.log_scale = torch.zeros((), **kw).to(self.device)

    def _t(self, x: ArrayLike) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x, dtype=np.float64), device=self.device)

    @staticmethod
    def _logits(ideal: torch.Tensor, xa: torch.Tensor, xb: torch.Tensor, log_scale) -> torch.Tensor:
        return torch.exp(log_scale) * (((xb - ideal) ** 2).sum(-1) - ((xa - ideal) ** 2).sum(-1))

    def user_weights(self) -> np.ndarray:
        """(U, K) each user's weights on the prototypes (rows on the simplex)."""
        return torch.softmax(self.user_logits, dim=1).cpu().numpy()

    def ideal_points(self, weights: ArrayLike | None = None) -> np.ndarray:
        """Ideal points of the training users, or of users with the given (.., K) weights."""
        w = torch.softmax(self.user_logits, 1) if weights is None else self._t(weights)
        return (w @ self.prototypes).cpu().numpy()

    def fit(
        self,
        data: PreferenceData,
        steps: int = 400,
        lr: float = 0.05,
    ) -> list[float]:
        """Fit prototypes, user weights and scale; returns the loss after each step."""
        if data.n_users != self.n_users:
            raise ValueError(f"data has {data.n_users} users, the model {self.n_users}")
        users = torch.as_tensor(data.users, device=self.device, dtype=torch.long)
        xa, xb, y = self._t(data.feat_a), self._t(data.feat_b), self._t(data.labels)
        params = [self.prototypes, self.user_logits, self.log_scale]
        for p in params:
            p.requires_grad_(True)
        opt = torch.optim.Adam(params, lr=lr)
        losses = []
        for _ in range(steps):
            opt.zero_grad()
            ideal = (
                torch.index_select(torch.softmax(self.user_logits, 1), 0, users) @ self.prototypes
            )
            loss = preference_nll(self._logits(ideal, xa, xb, self.log_scale), y)
            loss = loss + self.weight_l2 * (self.user_logits**2).mean()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        for p in params:
            p.requires_grad_(False)
        return losses

    def predict_logits(self, users: ArrayLike, feat_a: ArrayLike, feat_b: ArrayLike) -> np.ndarray:
        """Preference logits of training users for pairs (A, B)."""
        ideal = torch.as_tensor(self.ideal_points(), device=self.device)[
            torch.as_tensor(np.asarray(users), device=self.device, dtype=torch.long)
        ]
        with torch.no_grad():
            z = self._logits(ideal, self._t(feat_a), self._t(feat_b), self.log_scale)
        return z.cpu().numpy()

    def adapt(
        self,
        feat_a: ArrayLike,
        feat_b: ArrayLike,
        labels: ArrayLike,
        users: ArrayLike | None = None,
        n_users: int | None = None,
        steps: int = 100,
        lr: float = 0.1,
        l2: float = 0.1,
    ) -> np.ndarray:
        """Few-shot: simplex weights of unseen users from their labelled pairs.

        Prototypes and scale stay frozen; only each user's K weight logits are fitted, on
        the mean loss of its own pairs plus ``l2 * |theta|^2 / n_pairs``, a prior toward
        the uniform mixture (which is also the answer for a user without pairs). Without
        ``users`` the pairs are one user's and a (K,) vector is returned; with ``users``
        (Q,) ids in [0, n_users), all users are adapted at once and (n_users, K) returned.
        """
        single = users is None
        u_np = np.zeros(len(np.asarray(labels)), dtype=np.int64) if single else np.asarray(users)
        n = 1 if single else int(n_users if n_users is not None else u_np.max() + 1)
        theta = torch.zeros(n, self.n_prototypes, dtype=torch.float64, device=self.device)
        counts_np = np.bincount(u_np, minlength=n).astype(np.float64)
        if u_np.size:
            u = torch.as_tensor(u_np, device=self.device, dtype=torch.long)
            xa, xb, y = self._t(feat_a), self._t(feat_b), self._t(labels)
            counts = self._t(np.maximum(counts_np, 1.0))
            theta.requires_grad_(True)
            opt = torch.optim.Adam([theta], lr=lr)
            for _ in range(steps):
                opt.zero_grad()
                ideal = torch.index_select(torch.softmax(theta, 1), 0, u) @ self.prototypes
                per = torch.nn.functional.binary_cross_entropy_with_logits(
                    self._logits(ideal, xa, xb, self.log_scale), y, reduction="none"
                )
                loss = (per / counts[u]).sum() + l2 * ((theta**2).sum(1) / counts).sum()
                loss.backward()
                opt.step()
        weights = torch.softmax(theta.detach(), 1).cpu().numpy()
        return weights[0] if single else weights

    def logits_for(self, weights: ArrayLike, feat_a: ArrayLike, feat_b: ArrayLike) -> np.ndarray:
        """Preference logits for users with simplex weights: one (K,) or one row per pair (Q, K)."""
        ideal = self._t(weights) @ self.prototypes
        with torch.no_grad():
            z = self._logits(ideal, self._t(feat_a), self._t(feat_b), self.log_scale)
        return z.cpu().numpy()

    def reward(self, ideal_point: ArrayLike, features: ArrayLike) -> np.ndarray:
        """The reward s * -||x - a||^2 of items ``features`` (..., d) for an ideal point a."""
        a = np.asarray(ideal_point, dtype=np.float64)
        x = np.asarray(features, dtype=np.float64)
        return -float(torch.exp(self.log_scale)) * ((x - a) ** 2).sum(-1)


# -------------------------------------------------------------------- policies


def _check_policy_inputs(rewards: np.ndarray, ref: np.ndarray, beta: float) -> None:
    if beta <= 0 or not np.isfinite(beta):
        raise ValueError(f"beta (KL coefficient) must be > 0, got {beta!r}")
    if rewards.shape[-2:] != ref.shape:
        raise ValueError(f"rewards {rewards.shape} do not end in the ref shape {ref.shape}")
    if np.any(ref <= 0) or not np.allclose(ref.sum(axis=1), 1.0):
        raise ValueError("ref must be a strictly positive distribution over candidates per prompt")


def kl_regularized_policy(rewards: ArrayLike, ref: ArrayLike, beta: float) -> np.ndarray:
    """argmax_pi E_pi[r] - beta KL(pi || ref) per prompt: pi ∝ ref exp(r / beta). (P, C)."""
    r = np.asarray(rewards, dtype=np.float64)
    p0 = np.asarray(ref, dtype=np.float64)
    _check_policy_inputs(r, p0, beta)
    logits = np.log(p0) + r / beta
    return np.exp(logits - logsumexp(logits, axis=1, keepdims=True))


def centre_rewards(rewards: ArrayLike, ref: ArrayLike) -> np.ndarray:
    """r(x, y) - E_{y' ~ ref}[r(x, y')]: removes the per-prompt constant that Bradley-Terry
    cannot identify, so rewards of different models are comparable in a max-min."""
    r = np.asarray(rewards, dtype=np.float64)
    return r - (r * np.asarray(ref, dtype=np.float64)).sum(axis=-1, keepdims=True)


def kl_divergence(policy: ArrayLike, ref: ArrayLike) -> float:
    """Mean over prompts of KL(pi(.|x) || ref(.|x))."""
    p = np.asarray(policy, dtype=np.float64)
    q = np.asarray(ref, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(p) - np.log(q)), 0.0)
    return float(terms.sum(axis=1).mean())


def policy_objective(
    policy: ArrayLike, rewards: ArrayLike, ref: ArrayLike, beta: float
) -> np.ndarray:
    """J_g = E_x E_pi[r_g] - beta KL(pi || ref) for each reward g; rewards (K, P, C) -> (K,)."""
    p = np.asarray(policy, dtype=np.float64)
    r = np.asarray(rewards, dtype=np.float64)
    if r.ndim == 2:
        r = r[None]
    expected = np.einsum("pc,kpc->k", p, r) / p.shape[0]
    return expected - beta * kl_divergence(p, ref)


@dataclass
class MaxMinSolution:
    """The MaxMin policy, the group weights of the saddle point and its certificate."""

    policy: np.ndarray  # (P, C)
    weights: np.ndarray  # (K,) lambda on the simplex
    values: np.ndarray  # (K,) J_g(policy)
    dual_value: float  # the best dual bound found: an upper bound on max_pi min_g J_g
    duality_gap: float  # dual_value - min_g values >= 0; 0 at the exact saddle point
    n_iter: int
    converged: bool


def maxmin_policy(
    rewards: ArrayLike,
    ref: ArrayLike,
    beta: float,
    max_iter: int = 5_000,
    tol: float = 1e-7,
) -> MaxMinSolution:
    """max_pi min_g E_x E_pi[r_g] - beta KL(pi || ref), by exponentiated gradient on the dual.

    For weights lambda on the simplex the inner maximum is pi_lambda ∝ ref exp(lambda . r /
    beta) with value D(lambda) = beta E_x log sum_y ref exp(lambda . r / beta), convex in
    lambda with gradient E_x E_{pi_lambda}[r_g]. Sion's minimax theorem makes
    min_lambda D(lambda) the max-min value. We minimize D by mirror descent on the simplex
    (lambda <- lambda exp(-eta grad), normalized) with a backtracking step: a step is
    accepted when D decreases at least as the Bregman (KL) upper model promises, then eta
    grows; otherwise eta halves. We keep the policy with the best worst-group value and
    stop when the duality gap (best D) - (best min_g J_g) is below ``tol * (1 + |D|)``.
    """
    r = np.asarray(rewards, dtype=np.float64)
    p0 = np.asarray(ref, dtype=np.float64)
    if r.ndim != 3:
        raise ValueError(f"rewards must be (K, P, C) group rewards, got shape {r.shape}")
    _check_policy_inputs(r, p0, beta)
    k, n_prompts = r.shape[0], r.shape[1]
    log_ref = np.log(p0)

    def evaluate(lam: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        logits = log_ref + np.tensordot(lam, r, axes=1) / beta
        lse = logsumexp(logits, axis=1, keepdims=True)
        pi = np.exp(logits - lse)
        return beta * float(lse.mean()), pi, np.einsum("pc,kpc->k", pi, r) / n_prompts

    spread = float((r.max(axis=2) - r.min(axis=2)).max())
    eta = beta / max(spread, 1e-12) ** 2  # 1/L for the l1-smoothness of D: always accepted
    lam = np.full(k, 1.0 / k)
    dual, pi, grad = evaluate(lam)
    best_primal, best_policy, best_values, best_lam = -np.inf, pi, grad, lam
    best_dual = dual
    converged = False
    it = 0
    for _ in range(max_iter):
        it += 1
        values = grad - beta * kl_divergence(pi, p0)
        best_dual = min(best_dual, dual)
        if values.min() > best_primal:
            best_primal, best_policy, best_values, best_lam = values.min(), pi, values, lam
        if best_dual - best_primal <= tol * (1.0 + abs(best_dual)):
            converged = True
            break
        for _ in range(60):  # backtracking on the mirror-descent step
            new = lam * np.exp(-eta * (grad - grad.min()))
            new = np.maximum(new / new.sum(), 1e-300)
            new_dual, new_pi, new_grad = evaluate(new)
            bregman = float(np.sum(new * np.log(new / lam)))
            if new_dual <= dual + grad @ (new - lam) + bregman / eta + 1e-15 * abs(dual):
                break
            eta *= 0.5
        lam, dual, pi, grad = new, new_dual, new_pi, new_grad
        eta *= 2.0
    return MaxMinSolution(
        policy=best_policy,
        weights=best_lam,
        values=best_values,
        dual_value=best_dual,
        duality_gap=max(0.0, best_dual - best_primal),
        n_iter=it,
        converged=converged,
    )


def win_rate(policy: ArrayLike, ref: ArrayLike, true_rewards: ArrayLike) -> float:
    """P(y ~ pi beats y' ~ ref under the true reward), ties counted half, mean over prompts."""
    p = np.asarray(policy, dtype=np.float64)
    q = np.asarray(ref, dtype=np.float64)
    r = np.asarray(true_rewards, dtype=np.float64)
    beats = (r[:, :, None] > r[:, None, :]) + 0.5 * (r[:, :, None] == r[:, None, :])
    return float(np.einsum("pc,pcd,pd->p", p, beats, q).mean())
