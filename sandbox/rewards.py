"""Reward models fitted to preferences (Bradley-Terry).

The shared core: the Bradley-Terry negative log-likelihood with soft labels, and a
deterministic fit of a linear reward from summed-feature differences. On the same loss:
PEBBLE's ensemble of MLP rewards over (s, a), run as one batched module
(:class:`EnsembleRewardModel`), and B-Pref's query selection (uniform, disagreement,
entropy: :func:`select_queries`).
"""

from __future__ import annotations

from collections.abc import Callable

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


# ---------------------------------------------------------------------------------------
# Ensemble MLP reward model (PEBBLE / B-Pref) and query selection
# ---------------------------------------------------------------------------------------

QUERY_SELECTIONS = ("uniform", "disagreement", "entropy")


class BatchedLinear(torch.nn.Module):
    """``n_members`` independent linear layers applied in one batched matmul.

    Input (E, B, in) -> output (E, B, out). Each member is initialised exactly like
    ``torch.nn.Linear`` (uniform in +-1/sqrt(in) for weights and biases).
    """

    def __init__(
        self,
        n_members: int,
        in_features: int,
        out_features: int,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        bound = 1.0 / float(np.sqrt(in_features))
        weight = torch.empty(n_members, in_features, out_features)
        bias = torch.empty(n_members, 1, out_features)
        weight.uniform_(-bound, bound, generator=generator)
        bias.uniform_(-bound, bound, generator=generator)
        self.weight = torch.nn.Parameter(weight)
        self.bias = torch.nn.Parameter(bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleRewardModel(torch.nn.Module):
    """PEBBLE's reward model: an ensemble of MLPs r_e(s, a), evaluated as their mean.

    Each member: ``hidden_sizes`` LeakyReLU layers (default 3 x 256) and a tanh output, so
    per-step rewards lie in (-1, 1). All members run as one batched module (one forward
    pass), on ``device``. Training minimises, for every member, the Bradley-Terry
    cross-entropy (:func:`preference_nll`) of its segment-sum logits R_e(sigma_1) -
    R_e(sigma_2), with soft labels for 'equally preferable'; Adam, lr 3e-4.

    Inputs are feature vectors x = concat(s, a) of size ``input_dim``.

    ``batched`` picks how the members' matmuls run inside the one forward pass:
    ``torch.bmm`` over the stacked weights (True; one kernel per layer, what pays on a GPU)
    or one GEMM per member over the same stacked parameters (False; faster than
    ``torch.bmm`` on CPUs, where PyTorch's bmm is slower than separate GEMMs). The default
    (None) picks bmm on accelerators and per-member GEMMs on the CPU; both give the same
    numbers.
    """

    def __init__(
        self,
        input_dim: int,
        n_members: int = 3,
        hidden_sizes: tuple[int, ...] = (256, 256, 256),
        lr: float = 3e-4,
        device: str | torch.device = "auto",
        seed: int | None = None,
        batched: bool | None = None,
    ) -> None:
        super().__init__()
        from sandbox.device import pick

        if n_members < 1:
            raise ValueError(f"n_members must be >= 1, got {n_members}")
        self.input_dim, self.n_members = int(input_dim), int(n_members)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        sizes = (self.input_dim, *hidden_sizes, 1)
        self.layers = torch.nn.ModuleList(
            BatchedLinear(n_members, a, b, generator)
            for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        )
        self.device = pick(device)
        self.batched = self.device.type != "cpu" if batched is None else bool(batched)
        self.to(self.device)
        self.optimizer = torch.optim.Adam(self.parameters(), lr=lr)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-member rewards. ``x`` is (..., in) (shared by all members) or (E, ..., in)
        with ``per_member`` inputs; returns (E, ...)."""
        return self.member_rewards(x)

    def member_rewards(self, x: torch.Tensor, per_member: bool = False) -> torch.Tensor:
        if per_member:
            if x.shape[0] != self.n_members:
                raise ValueError(f"per-member input needs leading dim {self.n_members}")
            lead = x.shape[1:-1]
            h = x.reshape(self.n_members, -1, x.shape[-1])
        else:
            lead = x.shape[:-1]
            h = x.reshape(1, -1, x.shape[-1]).expand(self.n_members, -1, -1)
        if h.shape[-1] != self.input_dim:
            raise ValueError(f"expected inputs with {self.input_dim} features, got {h.shape[-1]}")
        if self.batched:
            for layer in self.layers[:-1]:
                h = torch.nn.functional.leaky_relu(layer(h))
            h = torch.tanh(self.layers[-1](h))
        else:
            last = len(self.layers) - 1
            outs = []
            for e in range(self.n_members):
                x = h[e]
                for i, layer in enumerate(self.layers):
                    x = torch.addmm(layer.bias[e], x, layer.weight[e])
                    x = torch.tanh(x) if i == last else torch.nn.functional.leaky_relu(x)
                outs.append(x)
            h = torch.stack(outs)
        return h.reshape(self.n_members, *lead)

    def segment_returns(self, segments: torch.Tensor, per_member: bool = False) -> torch.Tensor:
        """Sum of each member's reward over segments (N, H, in) -> (E, N)."""
        return self.member_rewards(segments, per_member=per_member).sum(dim=-1)

    def _as_tensor(self, x: ArrayLike) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x, dtype=np.float32), device=self.device)

    @torch.no_grad()
    def predict(self, x: ArrayLike, batch_size: int = 16384) -> np.ndarray:
        """The ensemble-mean reward of inputs (N, in), in chunks, as float32 numpy (N,)."""
        arr = np.asarray(x, dtype=np.float32)
        out = np.empty(arr.shape[0], dtype=np.float32)
        for start in range(0, arr.shape[0], batch_size):
            chunk = self._as_tensor(arr[start : start + batch_size])
            out[start : start + batch_size] = self.member_rewards(chunk).mean(0).cpu().numpy()
        return out

    @torch.no_grad()
    def preference_probabilities(self, segments_1: ArrayLike, segments_2: ArrayLike) -> np.ndarray:
        """Each member's P(sigma_1 preferred) for segment pairs (N, H, in): (E, N)."""
        r1 = self.segment_returns(self._as_tensor(segments_1))
        r2 = self.segment_returns(self._as_tensor(segments_2))
        return torch.sigmoid(r1 - r2).cpu().numpy().astype(np.float64)

    def pair_loss(
        self,
        segments_1: torch.Tensor,
        segments_2: torch.Tensor,
        labels: torch.Tensor,
        per_member: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Summed member losses, logits (E, N) and labels broadcast to (E, N)."""
        logits = self.segment_returns(segments_1, per_member) - self.segment_returns(
            segments_2, per_member
        )
        targets = labels if labels.dim() == 2 else labels.expand_as(logits)
        # preference_nll averages over members too; x E = the sum of member means.
        loss = preference_nll(logits, targets) * self.n_members
        return loss, logits, targets

    def train_epoch(
        self,
        segments_1: ArrayLike,
        segments_2: ArrayLike,
        labels: ArrayLike,
        batch_size: int = 128,
        rng: np.random.Generator | None = None,
        extra_loss: Callable[[EnsembleRewardModel], torch.Tensor] | None = None,
    ) -> float:
        """One pass over the labelled pairs, each member in its own random order (B-Pref).

        ``extra_loss(model)`` is added to every minibatch loss (PARL's hypergradient term
        hooks in here; None trains the plain Bradley-Terry model). Returns the ensemble's
        training accuracy over members and pairs with hard labels (0.5 labels excluded).
        """
        rng = rng if rng is not None else np.random.default_rng()
        s1 = self._as_tensor(segments_1)
        s2 = self._as_tensor(segments_2)
        y = self._as_tensor(labels)
        n = int(y.shape[0])
        if n == 0:
            raise ValueError("cannot train a reward model on zero preferences")
        order = np.stack([rng.permutation(n) for _ in range(self.n_members)])
        correct, counted = 0.0, 0.0
        self.train()
        for start in range(0, n, batch_size):
            idx = torch.as_tensor(order[:, start : start + batch_size], device=self.device)
            loss, logits, targets = self.pair_loss(s1[idx], s2[idx], y[idx], per_member=True)
            if extra_loss is not None:
                loss = loss + extra_loss(self)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            with torch.no_grad():
                hard = targets != 0.5
                correct += float((((logits > 0).float() == targets) & hard).sum())
                counted += float(hard.sum())
        return correct / counted if counted else 1.0

    @torch.no_grad()
    def accuracy(self, segments_1: ArrayLike, segments_2: ArrayLike, labels: ArrayLike) -> float:
        """Agreement of the ensemble mean's preference with hard labels (ties excluded)."""
        y = np.asarray(labels, dtype=np.float64)
        p = self.preference_probabilities(segments_1, segments_2).mean(0)
        hard = y != 0.5
        if not hard.any():
            return float("nan")
        return float(np.mean((p[hard] > 0.5) == (y[hard] == 1.0)))


def query_scores(member_probabilities: ArrayLike, method: str) -> np.ndarray:
    """How much each candidate pair is worth asking about, from (E, N) member probabilities.

    ``disagreement``: the standard deviation over members of P(sigma_1 > sigma_2);
    ``entropy``: the members' mean binary entropy of that probability (B-Pref's
    ``entropy`` sampling); ``uniform`` scores every pair 0.
    """
    p = np.asarray(member_probabilities, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"expected member probabilities (E, N), got shape {p.shape}")
    if method == "uniform":
        return np.zeros(p.shape[1])
    if method == "disagreement":
        return p.std(axis=0)
    if method == "entropy":
        q = np.clip(p, 1e-12, 1 - 1e-12)
        return (-(q * np.log(q) + (1 - q) * np.log(1 - q))).mean(axis=0)
    raise ValueError(f"unknown query selection {method!r}; valid: {', '.join(QUERY_SELECTIONS)}")


def select_queries(
    member_probabilities: ArrayLike | None,
    k: int,
    method: str,
    rng: np.random.Generator,
    n_candidates: int | None = None,
) -> np.ndarray:
    """Indices of the k pairs to ask about among N candidates.

    ``uniform`` draws k candidates at random (``member_probabilities`` may be None, then
    ``n_candidates`` gives N); the others take the top-k by :func:`query_scores` (ties
    broken by candidate order). B-Pref draws the candidates as a random batch 10x larger
    than k (``large_batch``); the caller builds that batch.
    """
    if method not in QUERY_SELECTIONS:
        raise ValueError(
            f"unknown query selection {method!r}; valid: {', '.join(QUERY_SELECTIONS)}"
        )
    if member_probabilities is None:
        if method != "uniform" or n_candidates is None:
            raise ValueError(f"{method!r} selection needs member probabilities")
        n = n_candidates
    else:
        n = np.asarray(member_probabilities).shape[1]
    if not 0 < k <= n:
        raise ValueError(f"cannot select {k} queries from {n} candidates")
    if method == "uniform":
        return np.sort(rng.choice(n, size=k, replace=False))
    scores = query_scores(member_probabilities, method)
    return np.argsort(-scores, kind="stable")[:k]
