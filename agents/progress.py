"""Progress-alignment algorithms (ProgressGym, Qiu et al. 2024) in value-vector form.

Every algorithm is an AI that, at each timestep, sees the humans' net votes on a fixed
bank of query pairs (the ``sandbox/ValueCoevolution-v0`` observation) and outputs its
value vector. Votes come from an ideal-point choice model,
P(A > B) = logistic(beta (||B - h||^2 - ||A - h||^2)), so a linear Bradley-Terry fit on
the features [2 (A - B), -(||A||^2 - ||B||^2)] recovers w = beta [h, 1] and the ideal
point is w[:d] / w[d] whatever beta is (:func:`fit_ideal_point`). This is the vector
counterpart of fine-tuning a language model with DPO on the preference data.

* :class:`StaticAligner`: aligns once, to the first timestep's preferences.
* :class:`LifelongAligner`: re-aligns every step. ``restart=True`` (ProgressGym's
  "independent") fits the current step's preferences from scratch; ``restart=False``
  keeps training the same model on every step's data, which we write as one fit on the
  growing buffer of all preferences seen so far (sequential fine-tuning without
  forgetting).
* :class:`ExtrapolativeAligner`: ProgressGym's extrapolative DPO. Each pair's vote history
  is extrapolated ``lookahead`` steps ahead with order-n finite differences
  (:func:`finite_difference_extrapolate`); pairs whose extrapolated vote is negative are
  flipped, and each pair is weighted by min(|vote|, 5) (ProgressGym duplicates the pair
  that many times; a sample weight is the same loss).
* :class:`ExtrapolativeVectorAligner`: the value-vector equivalent: extrapolate the
  sequence of per-step ideal-point estimates instead of the votes.
* :class:`OracleAligner`: knows the history and plays history_{t+k} (an upper bound).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from math import comb
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from sandbox.rewards import fit_linear_bradley_terry

#: ProgressGym's cap on the duplication weight of an extrapolated pair.
MAX_PAIR_WEIGHT = 5.0


# --------------------------------------------------------------------- extrapolation
def finite_difference_weights(order: int, steps: int) -> np.ndarray:
    """Weights c (length order+1) with y_{t+steps} ~= sum_i c_i y_{t-order+i}.

    They are the Lagrange weights of the degree-``order`` polynomial through the last
    order+1 equally spaced points, evaluated ``steps`` beyond the last one; equivalently
    ``steps`` iterations of the (order+1)-th finite difference set to zero (ProgressGym's
    recurrence). Integers, exact for polynomials of degree <= order.
    """
    if order < 0:
        raise ValueError(f"order must be >= 0, got {order}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    x = order + steps  # evaluation point on nodes 0..order
    w = np.empty(order + 1)
    for i in range(order + 1):
        # prod_{j != i} (x - j) / (i - j) in exact integer arithmetic (always an integer here)
        num = 1
        den = 1
        for j in range(order + 1):
            if j != i:
                num *= x - j
                den *= i - j
        w[i] = num // den if num % den == 0 else num / den
    return w


def finite_difference_extrapolate(series: ArrayLike, steps: int, order: int) -> np.ndarray:
    """Extrapolate ``series`` (time along axis 0, oldest first) ``steps`` ahead.

    Uses the last ``min(order, len - 1) + 1`` points; trailing axes are extrapolated
    independently (e.g. one vote history per query pair, or one per value dimension).
    """
    y = np.asarray(series, dtype=np.float64)
    if y.ndim == 0 or y.shape[0] == 0:
        raise ValueError("need at least one timestep to extrapolate")
    n = min(int(order), y.shape[0] - 1)
    if order < 0:
        raise ValueError(f"order must be >= 0, got {order}")
    w = finite_difference_weights(n, steps)
    return np.tensordot(w, y[-(n + 1) :], axes=(0, 0))


def recurrence_extrapolate(series: ArrayLike, steps: int, order: int) -> np.ndarray:
    """The same extrapolation by ProgressGym's route: iterate y_next = sum_i C(n+1, i) (-1)^(n-i) y_i.

    Kept as an independent check of :func:`finite_difference_extrapolate`.
    """
    y = np.asarray(series, dtype=np.float64)
    n = min(int(order), y.shape[0] - 1)
    coef = np.array([comb(n + 1, i) * (-1) ** (n - i) for i in range(n + 1)], dtype=np.float64)
    window = list(y[-(n + 1) :])
    for _ in range(steps):
        window.append(np.tensordot(coef, np.asarray(window[-(n + 1) :]), axes=(0, 0)))
    return np.asarray(window[-1])


# --------------------------------------------------------------------- estimation
def ideal_point_features(queries_a: ArrayLike, queries_b: ArrayLike) -> np.ndarray:
    """(M, d+1) features whose linear logit is beta (||B - h||^2 - ||A - h||^2)."""
    a = np.asarray(queries_a, dtype=np.float64)
    b = np.asarray(queries_b, dtype=np.float64)
    sq = (a * a).sum(axis=1) - (b * b).sum(axis=1)
    return np.concatenate([2.0 * (a - b), -sq[:, None]], axis=1)


def fit_ideal_point(
    features: ArrayLike,
    labels: ArrayLike,
    sample_weight: ArrayLike | None = None,
    l2: float = 1e-6,
    max_norm: float = 100.0,
    fallback: np.ndarray | None = None,
) -> np.ndarray:
    """The ideal point h = w[:d] / w[d] of a Bradley-Terry fit on :func:`ideal_point_features`.

    ``labels`` are P(A preferred) in [0, 1] (vote fractions or hard labels). When the fit
    finds no positive rationality (w[d] <= 0: preferences carry no signal) the
    ``fallback`` (or the zero vector) is returned; the result's norm is capped at
    ``max_norm``.
    """
    x = np.asarray(features, dtype=np.float64)
    w = fit_linear_bradley_terry(x, labels, l2=l2, sample_weight=sample_weight)
    d = x.shape[1] - 1
    if not w[d] > 1e-9:
        return np.zeros(d) if fallback is None else np.asarray(fallback, dtype=np.float64).copy()
    h = w[:d] / w[d]
    norm = float(np.linalg.norm(h))
    if norm > max_norm:
        h *= max_norm / norm
    return h


def votes_to_fraction(votes: ArrayLike, votes_per_pair: int) -> np.ndarray:
    """Net votes (#A - #B) of ``votes_per_pair`` voters -> fraction preferring A."""
    return (np.asarray(votes, dtype=np.float64) / votes_per_pair + 1.0) / 2.0


# --------------------------------------------------------------------- algorithms
class ProgressAligner:
    """Base: an AI that reads net votes on the env's query bank and returns a value vector.

    Use: ``agent.reset(info)`` with the env's reset ``info`` (query bank, votes per pair),
    then ``action = agent.act(obs, info)`` every step.
    """

    name = "base"

    def __init__(self, l2: float = 1e-6) -> None:
        self.l2 = float(l2)
        self.features: np.ndarray | None = None
        self.votes_per_pair = 1
        self.last: np.ndarray | None = None
        self.t = 0

    def reset(self, info: Mapping[str, Any]) -> None:
        for key in ("queries_a", "queries_b", "votes_per_pair"):
            if key not in info:
                raise KeyError(
                    f"{type(self).__name__}.reset needs info[{key!r}] (the env's reset info)"
                )
        self.features = ideal_point_features(info["queries_a"], info["queries_b"])
        self.votes_per_pair = int(info["votes_per_pair"])
        self.last = None
        self.t = 0

    def _fit(
        self, labels: np.ndarray, weights: np.ndarray | None = None, rows: np.ndarray | None = None
    ) -> np.ndarray:
        feats = self.features if rows is None else rows
        h = fit_ideal_point(feats, labels, sample_weight=weights, l2=self.l2, fallback=self.last)
        self.last = h
        return h

    def act(self, obs: ArrayLike, info: Mapping[str, Any] | None = None) -> np.ndarray:
        if self.features is None:
            raise RuntimeError(f"{type(self).__name__}: call reset(info) before act()")
        votes = np.asarray(obs, dtype=np.float64)
        if votes.shape != (self.features.shape[0],):
            raise ValueError(f"expected {self.features.shape[0]} votes, got shape {votes.shape}")
        action = self._act(votes, info or {})
        self.t += 1
        return action

    def _act(self, votes: np.ndarray, info: Mapping[str, Any]) -> np.ndarray:
        raise NotImplementedError


class StaticAligner(ProgressAligner):
    """Align once to the first timestep's preferences, then never change."""

    name = "static"

    def _act(self, votes, info):
        if self.t == 0:
            self._fit(votes_to_fraction(votes, self.votes_per_pair))
        return self.last.copy()


class LifelongAligner(ProgressAligner):
    """Re-align every step: from scratch on the current votes (``restart``) or on all so far."""

    def __init__(self, restart: bool = True, l2: float = 1e-6) -> None:
        super().__init__(l2)
        self.restart = bool(restart)
        self.name = "lifelong_restart" if restart else "lifelong"
        self._buffer: list[np.ndarray] = []

    def reset(self, info):
        super().reset(info)
        self._buffer = []

    def _act(self, votes, info):
        frac = votes_to_fraction(votes, self.votes_per_pair)
        if self.restart:
            return self._fit(frac).copy()
        # the Bradley-Terry loss is linear in the label, so one fit on the pooled buffer of
        # every step's (same) pairs equals one fit on the pairs with the mean label
        self._buffer.append(frac)
        return self._fit(np.mean(self._buffer, axis=0)).copy()


class ExtrapolativeAligner(ProgressAligner):
    """ProgressGym's extrapolative preference optimization on the vote histories."""

    name = "extrapolative"

    def __init__(self, order: int = 1, lookahead: int = 1, l2: float = 1e-6) -> None:
        super().__init__(l2)
        if order < 0 or lookahead < 0:
            raise ValueError("order and lookahead must be >= 0")
        self.order = int(order)
        self.lookahead = int(lookahead)
        self._votes: list[np.ndarray] = []

    def reset(self, info):
        super().reset(info)
        self._votes = []

    def extrapolated_dataset(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(features, hard labels, weights) of the pairs after extrapolation and flipping."""
        e = finite_difference_extrapolate(np.asarray(self._votes), self.lookahead, self.order)
        keep = e != 0
        labels = (e[keep] > 0).astype(np.float64)
        weights = np.minimum(np.abs(e[keep]), MAX_PAIR_WEIGHT)
        return self.features[keep], labels, weights

    def _act(self, votes, info):
        self._votes.append(votes.copy())
        feats, labels, weights = self.extrapolated_dataset()
        if labels.size == 0:
            return (self.last if self.last is not None else np.zeros(feats.shape[1] - 1)).copy()
        return self._fit(labels, weights, rows=feats).copy()


class ExtrapolativeVectorAligner(ProgressAligner):
    """Extrapolate the sequence of per-step ideal-point estimates ``lookahead`` steps ahead."""

    name = "extrapolative_vector"

    def __init__(
        self, order: int = 1, lookahead: int = 1, l2: float = 1e-6, max_norm: float = 100.0
    ) -> None:
        super().__init__(l2)
        if order < 0 or lookahead < 0:
            raise ValueError("order and lookahead must be >= 0")
        self.order = int(order)
        self.lookahead = int(lookahead)
        self.max_norm = float(max_norm)
        self._estimates: list[np.ndarray] = []

    def reset(self, info):
        super().reset(info)
        self._estimates = []

    def _act(self, votes, info):
        self._estimates.append(self._fit(votes_to_fraction(votes, self.votes_per_pair)).copy())
        v = finite_difference_extrapolate(np.asarray(self._estimates), self.lookahead, self.order)
        norm = float(np.linalg.norm(v))
        return v * (self.max_norm / norm) if norm > self.max_norm else v


class OracleAligner(ProgressAligner):
    """Knows the history (``info['history_trajectory']``) and plays history_{min(t+k, T)}."""

    name = "oracle"

    def __init__(self, lookahead: int = 0) -> None:
        super().__init__()
        if lookahead < 0:
            raise ValueError(f"lookahead must be >= 0, got {lookahead}")
        self.lookahead = int(lookahead)
        self.history: np.ndarray | None = None

    def reset(self, info):
        super().reset(info)
        if "history_trajectory" not in info:
            raise KeyError("OracleAligner needs info['history_trajectory'] at reset")
        self.history = np.asarray(info["history_trajectory"], dtype=np.float64)

    def _act(self, votes, info):
        t = int(info.get("t", self.t))
        return self.history[min(t + self.lookahead, self.history.shape[0] - 1)].copy()


ALGORITHMS: Sequence[str] = (
    "static",
    "lifelong",
    "lifelong_restart",
    "extrapolative",
    "extrapolative_vector",
    "oracle",
)


def make_aligner(
    name: str, order: int = 1, lookahead: int = 1, l2: float = 1e-6
) -> ProgressAligner:
    """Build an algorithm by name (one of :data:`ALGORITHMS`)."""
    if name == "static":
        return StaticAligner(l2)
    if name == "lifelong":
        return LifelongAligner(restart=False, l2=l2)
    if name == "lifelong_restart":
        return LifelongAligner(restart=True, l2=l2)
    if name == "extrapolative":
        return ExtrapolativeAligner(order, lookahead, l2)
    if name == "extrapolative_vector":
        return ExtrapolativeVectorAligner(order, lookahead, l2)
    if name == "oracle":
        return OracleAligner(lookahead)
    raise ValueError(f"unknown algorithm {name!r}; valid: {', '.join(ALGORITHMS)}")
