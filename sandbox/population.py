"""Populations of simulated annotators on Mesa 3: heterogeneous values, bulk labelling, dynamics.

A :class:`Population` is a ``mesa.Model`` that owns N annotators. Everything about them
lives in numpy arrays on the model, the single source of truth:

* ``values`` (N, d): each annotator's value vector. Under the Bradley-Terry model it is
  the weight vector of a linear reward ``r_i(x) = values[i] . x``; under the ideal-point
  model it is the annotator's ideal point and ``r_i(x) = -||x - values[i]||^2``.
* ``groups`` (N,): integer group ids (majority, minorities, ...).
* ``beta`` (N,): Boltzmann rationality (0 = coin flips, ``inf`` = noiseless).
* ``bias`` (N,): an additive logit bias toward the first item of a pair.

An :class:`Annotator` agent is thin: it holds its row index and reads its row from the
model, so labelling a million queries is one vectorized expression rather than a loop
over agents. For very large populations pass ``create_agents=False`` to skip the agent
objects altogether; the arrays alone define the population.

``step()`` evolves the values: an external pull toward targets (e.g. an AI system's
values), social influence (DeGroot averaging over a network or all-to-all, or
Hegselmann-Krause bounded confidence) and Gaussian drift; a ``DataCollector`` records
group statistics at construction and after every step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import mesa
import numpy as np
from numpy.typing import ArrayLike
from scipy.special import expit

from sandbox.preferences import boltzmann_probability, sample_labels

if TYPE_CHECKING:
    import networkx

LabelModel = Literal["bradley_terry", "ideal_point"]
LABEL_MODELS: tuple[str, ...] = ("bradley_terry", "ideal_point")
SOCIAL_MODES: tuple[str, ...] = ("none", "degroot", "bounded_confidence")

# Rows per chunk in all-to-all bounded confidence, sized so a chunk's (rows, N, d)
# distance block stays near this many float64 elements.
_CHUNK_ELEMENTS = 4_000_000


class Annotator(mesa.Agent):
    """One simulated annotator; a view onto row ``index`` of its population's arrays."""

    model: Population

    def __init__(self, model: Population, index: int) -> None:
        super().__init__(model)
        self.index = int(index)

    @property
    def group(self) -> int:
        return int(self.model.groups[self.index])

    @property
    def values(self) -> np.ndarray:
        """This annotator's value vector: a writable view of ``model.values[index]``."""
        return self.model.values[self.index]

    @property
    def beta(self) -> float:
        return float(self.model.beta[self.index])

    @property
    def bias(self) -> float:
        return float(self.model.bias[self.index])

    def label(
        self,
        item_a: ArrayLike,
        item_b: ArrayLike,
        model: LabelModel = "bradley_terry",
    ) -> np.ndarray:
        """Label this annotator's own queries (rows of ``item_a`` vs ``item_b``) one by one.

        The per-agent path, for agent-based code that asks annotators in turn (e.g. inside
        an agent's ``step``); it uses the same choice rule as
        :meth:`Population.label_probabilities` and draws from the model's ``rng``. For
        many queries, :meth:`Population.label` does the same in one vectorized call.
        """
        if model not in LABEL_MODELS:
            raise ValueError(f"unknown label model {model!r}; valid: {', '.join(LABEL_MODELS)}")
        a = np.atleast_2d(np.asarray(item_a, dtype=np.float64))
        b = np.atleast_2d(np.asarray(item_b, dtype=np.float64))
        z = self.values
        out = np.empty(a.shape[0])
        for q in range(a.shape[0]):
            if model == "bradley_terry":
                diff = float(z @ (a[q] - b[q]))
            else:
                diff = float(((b[q] - z) ** 2).sum() - ((a[q] - z) ** 2).sum())
            logit = _scaled_logit(np.array([self.beta]), np.array([diff]), self.bias)
            p = float(boltzmann_probability(logit, 0.0, 1.0)[0])
            out[q] = 1.0 if self.model.rng.random() < p else 0.0
        return out


def _scaled_logit(beta: np.ndarray, diff: np.ndarray, bias: ArrayLike) -> np.ndarray:
    """beta * diff + bias, with beta = inf giving +-inf (0 on a tie) rather than nan."""
    with np.errstate(invalid="ignore"):
        z = beta * diff
    inf = np.isinf(beta)
    if inf.any():
        z = np.where(inf, np.where(diff > 0, np.inf, np.where(diff < 0, -np.inf, 0.0)), z)
    return z + bias


