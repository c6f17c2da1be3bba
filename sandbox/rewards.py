"""Reward models fitted to preferences (Bradley-Terry).

The shared core: the Bradley-Terry negative log-likelihood with soft labels, and a
deterministic fit of a linear reward from summed-feature differences. Larger models
(MLP ensembles, query selection) build on the same loss.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import ArrayLike


def preference_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean Bradley-Terry cross-entropy; ``logits`` = score_1 - score_2, labels in [0, 1].

    Soft labels (0.5 for 'equally good') are handled as the papers do: the target is the
    label itself, not a rounded class.
    """
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)


def fit_linear_bradley_terry(
    feature_diffs: ArrayLike,
    labels: ArrayLike,
    l2: float = 1e-4,
    sample_weight: ArrayLike | None = None,
    max_iter: int = 200,
) -> np.ndarray:
    """Weights w maximizing sum_i log P(label_i | logit_i = w . feature_diffs_i) - l2 |w|^2.

    A convex problem solved with L-BFGS in float64 on the CPU, so the answer is the same
    on every machine. ``feature_diffs`` is (N, F): features of segment 1 minus segment 2.
    """
    x = torch.as_tensor(np.asarray(feature_diffs, dtype=np.float64))
    y = torch.as_tensor(np.asarray(labels, dtype=np.float64))
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(
            f"expected feature_diffs (N, F) and labels (N,), got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.shape[0] == 0:
        raise ValueError("cannot fit a reward model on zero preferences")
    if torch.any((y < 0) | (y > 1)):
        raise ValueError("labels must lie in [0, 1]")
    sw = (
        None
        if sample_weight is None
        else torch.as_tensor(np.asarray(sample_weight, dtype=np.float64))
    )
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [w],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=1e-10,
        tolerance_change=1e-12,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        per = torch.nn.functional.binary_cross_entropy_with_logits(x @ w, y, reduction="none")
        loss = (per * sw).sum() / sw.sum() if sw is not None else per.mean()
        loss = loss + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy().copy()
