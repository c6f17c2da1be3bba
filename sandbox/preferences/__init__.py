"""Simulated human feedback over segment pairs.

Shared here: the Boltzmann (logistic) choice rule every preference model uses and the
sampling of labels from it. The models built on it live in submodules:
``segment_models`` (partial return vs regret, Knox et al.) and ``teachers`` (B-Pref's
scripted teachers).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def boltzmann_probability(score_1: ArrayLike, score_2: ArrayLike, temperature: float) -> np.ndarray:
    """P(segment 1 preferred) = logistic((score_1 - score_2) / temperature), elementwise.

    ``temperature == 0`` is the noiseless limit: 1 where score_1 > score_2, 0 where it is
    smaller, 0.5 on ties. Higher scores are better (pass ``-regret`` for regret).
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    diff = np.asarray(score_1, dtype=np.float64) - np.asarray(score_2, dtype=np.float64)
    if temperature == 0:
        return np.where(diff > 0, 1.0, np.where(diff < 0, 0.0, 0.5))
    z = diff / temperature
    # numerically stable logistic
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def sample_labels(
    prob_first: ArrayLike, rng: np.random.Generator, keep_ties: bool = True
) -> np.ndarray:
    """Draw labels (1.0 = segment 1 preferred, 0.0 = segment 2) from probabilities.

    With ``keep_ties`` an exact 0.5 stays a 0.5 label (the noiseless model's tie), as the
    papers label indistinguishable pairs; otherwise it is drawn like any probability.
    """
    p = np.asarray(prob_first, dtype=np.float64)
    labels = (rng.random(p.shape) < p).astype(np.float64)
    if keep_ties:
        labels = np.where(p == 0.5, 0.5, labels)
    return labels