def _largest_remainder(n: int, shares: np.ndarray) -> np.ndarray:
    """Integer group sizes summing to n, proportional to shares (Hamilton's method).

    Leftover seats go to the largest fractional parts; ties go to the lower group index.
    """
    quotas = n * shares
    sizes = np.floor(quotas).astype(np.int64)
    left = n - int(sizes.sum())
    if left > 0:
        order = np.lexsort((np.arange(len(shares)), -(quotas - sizes)))
        sizes[order[:left]] += 1
    return sizes


def validate_shares(shares: Sequence[float]) -> np.ndarray:
    """Check group shares: each in (0, 1) (a lone group may have 1) and summing to 1."""
    arr = np.asarray(shares, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"shares must be a non-empty list of group shares, got {shares!r}")
    for k, s in enumerate(arr):
        if not np.isfinite(s) or s <= 0.0 or s > 1.0 or (s == 1.0 and arr.size > 1):
            raise ValueError(
                f"group share shares[{k}]={float(s)!r} is outside (0, 1); every group needs "
                "a share strictly between 0 and 1"
            )
    total = float(arr.sum())
    if abs(total - 1.0) > 1e-9:
        raise ValueError(
            f"group shares must sum to 1, got {total!r} from {[float(s) for s in arr]}"
        )
    return arr


