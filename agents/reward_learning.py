"""Linear reward learning from segment preferences under the partial-return or regret model.

Both learners fit weights ``w`` over the delivery features (reward = w . phi) by maximum
likelihood of the Bradley-Terry / Boltzmann preference model they assume:

* :class:`PartialReturnLearner` — logit = w . (Phi_1 - Phi_2) with Phi the undiscounted
  summed features of a segment: logistic regression, solved by
  :func:`sandbox.rewards.fit_linear_bradley_terry` (convex, L-BFGS in float64).
* :class:`RegretLearner` — logit = regret_w(seg_2) - regret_w(seg_1) with
  regret_w = V*_w(s_0) - w . Phi^gamma - gamma^k V*_w(s_k). V*_w must be differentiable in
  w; as Knox et al. do, we approximate it with **successor features of a policy library**:
  V-hat*_w(s) = tau * logsumexp_pi(w . psi^pi(s) / tau) (a soft maximum, tau = 1e-3 by
  default) over a library of deterministic policies, each optimal for a random reward.
  Policies optimal for the true reward are excluded from the library (the paper's
  protocol, so the learner is not handed the answer). When the library contains an optimal
  policy for w, V-hat*_w equals V*_w up to tau * log(library size). The fit is a
  non-convex L-BFGS in float64 (numpy objective with its exact gradient), started from the
  partial-return solution and from a small isotropic guess; the lower loss wins.

:func:`evaluate_weights` is the paper's evaluation: solve the MDP under the learned reward,
act greedily (uniform over tied actions), and evaluate that policy under the true reward
from every start state; the scaled return is (mean return - uniform random's) /
(optimal's - uniform random's) and ``near-optimal`` means scaled return >= 0.9.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import sparse
from scipy.optimize import minimize

from envs.delivery import (
    GOAL_WEIGHTS,
    MUD_WEIGHTS,
    N_FEATURES,
    ROADBLOCK_WEIGHTS,
    SHEEP_WEIGHTS,
    DeliveryMDP,
    Solution,
    solve_batch,
)
from sandbox.device import pick
from sandbox.preferences.segment_models import SegmentPairs, segment_features
from sandbox.rewards import fit_linear_bradley_terry, preference_nll

NEAR_OPTIMAL = 0.9


# ----------------------------------------------------------------------- partial return
@dataclass
class PartialReturnLearner:
    """Logistic regression of labels on summed-feature differences (the common RLHF model)."""

    l2: float = 1e-4
    device: str = "auto"  # accepted for a uniform learner API; the convex fit runs on the CPU

    weights: np.ndarray | None = None

    def pair_features(self, mdp: DeliveryMDP, pairs: SegmentPairs) -> np.ndarray:
        phi = segment_features(mdp.features, pairs.states, pairs.actions, 1.0)  # (N, 2, F)
        return phi[:, 0] - phi[:, 1]

    def fit(self, mdp: DeliveryMDP, pairs: SegmentPairs, labels: np.ndarray) -> np.ndarray:
        self.weights = fit_linear_bradley_terry(self.pair_features(mdp, pairs), labels, l2=self.l2)
        return self.weights

    def logits(
        self, mdp: DeliveryMDP, pairs: SegmentPairs, weights: np.ndarray | None = None
    ) -> np.ndarray:
        w = self.weights if weights is None else weights
        return self.pair_features(mdp, pairs) @ w


# ----------------------------------------------------------------------- policy library
def library_weights(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random reward weights (n, F): half from the paper's generator, half Gaussian.

    The generator half has the delivery structure (gas -1, coin +1, the goal/sheep/
    roadblock/mud values of the random-MDP generator); the Gaussian half (per-feature scales
    1, 20, 20, 1, 5, 2) reaches policies no generator reward would, e.g. sheep-seeking ones.
    """
    n_gen = n // 2
    gen = np.column_stack(
        [
            np.full(n_gen, -1.0),
            rng.choice(GOAL_WEIGHTS, n_gen),
            rng.choice(SHEEP_WEIGHTS, n_gen),
            np.ones(n_gen),
            rng.choice(ROADBLOCK_WEIGHTS, n_gen),
            rng.choice(MUD_WEIGHTS, n_gen),
        ]
    )
    gauss = rng.normal(size=(n - n_gen, N_FEATURES)) * np.array([1.0, 20.0, 20.0, 1.0, 5.0, 2.0])
    return np.concatenate([gen, gauss])


