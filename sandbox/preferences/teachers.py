"""B-Pref's scripted teachers (Lee et al., "B-Pref: Benchmarking Preference-Based RL", 2021).

A teacher labels pairs of segments (sigma_1, sigma_2) of length H from their true
per-step rewards r_t. Labels follow this package's convention: ``1.0`` = sigma_1
preferred, ``0.0`` = sigma_2 preferred, ``0.5`` = equally preferable; skipped queries are
``NaN`` (and ``kept`` is False). The steps, in B-Pref's order:

1. **skip** (``skip > 0``): drop the query when both segment returns are at most
   ``skip * m``, where ``m`` is the mean segment return seen so far;
2. **equal** (``equal > 0``): mark the pair "equally preferable" when
   ``|R_1 - R_2| < equal * m`` (undiscounted returns);
3. **myopic** (``gamma < 1``): step t of the segment is weighted gamma^(H-1-t), so the end
   of a segment counts most;
4. **stochastic** (``beta`` finite): P(sigma_2 preferred) = softmax(beta * [R_1, R_2])[1],
   i.e. the logistic rule with temperature 1/beta; ``beta = inf`` is the rational
   (oracle) teacher, who prefers the larger return;
5. **mistake** (``eps_mistake > 0``): flip each label with probability eps_mistake;
6. the pairs marked in step 2 get label 0.5 (after any flip, as in B-Pref).

``m`` follows B-Pref, where the thresholds are a fraction of the average return of a
segment-length piece of behaviour: here the running mean of the returns of every segment
the teacher has been shown so far, including the batch being labelled. Skipped queries
still count toward a feedback budget: the caller counts queries asked, not labels kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from sandbox.preferences import boltzmann_probability, sample_labels


@dataclass(frozen=True)
class TeacherSpec:
    """The parameters of one B-Pref teacher (defaults: the oracle)."""

    beta: float = math.inf
    gamma: float = 1.0
    eps_mistake: float = 0.0
    skip: float = 0.0
    equal: float = 0.0

    def __post_init__(self) -> None:
        if not self.beta > 0:
            raise ValueError(f"beta must be > 0 (inf = rational), got {self.beta}")
        if not 0 < self.gamma <= 1:
            raise ValueError(f"gamma must lie in (0, 1], got {self.gamma}")
        if not 0 <= self.eps_mistake <= 1:
            raise ValueError(f"eps_mistake must lie in [0, 1], got {self.eps_mistake}")
        if self.skip < 0 or self.equal < 0:
            raise ValueError("skip and equal thresholds must be >= 0")


PRESETS: dict[str, TeacherSpec] = {
    "oracle": TeacherSpec(),
    "noisy": TeacherSpec(beta=1.0),
    "mistake": TeacherSpec(eps_mistake=0.1),
    "skip": TeacherSpec(skip=0.1),
    "myopic": TeacherSpec(gamma=0.9),
    "equal": TeacherSpec(equal=0.1),
}


@dataclass
class Labels:
    """One labelled batch: ``labels`` (N,) in {0, 0.5, 1} or NaN where skipped; ``kept`` (N,)."""

    labels: np.ndarray
    kept: np.ndarray

    @property
    def n_asked(self) -> int:
        return int(self.kept.shape[0])


@dataclass
class Teacher:
    """A B-Pref teacher with its own random stream and running mean segment return."""

    spec: TeacherSpec = field(default_factory=TeacherSpec)
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    _return_sum: float = 0.0
    _return_count: int = 0

    @classmethod
    def preset(cls, name: str, rng: np.random.Generator | int | None = None) -> Teacher:
        if name not in PRESETS:
            raise ValueError(f"unknown teacher {name!r}; valid: {', '.join(PRESETS)}")
        return cls(PRESETS[name], np.random.default_rng(rng))

    @property
    def mean_segment_return(self) -> float:
        return self._return_sum / self._return_count if self._return_count else 0.0

    def label(self, rewards_1: ArrayLike, rewards_2: ArrayLike) -> Labels:
        """Label N segment pairs from their true rewards, each of shape (N, H)."""
        r1 = np.asarray(rewards_1, dtype=np.float64)
        r2 = np.asarray(rewards_2, dtype=np.float64)
        if r1.ndim != 2 or r1.shape != r2.shape:
            raise ValueError(
                f"expected two (N, H) reward arrays of one shape, got {r1.shape} and {r2.shape}"
            )
        spec = self.spec
        ret1, ret2 = r1.sum(axis=1), r2.sum(axis=1)
        self._return_sum += float(ret1.sum() + ret2.sum())
        self._return_count += 2 * ret1.shape[0]
        margin = self.mean_segment_return

        kept = np.ones(ret1.shape[0], dtype=bool)
        if spec.skip > 0:
            kept = np.maximum(ret1, ret2) > spec.skip * margin
        equal = np.abs(ret1 - ret2) < spec.equal * margin if spec.equal > 0 else np.zeros_like(kept)
        if spec.gamma < 1:
            h = r1.shape[1]
            weights = spec.gamma ** np.arange(h - 1, -1, -1, dtype=np.float64)
            ret1, ret2 = r1 @ weights, r2 @ weights
        temperature = 0.0 if math.isinf(spec.beta) else 1.0 / spec.beta
        p_first = boltzmann_probability(ret1, ret2, temperature)
        if temperature == 0.0:
            labels = p_first  # 1, 0, or 0.5 on an exact tie
        else:
            labels = sample_labels(p_first, self.rng, keep_ties=False)
        if spec.eps_mistake > 0:
            flip = self.rng.random(labels.shape) < spec.eps_mistake
            labels = np.where(flip, 1.0 - labels, labels)
        labels = np.where(equal, 0.5, labels)
        labels = np.where(kept, labels, np.nan)
        return Labels(labels=labels, kept=kept)