class Population(mesa.Model):
    """A population of annotators whose values live in numpy arrays (see the module doc).

    Args:
        values: (N, d) value vectors / ideal points; copied to float64 and owned here.
        groups: (N,) non-negative integer group ids; default all 0.
        beta: rationality, a scalar or (N,); >= 0, ``inf`` allowed (noiseless labels).
        bias: optional (N,) additive logit bias toward item A; default 0.
        seed: seeds ``self.rng`` (and Mesa's ``self.random``); same seed, same labels.
        network: a networkx graph on nodes ``0..N-1`` for social influence (edge attribute
            ``weight`` is used when present), or a Mesa network space holding one
            (``mesa.space.NetworkGrid``, ``mesa.discrete_space.Network``: its ``.G``);
            ``None`` means all-to-all.
        create_agents: create one :class:`Annotator` per row (False for huge populations).
        collect_statistics: record group means, dispersion and the mean value in
            ``self.datacollector`` at construction and after every step. At 100k
            annotators that costs more than the step itself, so a hot loop that keeps its
            own statistics turns it off.
    """

    def __init__(
        self,
        values: np.ndarray,
        groups: np.ndarray | None = None,
        beta: float | np.ndarray = 1.0,
        bias: np.ndarray | None = None,
        seed: int | None = None,
        network: networkx.Graph | Any | None = None,
        create_agents: bool = True,
        collect_statistics: bool = True,
    ) -> None:
        super().__init__(seed=seed)
        vals = np.array(values, dtype=np.float64, copy=True)
        if vals.ndim != 2:
            raise ValueError(f"values must be a 2-D (N, d) array, got shape {vals.shape}")
        if not np.all(np.isfinite(vals)):
            raise ValueError("values must be finite")
        n = vals.shape[0]
        self.values: np.ndarray = vals

        if groups is None:
            grp = np.zeros(n, dtype=np.int64)
        else:
            raw = np.asarray(groups)
            if raw.shape != (n,):
                raise ValueError(f"groups must have shape ({n},), got {raw.shape}")
            if raw.size and not np.issubdtype(raw.dtype, np.integer):
                if not np.all(np.equal(np.mod(raw, 1), 0)):
                    raise ValueError("groups must be integer ids")
            grp = raw.astype(np.int64)
            if grp.size and grp.min() < 0:
                raise ValueError(f"groups must be non-negative ids, got min {int(grp.min())}")
        self.groups: np.ndarray = grp

        b = np.asarray(beta, dtype=np.float64)
        if b.ndim == 0:
            b = np.full(n, float(b))
        if b.shape != (n,):
            raise ValueError(f"beta must be a scalar or shape ({n},), got {b.shape}")
        if np.any(np.isnan(b)) or np.any(b < 0):
            raise ValueError("beta (rationality) must be >= 0 (inf allowed for noiseless)")
        self.beta: np.ndarray = b.copy()

        if bias is None:
            bi = np.zeros(n)
        else:
            bi = np.array(bias, dtype=np.float64, copy=True)
            if bi.ndim == 0:
                bi = np.full(n, float(bi))
            if bi.shape != (n,) or not np.all(np.isfinite(bi)):
                raise ValueError(f"bias must be finite with shape ({n},), got {bi.shape}")
        self.bias: np.ndarray = bi

        if network is not None and not hasattr(network, "nodes") and hasattr(network, "G"):
            network = network.G  # a Mesa network space: use its graph
        self.network = network
        self.adjacency = None if network is None else self._adjacency(network, n)

        if create_agents and n:
            Annotator.create_agents(self, n, index=np.arange(n))

        self.datacollector = mesa.DataCollector(
            model_reporters={
                "group_means": lambda m: m.group_means(),
                "group_dispersion": lambda m: m.group_dispersion(),
                "mean_value": lambda m: m.values.mean(axis=0) if m.n else np.zeros(m.dim),
            }
        )
        self.collect_statistics = collect_statistics
        if collect_statistics:
            self.datacollector.collect(self)

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_groups(
        cls,
        n: int,
        shares: Sequence[float],
        centres: np.ndarray,
        spread: float = 0.0,
        beta: float = 1.0,
        seed: int | None = None,
        **kwargs,
    ) -> Population:
        """K groups of given shares around given centres: values = centre + spread * N(0, I).

        Group sizes are the largest-remainder rounding of ``n * shares``; annotators are
        numbered group by group (group 0 first). The value draws use a child of ``seed``'s
        seed sequence, independent of the stream ``self.rng`` later uses for labels.
        """
        if int(n) != n or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        n = int(n)
        arr = validate_shares(shares)
        c = np.asarray(centres, dtype=np.float64)
        if c.ndim != 2 or c.shape[0] != arr.size:
            raise ValueError(
                f"centres must have shape (K, d) with K={arr.size} groups, got {c.shape}"
            )
        if not np.isfinite(spread) or spread < 0:
            raise ValueError(f"spread must be >= 0, got {spread!r}")
        sizes = _largest_remainder(n, arr)
        groups = np.repeat(np.arange(arr.size), sizes)
        value_rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
        values = value_rng.standard_normal((n, c.shape[1]))
        values *= spread
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        for k in range(arr.size):  # groups are contiguous blocks: no (n, d) temporaries
            values[bounds[k] : bounds[k + 1]] += c[k]
        return cls(values=values, groups=groups, beta=beta, seed=seed, **kwargs)

    @staticmethod
    def _adjacency(network: networkx.Graph, n: int):
        import networkx as nx

        nodes = set(network.nodes)
        if nodes != set(range(n)):
            raise ValueError(
                f"network nodes must be exactly the annotator indices 0..{n - 1} "
                f"(got {len(nodes)} nodes)"
            )
        adj = nx.to_scipy_sparse_array(network, nodelist=range(n), weight="weight", format="csr")
        adj.setdiag(0)  # self-loops are not neighbours
        adj.eliminate_zeros()
        return adj.astype(np.float64).tocsr()

    # ------------------------------------------------------------------- properties
    @property
    def n(self) -> int:
        return self.values.shape[0]

    @property
    def dim(self) -> int:
        return self.values.shape[1]

    @property
    def n_groups(self) -> int:
        return int(self.groups.max()) + 1 if self.groups.size else 0

    def group_sizes(self) -> np.ndarray:
        return np.bincount(self.groups, minlength=self.n_groups)

    def group_means(self) -> np.ndarray:
        """(K, d) mean value vector of each group (nan for an empty group id)."""
        k = self.n_groups
        sums = (
            np.stack(
                [
                    np.bincount(self.groups, weights=self.values[:, j], minlength=k)
                    for j in range(self.dim)
                ],
                axis=1,
            )
            if self.dim
            else np.zeros((k, 0))
        )
        counts = self.group_sizes()
        with np.errstate(invalid="ignore", divide="ignore"):
            return sums / counts[:, None]

    def group_dispersion(self) -> np.ndarray:
        """(K,) root-mean-square distance of each group's members to the group mean."""
        means = self.group_means()
        sq = np.zeros(self.n)
        for j in range(self.dim):  # column by column: (N,) temporaries only
            sq += (self.values[:, j] - means[self.groups, j]) ** 2
        counts = self.group_sizes()
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.sqrt(np.bincount(self.groups, weights=sq, minlength=self.n_groups) / counts)

    # -------------------------------------------------------------------- labelling
    def _queries(
        self, annotators: ArrayLike, item_a: ArrayLike, item_b: ArrayLike
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        idx = np.asarray(annotators)
        if idx.ndim != 1:
            raise ValueError(f"annotators must be a 1-D array of indices, got shape {idx.shape}")
        if idx.size and not np.issubdtype(idx.dtype, np.integer):
            raise ValueError("annotators must be integer indices")
        if idx.size and (idx.min() < 0 or idx.max() >= self.n):
            raise ValueError(
                f"annotator indices must lie in [0, {self.n}), got {idx.min()}..{idx.max()}"
            )
        q = idx.shape[0]
        a = np.asarray(item_a, dtype=np.float64)
        b = np.asarray(item_b, dtype=np.float64)
        for name, x in (("item_a", a), ("item_b", b)):
            if x.shape not in ((q, self.dim), (self.dim,)):
                raise ValueError(
                    f"{name} must have shape ({q}, {self.dim}) or ({self.dim},), got {x.shape}"
                )
        return idx, a, b

    def reward_differences(
        self,
        annotators: ArrayLike,
        item_a: ArrayLike,
        item_b: ArrayLike,
        model: LabelModel = "bradley_terry",
    ) -> np.ndarray:
        """r_i(A) - r_i(B) for each query under the annotators' true (noiseless) rewards.

        ``bradley_terry``: r_i(x) = values[i] . x; ``ideal_point``: r_i(x) = -||x - values[i]||^2.
        """
        if model not in LABEL_MODELS:
            raise ValueError(f"unknown label model {model!r}; valid: {', '.join(LABEL_MODELS)}")
        idx, a, b = self._queries(annotators, item_a, item_b)
        z = self.values[idx]
        if model == "bradley_terry":
            return np.einsum("qd,qd->q", z, np.broadcast_to(a - b, z.shape))
        da, db = a - z, b - z
        return np.einsum("qd,qd->q", db, db) - np.einsum("qd,qd->q", da, da)

    def label_probabilities(
        self,
        annotators: ArrayLike,
        item_a: ArrayLike,
        item_b: ArrayLike,
        model: LabelModel = "bradley_terry",
    ) -> np.ndarray:
        """P(item A preferred) for each query (annotator[q], item_a[q], item_b[q]).

        P = logistic(beta_i * (r_i(A) - r_i(B)) + bias_i) with the rewards of
        :meth:`reward_differences`. Items are (Q, d) (or one (d,) item for every query).
        """
        diff = self.reward_differences(annotators, item_a, item_b, model)
        idx = np.asarray(annotators)
        # the logistic choice rule of sandbox.preferences.boltzmann_probability at
        # temperature 1, via scipy's expit (stable, and ~5x faster on 1e6 queries)
        return expit(_scaled_logit(self.beta[idx], diff, self.bias[idx]))

    def label(
        self,
        annotators: ArrayLike,
        item_a: ArrayLike,
        item_b: ArrayLike,
        model: LabelModel = "bradley_terry",
    ) -> np.ndarray:
        """0/1 labels (1.0 = item A preferred) drawn with ``self.rng`` from the probabilities."""
        p = self.label_probabilities(annotators, item_a, item_b, model)
        return sample_labels(p, self.rng, keep_ties=False)

    # --------------------------------------------------------------------- dynamics
    def step(
        self,
        pull_targets: Sequence[tuple[ArrayLike, float]] = (),
        social: Literal["none", "degroot", "bounded_confidence"] = "none",
        social_rate: float = 0.0,
        confidence: float = float("inf"),
        noise: float = 0.0,
    ) -> None:
        """One synchronous update of every annotator's values, then a data collection
        (when ``collect_statistics``).

        values <- values + sum_k rate_k (target_k - values)
                         + social_rate (neighbour mean - values) + noise N(0, I)

        All terms are computed from the values before the step. ``degroot`` averages over
        the network's neighbours (edge-weighted) or, with no network, over all other
        annotators; ``bounded_confidence`` (Hegselmann-Krause) counts only neighbours
        within Euclidean distance ``confidence``. An annotator without (counted)
        neighbours feels no social pull. An annotator never counts as its own neighbour.
        """
        if social not in SOCIAL_MODES:
            raise ValueError(f"unknown social mode {social!r}; valid: {', '.join(SOCIAL_MODES)}")
        for name, v in (("social_rate", social_rate),):
            if not (0.0 <= v <= 1.0):
                raise ValueError(f"{name} must lie in [0, 1], got {v!r}")
        if np.isnan(confidence) or confidence < 0:
            raise ValueError(f"confidence must be >= 0, got {confidence!r}")
        if not np.isfinite(noise) or noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise!r}")

        old = self.values
        delta = np.zeros_like(old)
        for k, item in enumerate(pull_targets):
            target, rate = item
            if not (0.0 <= float(rate) <= 1.0):
                raise ValueError(f"pull_targets[{k}] rate must lie in [0, 1], got {rate!r}")
            t = np.asarray(target, dtype=np.float64)
            if t.shape not in ((self.dim,), old.shape):
                raise ValueError(
                    f"pull_targets[{k}] target must have shape ({self.dim},) or {old.shape}, "
                    f"got {t.shape}"
                )
            delta += float(rate) * (t - old)

        if social != "none" and social_rate > 0 and self.n > 1:
            if social == "degroot" or np.isinf(confidence):
                mean, has = self._neighbour_mean(old)
            else:
                mean, has = self._confident_mean(old, float(confidence))
            delta += social_rate * np.where(has[:, None], mean - old, 0.0)

        if noise > 0:
            delta += noise * self.rng.standard_normal(old.shape)
        self.values += delta  # in place: agents' views stay valid
        if self.collect_statistics:
            self.datacollector.collect(self)

    def _neighbour_mean(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.adjacency is None:
            n = x.shape[0]
            return (x.sum(axis=0)[None, :] - x) / (n - 1), np.ones(n, dtype=bool)
        deg = np.asarray(self.adjacency.sum(axis=1)).ravel()
        has = deg > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (self.adjacency @ x) / np.where(has, deg, 1.0)[:, None]
        return mean, has

    def _confident_mean(self, x: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
        n, d = x.shape
        if self.adjacency is not None:
            import scipy.sparse as sp

            adj = self.adjacency
            rows = np.repeat(np.arange(n), np.diff(adj.indptr))
            close = ((x[rows] - x[adj.indices]) ** 2).sum(axis=1) <= eps * eps
            w = sp.csr_matrix((adj.data * close, adj.indices, adj.indptr), shape=adj.shape)
            deg = np.asarray(w.sum(axis=1)).ravel()
            has = deg > 0
            return (w @ x) / np.where(has, deg, 1.0)[:, None], has
        if d == 1:  # sort + prefix sums: O(N log N)
            order = np.argsort(x[:, 0], kind="stable")
            s = x[order, 0]
            csum = np.concatenate([[0.0], np.cumsum(s)])
            lo = np.searchsorted(s, s - eps, side="left")
            hi = np.searchsorted(s, s + eps, side="right")
            count = (hi - lo - 1).astype(np.float64)
            total = csum[hi] - csum[lo] - s
            has_sorted = count > 0
            mean_sorted = np.where(has_sorted, total / np.where(has_sorted, count, 1.0), s)
            mean = np.empty((n, 1))
            has = np.empty(n, dtype=bool)
            mean[order, 0] = mean_sorted
            has[order] = has_sorted
            return mean, has
        chunk = max(1, _CHUNK_ELEMENTS // max(1, n * d))
        mean = np.empty_like(x)
        count = np.empty(n)
        for start in range(0, n, chunk):
            block = x[start : start + chunk]
            close = ((block[:, None, :] - x[None, :, :]) ** 2).sum(axis=2) <= eps * eps
            close[np.arange(block.shape[0]), np.arange(start, start + block.shape[0])] = False
            count[start : start + chunk] = close.sum(axis=1)
            mean[start : start + chunk] = close.astype(np.float64) @ x
        has = count > 0
        return mean / np.where(has, count, 1.0)[:, None], has