@dataclass(frozen=True)
class PolicyLibrary:
    """Deterministic policies ``actions`` (S, K) and their successor features ``psi`` (K, S, F)."""

    actions: np.ndarray
    psi: np.ndarray
    gamma: float

    def __len__(self) -> int:
        return int(self.actions.shape[1])

    def values(self, weights: np.ndarray) -> np.ndarray:
        """Exact V^pi_w (K, S) of every library policy under ``weights``."""
        return self.psi @ np.asarray(weights, dtype=np.float64)

    def soft_max_value(self, weights: np.ndarray, tau: float = 1e-3) -> np.ndarray:
        """V-hat*_w(s) = tau logsumexp_pi(w . psi^pi(s) / tau), (S,)."""
        v = self.values(weights) / tau
        m = v.max(axis=0)
        return tau * (m + np.log(np.exp(v - m).sum(axis=0)))


def optimal_policies(mdp: DeliveryMDP, weights: np.ndarray, gamma: float) -> np.ndarray:
    """Deterministic optimal policies (S, K) of ``weights`` (K, F), by batched policy iteration."""
    rewards = mdp.features @ np.asarray(weights, dtype=np.float64).T  # (S, A, K)
    _, q, _ = solve_batch(mdp.next_state, rewards, gamma)
    return q.argmax(axis=1)


def build_policy_library(
    mdp: DeliveryMDP,
    n_policies: int,
    gamma: float,
    rng: np.random.Generator,
    exclude_optimal_for: np.ndarray | None = None,
    extra_policies: np.ndarray | None = None,
    tol: float = 1e-6,
) -> PolicyLibrary:
    """Optimal policies of ``n_policies`` random rewards, deduplicated, with successor features.

    ``exclude_optimal_for`` (true weights) drops every policy whose value equals V* under
    those weights at every start state, i.e. every policy optimal for the true reward.
    ``extra_policies`` (S, E) are appended after the exclusion (used to test that the
    soft maximum recovers V* when an optimal policy is present).
    """
    if n_policies < 1:
        raise ValueError(f"a policy library needs at least one policy, got {n_policies}")
    actions = optimal_policies(mdp, library_weights(n_policies, rng), gamma)
    actions = np.unique(actions.T, axis=0).T  # distinct policies (sorted: deterministic order)
    psi = mdp.successor_features(actions, gamma)
    if exclude_optimal_for is not None:
        w = np.asarray(exclude_optimal_for, dtype=np.float64)
        v_star = mdp.solve(gamma, weights=w).V[mdp.start_states]
        v_pi = (psi @ w)[:, mdp.start_states]  # (K, n_start)
        scale = max(1.0, float(np.abs(v_star).max()))
        optimal = np.all(v_pi >= v_star - tol * scale, axis=1)
        keep = ~optimal
        if not keep.any():  # every sampled policy is optimal for the truth: keep the least bad
            keep[np.argmin((v_star - v_pi).sum(axis=1))] = True
        actions, psi = actions[:, keep], psi[keep]
    if extra_policies is not None:
        extra = np.asarray(extra_policies, dtype=np.int64).reshape(mdp.n_states, -1)
        actions = np.concatenate([actions, extra], axis=1)
        psi = np.concatenate([psi, mdp.successor_features(extra, gamma)], axis=0)
    return PolicyLibrary(actions, psi, gamma)


# ----------------------------------------------------------------------- regret learner
@dataclass
class RegretLearner:
    """Maximum-likelihood linear reward under the regret preference model.

    ``library`` gives V-hat*_w by a soft maximum of successor-feature values (see the module
    docstring); ``tau`` is the soft maximum's temperature, ``l2`` the weight penalty.

    The objective (mean Bradley-Terry cross-entropy + l2 |w|^2) and its exact gradient are
    written in numpy and minimized with SciPy's L-BFGS-B: with six parameters and at most a
    few thousand pairs, one evaluation costs tens of microseconds in numpy against
    milliseconds of autograd overhead, which decides whether the study's grid fits its
    time budget. :meth:`logits_torch` is the same model in torch (differentiable, on
    ``device``); the tests check the numpy gradient against its autograd through
    :func:`sandbox.rewards.preference_nll`.
    """

    library: PolicyLibrary
    tau: float = 1e-3
    l2: float = 1e-4
    max_iter: int = 500
    device: str = "auto"

    weights: np.ndarray | None = None

    def _arrays(self, mdp: DeliveryMDP, pairs: SegmentPairs) -> dict[str, Any]:
        """Per-pair constants: feature differences and the signed state-incidence matrix.

        logit_i = sum_s M[i, s] V-hat(s) + (phi_1 - phi_2)_i . w with M holding +1 at
        s0 of segment 2, -gamma^k at its end, -1 at s0 of segment 1, +gamma^k at its end.
        """
        gamma = self.library.gamma
        phi = segment_features(mdp.features, pairs.states, pairs.actions, gamma)  # (N, 2, F)
        n, gk = len(pairs), gamma**pairs.length
        cols = np.concatenate(
            [
                pairs.states[:, 1, 0],
                pairs.states[:, 1, -1],
                pairs.states[:, 0, 0],
                pairs.states[:, 0, -1],
            ]
        )
        coef = np.repeat([1.0, -gk, -1.0, gk], n)
        incidence = sparse.csr_matrix(
            (coef, (np.tile(np.arange(n), 4), cols)), shape=(n, mdp.n_states)
        )  # duplicates (e.g. s0 == s_k) are summed
        return {
            "dphi": phi[:, 0] - phi[:, 1],
            "incidence": incidence,
            "incidence_t": incidence.T.tocsr(),
        }

    def _soft_value(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """V-hat*_w (S,) and the softmax weights (K, S) over library policies."""
        z = (self.library.psi @ w) / self.tau  # (K, S)
        m = z.max(axis=0)
        e = np.exp(z - m)
        tot = e.sum(axis=0)
        return self.tau * (m + np.log(tot)), e / tot

    def _logits(self, w: np.ndarray, d: dict[str, Any]) -> np.ndarray:
        """Logits (N,) = regret_w(seg_2) - regret_w(seg_1)."""
        v, _ = self._soft_value(w)
        return d["incidence"] @ v + d["dphi"] @ w

    def loss_and_grad(
        self, w: np.ndarray, d: dict[str, Any], y: np.ndarray
    ) -> tuple[float, np.ndarray]:
        """Mean BT cross-entropy with soft labels + l2 |w|^2, and its exact gradient.

        dV-hat(s)/dw = sum_pi softmax_pi(s) psi^pi(s), so the gradient contracts the
        per-state residual mass M^T r with the softmax-weighted successor features.
        """
        v, soft = self._soft_value(w)
        logit = d["incidence"] @ v + d["dphi"] @ w
        nll = np.mean(np.logaddexp(0.0, logit) - y * logit)
        resid = (0.5 * (1.0 + np.tanh(0.5 * logit)) - y) / len(y)  # (sigmoid(logit) - y) / N
        mass = d["incidence_t"] @ resid  # (S,)
        psi = self.library.psi
        grad = (soft * mass).reshape(-1) @ psi.reshape(-1, psi.shape[-1]) + resid @ d["dphi"]
        return float(nll + self.l2 * w @ w), grad + 2.0 * self.l2 * w

    def _fit_from(
        self, w0: np.ndarray, d: dict[str, np.ndarray], y: np.ndarray
    ) -> tuple[float, np.ndarray]:
        res = minimize(
            self.loss_and_grad,
            np.asarray(w0, dtype=np.float64),
            args=(d, y),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": self.max_iter, "gtol": 1e-7, "ftol": 1e-10},
        )
        return float(res.fun), np.asarray(res.x, dtype=np.float64)

    def fit(
        self,
        mdp: DeliveryMDP,
        pairs: SegmentPairs,
        labels: np.ndarray,
        init: np.ndarray | None = None,
    ) -> np.ndarray:
        """Fit w; starts from ``init`` (e.g. the partial-return fit) and a small fixed guess."""
        if len(pairs) == 0:
            raise ValueError("cannot fit a reward model on zero preferences")
        d = self._arrays(mdp, pairs)
        y = np.asarray(labels, dtype=np.float64)
        if y.shape != (len(pairs),) or np.any((y < 0) | (y > 1)):
            raise ValueError(f"labels must be ({len(pairs)},) values in [0, 1]")
        starts = [np.full(N_FEATURES, 1e-2)]
        if init is not None:
            starts.insert(0, np.asarray(init, dtype=np.float64))
        best = min((self._fit_from(w0, d, y) for w0 in starts), key=lambda lw: lw[0])
        self.weights = best[1]
        return self.weights

    def logits(
        self, mdp: DeliveryMDP, pairs: SegmentPairs, weights: np.ndarray | None = None
    ) -> np.ndarray:
        w = self.weights if weights is None else weights
        return self._logits(np.asarray(w, dtype=np.float64), self._arrays(mdp, pairs))

    def logits_torch(
        self, mdp: DeliveryMDP, pairs: SegmentPairs, weights: torch.Tensor
    ) -> torch.Tensor:
        """The same logits as a differentiable torch function of ``weights`` (on ``device``)."""
        dev = pick(self.device)
        w = weights.to(dev)
        psi = torch.as_tensor(self.library.psi, device=dev)
        v = self.tau * torch.logsumexp((psi @ w) / self.tau, dim=0)  # (S,)
        gk = self.library.gamma**pairs.length
        st = torch.as_tensor(pairs.states, device=dev)
        phi = torch.as_tensor(
            segment_features(mdp.features, pairs.states, pairs.actions, self.library.gamma),
            device=dev,
        )
        regret = v[st[:, :, 0]] - (phi @ w + gk * v[st[:, :, -1]])  # (N, 2)
        return regret[:, 1] - regret[:, 0]


# ----------------------------------------------------------------------- evaluation
@dataclass(frozen=True)
class Evaluation:
    """Mean return over start states of the learned-reward policy, the optimum, and random."""

    policy_return: float
    optimal_return: float
    random_return: float

    @property
    def scaled_return(self) -> float:
        span = self.optimal_return - self.random_return
        if abs(span) <= 1e-9 * max(1.0, abs(self.optimal_return)):
            return 1.0  # every policy is optimal here
        return (self.policy_return - self.random_return) / span

    @property
    def near_optimal(self) -> bool:
        return self.scaled_return >= NEAR_OPTIMAL


def evaluate_weights(
    mdp: DeliveryMDP,
    weights: np.ndarray,
    gamma: float = 0.999,
    true_solution: Solution | None = None,
) -> Evaluation:
    """Greedy policy of the learned reward (uniform over ties), evaluated under the true one."""
    learned = mdp.solve(gamma, weights=weights)
    policy = learned.greedy_policy()
    truth = mdp.solve(gamma) if true_solution is None else true_solution
    starts = mdp.start_states
    v_pi = mdp.evaluate(policy, gamma)[starts].mean()
    v_rand = mdp.evaluate(mdp.uniform_policy(), gamma)[starts].mean()
    return Evaluation(float(v_pi), float(truth.V[starts].mean()), float(v_rand))


def heldout_metrics(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(accuracy on non-tied labels, mean log-likelihood) of predicted logits on held-out labels."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    decided = labels != 0.5
    if decided.any():
        pred = np.where(logits[decided] > 0, 1.0, np.where(logits[decided] < 0, 0.0, 0.5))
        acc = float(np.mean(np.where(pred == 0.5, 0.5, pred == labels[decided])))
    else:
        acc = float("nan")
    with torch.no_grad():
        nll = preference_nll(torch.as_tensor(logits), torch.as_tensor(labels))
    return acc, -float(nll)


# ----------------------------------------------------------------------- identifiability
@dataclass(frozen=True)
class PartialReturnTwin:
    """Two rewards that no amount of noiseless partial-return preferences can tell apart.

    ``n_segments`` segments (every start state x every action sequence of ``segment_length``)
    give ``n_pairs`` ordered pairs; the two rewards label every one of them identically
    (``labels_equal``), yet their optimal policies differ: ``twin_scaled_return`` is the
    scaled return, under the true reward, of the twin reward's greedy optimal policy.
    ``regret_pairs_differing`` of ``regret_pairs_compared`` unordered pairs get different
    noiseless regret labels under the two rewards (all pairs when there are at most 3000
    segments, else a random million).
    """

    mdp: DeliveryMDP
    true_weights: np.ndarray
    twin_weights: np.ndarray
    segment_length: int
    n_segments: int
    n_pairs: int
    labels_equal: bool
    differing_states: np.ndarray
    twin_scaled_return: float
    regret_pairs_compared: int
    regret_pairs_differing: int


def same_noiseless_preferences(
    values_a: np.ndarray, values_b: np.ndarray, decimals: int = 8
) -> bool:
    """Whether two score vectors induce the same noiseless label on every pair of items.

    Identical labels on all pairs <=> the same weak order: sorting by ``values_a``, the
    ``values_b`` must rise strictly exactly where ``values_a`` rises and tie where it ties.
    """
    a = np.round(np.asarray(values_a, dtype=np.float64), decimals)
    b = np.round(np.asarray(values_b, dtype=np.float64), decimals)
    order = np.lexsort((b, a))
    da, db = np.diff(a[order]), np.diff(b[order])
    return bool(np.all((da > 0) == (db > 0)) and np.all((da == 0) == (db == 0)))


def find_partial_return_twin(
    mdp: DeliveryMDP,
    segment_length: int,
    gamma: float = 0.999,
    candidate_values: np.ndarray | None = None,
) -> PartialReturnTwin | None:
    """Search for a reward with the same partial-return preferences but another optimal policy.

    Candidates change one weight of the MDP's reward at a time to each of
    ``candidate_values`` (default: a grid from -100 to 100). A candidate is a twin when
    every pair of segments of ``segment_length`` gets the same noiseless partial-return
    label under both rewards (checked exhaustively over all segments) while the sets of
    optimal actions differ at some start state. Returns the twin whose policy is worst
    under the true reward, or None.
    """
    from sandbox.preferences.segment_models import all_segments

    if candidate_values is None:
        candidate_values = np.concatenate(
            [-np.geomspace(100, 0.5, 12), [0.0], np.geomspace(0.5, 100, 12)]
        )
    states, actions = all_segments(mdp.next_state, mdp.start_states, segment_length)
    phi = segment_features(mdp.features, states, actions, 1.0)  # (M, F)
    unique_phi = np.unique(phi, axis=0)
    true_w = mdp.weights
    base = unique_phi @ true_w
    truth = mdp.solve(gamma)
    best_actions = truth.optimal_actions()[mdp.start_states]
    found: PartialReturnTwin | None = None
    for f in range(N_FEATURES):
        for value in candidate_values:
            w2 = true_w.copy()
            w2[f] = value
            if np.allclose(w2, true_w) or not same_noiseless_preferences(base, unique_phi @ w2):
                continue
            twin = mdp.solve(gamma, weights=w2)
            twin_best = twin.optimal_actions()[mdp.start_states]
            differ = np.any(twin_best != best_actions, axis=1)
            if not differ.any():
                continue
            ev = evaluate_weights(mdp, w2, gamma, truth)
            if found is None or ev.scaled_return < found.twin_scaled_return:
                compared, differing = _regret_disagreement(
                    mdp, truth, twin, w2, states, actions, gamma
                )
                found = PartialReturnTwin(
                    mdp=mdp,
                    true_weights=true_w.copy(),
                    twin_weights=w2,
                    segment_length=segment_length,
                    n_segments=len(phi),
                    n_pairs=len(phi) * (len(phi) - 1),
                    labels_equal=True,
                    differing_states=mdp.start_states[differ],
                    twin_scaled_return=ev.scaled_return,
                    regret_pairs_compared=compared,
                    regret_pairs_differing=differing,
                )
    return found


def _regret_disagreement(
    mdp: DeliveryMDP,
    truth: Solution,
    twin: Solution,
    twin_weights: np.ndarray,
    states: np.ndarray,
    actions: np.ndarray,
    gamma: float,
    max_segments: int = 3000,
) -> tuple[int, int]:
    """(pairs compared, pairs whose noiseless regret labels differ) between two rewards."""
    from sandbox.preferences.segment_models import STAT_DECIMALS, regret

    ra = np.round(regret(mdp.reward(), truth.V, states, actions, gamma), STAT_DECIMALS)
    rb = np.round(regret(mdp.reward(twin_weights), twin.V, states, actions, gamma), STAT_DECIMALS)
    m = len(ra)
    if m <= max_segments:
        i, j = np.triu_indices(m, k=1)
    else:
        rng = np.random.default_rng(0)
        i, j = rng.integers(0, m, size=(2, 1_000_000))
        keep = i != j
        i, j = i[keep], j[keep]
    differ = np.sign(ra[i] - ra[j]) != np.sign(rb[i] - rb[j])
    return int(len(i)), int(differ.sum())
