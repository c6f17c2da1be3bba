"""Partial-return and regret preference models over trajectory segments (Knox et al., TMLR 2024).

Everything here works on plain arrays of a tabular MDP with deterministic transitions,
so any environment can use it: ``next_state`` (S, A) integer successors, a reward table
(S, A) or features (S, A, F), and the optimal values V* (S,) / Q* (S, A) of the reward
that generates the preferences. Batches of segment pairs are arrays:

* ``states``  (N, 2, k + 1): the states visited by segment 1 and segment 2 of each pair;
* ``actions`` (N, 2, k):     the actions taken.

Statistics (all vectorized with fancy indexing, no per-pair Python):

* partial return  = sum_t r(s_t, a_t)  (undiscounted, as in the paper);
* regret (deterministic transitions) = V*(s_0) - (sum_t gamma^t r_t + gamma^k V*(s_k)),
  with V* of a terminal (absorbing, zero-reward) state equal to 0;
* regret (optimal-advantage form, valid for stochastic transitions too)
  = -sum_t gamma^t A*(s_t, a_t); the two agree exactly on deterministic MDPs.

Preference probabilities use the shared Boltzmann rule
(:func:`sandbox.preferences.boltzmann_probability`): P(segment 1 preferred) =
logistic((stat_1 - stat_2) / T) for partial return, logistic((regret_2 - regret_1) / T)
for regret; ``T = 0`` is the noiseless model with ties labelled 0.5. Statistics are
rounded to ``STAT_DECIMALS`` decimals before comparison so that two segments whose
statistics differ only by floating-point error count as a tie.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from sandbox.preferences import boltzmann_probability, sample_labels

PreferenceModel = Literal["partial_return", "regret"]
MODELS: tuple[str, ...] = ("partial_return", "regret")
STAT_DECIMALS = 8


@dataclass(frozen=True)
class SegmentPairs:
    """A batch of N segment pairs: ``states`` (N, 2, k+1) and ``actions`` (N, 2, k)."""

    states: np.ndarray
    actions: np.ndarray

    def __post_init__(self) -> None:
        s, a = np.asarray(self.states), np.asarray(self.actions)
        if s.ndim != 3 or s.shape[1] != 2 or a.shape != (s.shape[0], 2, s.shape[2] - 1):
            raise ValueError(
                f"expected states (N, 2, k+1) and actions (N, 2, k), got {s.shape} and {a.shape}"
            )

    def __len__(self) -> int:
        return int(self.states.shape[0])

    @property
    def length(self) -> int:
        return int(self.actions.shape[2])

    def __getitem__(self, idx: slice | np.ndarray) -> SegmentPairs:
        return SegmentPairs(self.states[idx], self.actions[idx])


def check_model(model: str) -> str:
    if model not in MODELS:
        raise ValueError(f"unknown preference model {model!r}; valid: {', '.join(MODELS)}")
    return model


def rollout(next_state: np.ndarray, start: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """States visited from ``start`` (...) under ``actions`` (..., k): returns (..., k + 1)."""
    start = np.asarray(start)
    actions = np.asarray(actions)
    states = np.empty((*actions.shape[:-1], actions.shape[-1] + 1), dtype=np.int64)
    states[..., 0] = start
    for t in range(actions.shape[-1]):  # k steps, each vectorized over every segment
        states[..., t + 1] = next_state[states[..., t], actions[..., t]]
    return states


def _segment_keys(
    start: np.ndarray, actions: np.ndarray, n_states: int, n_actions: int
) -> np.ndarray:
    """An integer code per segment (start state and action sequence), (N, 2) -> (N, 2)."""
    key = start.astype(np.int64)
    for t in range(actions.shape[-1]):
        key = key * n_actions + actions[..., t]
    return key


def sample_segment_pairs(
    next_state: np.ndarray,
    start_states: np.ndarray,
    n_pairs: int,
    length: int,
    rng: np.random.Generator,
    max_rounds: int = 20,
) -> SegmentPairs:
    """``n_pairs`` distinct pairs of segments: starts and actions uniform, duplicates removed.

    Each segment starts in a state drawn uniformly from ``start_states`` and takes
    ``length`` uniformly random actions. A pair of two identical segments is dropped, and so
    is a pair already drawn (in either order); the survivors keep the order they were drawn
    in. Raises ``ValueError`` when the MDP has fewer distinct pairs than requested.
    """
    if n_pairs < 0:
        raise ValueError(f"n_pairs must be >= 0, got {n_pairs}")
    if length < 1:
        raise ValueError(f"segment length must be >= 1, got {length}")
    start_states = np.asarray(start_states, dtype=np.int64)
    if start_states.size == 0:
        raise ValueError("cannot sample segments: the MDP has no start state")
    n_actions = next_state.shape[1]
    n_segments = float(start_states.size) * float(n_actions) ** length
    n_distinct = n_segments * (n_segments - 1) / 2
    if n_pairs > n_distinct:
        raise ValueError(
            f"asked for {n_pairs} distinct segment pairs but only {int(n_distinct)} exist "
            f"({start_states.size} start states, length {length})"
        )
    code_space = n_segments_int(next_state.shape[0], n_actions, length)
    use_int_keys = float(code_space) ** 2 < 2.0**62
    starts = np.empty((0, 2), dtype=np.int64)
    acts = np.empty((0, 2, length), dtype=np.int64)
    for _ in range(max_rounds):
        need = n_pairs - starts.shape[0]
        if need <= 0:
            break
        m = int(need * 1.1) + 16
        new_starts = start_states[rng.integers(0, start_states.size, size=(m, 2))]
        new_acts = rng.integers(0, n_actions, size=(m, 2, length))
        starts = np.concatenate([starts, new_starts])
        acts = np.concatenate([acts, new_acts])
        if use_int_keys:
            keys = _segment_keys(starts, acts, next_state.shape[0], n_actions)
            lo, hi = keys.min(axis=1), keys.max(axis=1)
            distinct = lo != hi
            _, first = np.unique(lo * np.int64(code_space) + hi, return_index=True)
        else:  # long segments: compare whole rows, each pair put in a canonical order
            rows = np.concatenate([starts[:, :, None], acts], axis=2)  # (N, 2, k+1)
            in_order = _lex_less_equal(rows[:, 0], rows[:, 1])
            canonical = np.where(in_order[:, None, None], rows, rows[:, ::-1])
            distinct = np.any(rows[:, 0] != rows[:, 1], axis=1)
            _, first = np.unique(canonical.reshape(len(rows), -1), axis=0, return_index=True)
        keep = np.zeros(starts.shape[0], dtype=bool)
        keep[first] = True
        keep &= distinct
        starts, acts = starts[keep], acts[keep]
    if starts.shape[0] < n_pairs:
        raise ValueError(f"could not draw {n_pairs} distinct segment pairs in {max_rounds} rounds")
    starts, acts = starts[:n_pairs], acts[:n_pairs]
    return SegmentPairs(rollout(next_state, starts, acts), acts)


def n_segments_int(n_states: int, n_actions: int, length: int) -> int:
    """Size of the segment-code space: codes lie in [0, n_states * n_actions**length)."""
    return int(n_states) * int(n_actions) ** int(length)


def _lex_less_equal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise lexicographic a <= b for integer arrays (N, L)."""
    diff = a != b
    first = np.argmax(diff, axis=1)
    rows = np.arange(a.shape[0])
    return ~diff.any(axis=1) | (a[rows, first] < b[rows, first])


def all_segments(
    next_state: np.ndarray, start_states: np.ndarray, length: int
) -> tuple[np.ndarray, np.ndarray]:
    """Every segment of ``length`` from every start state: states (M, k+1), actions (M, k)."""
    n_actions = next_state.shape[1]
    grids = np.meshgrid(*([np.arange(n_actions)] * length), indexing="ij")
    seqs = (
        np.stack([g.ravel() for g in grids], axis=1) if length else np.zeros((1, 0), dtype=np.int64)
    )
    starts = np.repeat(np.asarray(start_states, dtype=np.int64), seqs.shape[0])
    actions = np.tile(seqs, (len(start_states), 1))
    return rollout(next_state, starts, actions), actions


# ----------------------------------------------------------------------- statistics
def discounts(length: int, gamma: float) -> np.ndarray:
    return gamma ** np.arange(length, dtype=np.float64)


def _discounted_sum(per_step: np.ndarray, gamma: float) -> np.ndarray:
    """sum_t gamma^t x[..., t] (einsum: several times faster than a matmul on (N, 2, k))."""
    return np.einsum("...t,t->...", per_step, discounts(per_step.shape[-1], gamma))


def segment_features(
    features: np.ndarray, states: np.ndarray, actions: np.ndarray, gamma: float = 1.0
) -> np.ndarray:
    """Summed features sum_t gamma^t phi(s_t, a_t): (..., k+1) states -> (..., F)."""
    per_step = features[states[..., :-1], actions]  # (..., k, F)
    return np.einsum("...tf,t->...f", per_step, discounts(actions.shape[-1], gamma))


def partial_return(rewards: np.ndarray, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """Undiscounted sum of rewards along each segment, (..., k+1) states -> (...)."""
    return rewards[states[..., :-1], actions].sum(axis=-1)


def regret(
    rewards: np.ndarray, values: np.ndarray, states: np.ndarray, actions: np.ndarray, gamma: float
) -> np.ndarray:
    """Deterministic-transition regret V*(s_0) - (sum_t gamma^t r_t + gamma^k V*(s_k)), >= 0."""
    k = actions.shape[-1]
    ret = _discounted_sum(rewards[states[..., :-1], actions], gamma)
    return values[states[..., 0]] - (ret + gamma**k * values[states[..., -1]])


def regret_from_advantage(
    advantage: np.ndarray, states: np.ndarray, actions: np.ndarray, gamma: float
) -> np.ndarray:
    """Optimal-advantage regret -sum_t gamma^t A*(s_t, a_t) (valid for stochastic transitions)."""
    return -_discounted_sum(advantage[states[..., :-1], actions], gamma)


def segment_statistic(
    model: str,
    rewards: np.ndarray,
    states: np.ndarray,
    actions: np.ndarray,
    values: np.ndarray | None = None,
    gamma: float = 1.0,
) -> np.ndarray:
    """The score a preference model compares (higher is better): partial return, or -regret."""
    check_model(model)
    if model == "partial_return":
        stat = partial_return(rewards, states, actions)
    else:
        if values is None:
            raise ValueError(
                "the regret model needs the optimal values V* of the generating reward"
            )
        stat = -regret(rewards, values, states, actions, gamma)
    return np.round(stat, STAT_DECIMALS) + 0.0  # +0.0 turns -0.0 into 0.0


def preference_probability(
    model: str,
    pairs: SegmentPairs,
    rewards: np.ndarray,
    temperature: float,
    values: np.ndarray | None = None,
    gamma: float = 1.0,
) -> np.ndarray:
    """P(segment 1 preferred) for each pair under ``model`` ('partial_return' or 'regret')."""
    score = segment_statistic(model, rewards, pairs.states, pairs.actions, values, gamma)  # (N, 2)
    return boltzmann_probability(score[:, 0], score[:, 1], temperature)


def label_pairs(
    model: str,
    pairs: SegmentPairs,
    rewards: np.ndarray,
    temperature: float,
    rng: np.random.Generator,
    values: np.ndarray | None = None,
    gamma: float = 1.0,
) -> np.ndarray:
    """Sampled labels (1 = segment 1 preferred, 0 = segment 2, 0.5 = noiseless tie)."""
    p = preference_probability(model, pairs, rewards, temperature, values, gamma)
    return sample_labels(p, rng)


def label_pairs_loop(
    model: str,
    pairs: SegmentPairs,
    rewards: np.ndarray,
    values: np.ndarray | None = None,
    gamma: float = 1.0,
) -> np.ndarray:
    """Noiseless labels computed pair by pair in plain Python (the benchmark's reference)."""
    check_model(model)
    out = np.empty(len(pairs))
    states, actions = pairs.states.tolist(), pairs.actions.tolist()
    r = rewards.tolist()
    v = None if values is None else values.tolist()
    for i in range(len(out)):
        score = [0.0, 0.0]
        for j in range(2):
            s, a = states[i][j], actions[i][j]
            if model == "partial_return":
                score[j] = sum(r[s[t]][a[t]] for t in range(len(a)))
            else:
                ret = sum(gamma**t * r[s[t]][a[t]] for t in range(len(a)))
                score[j] = -(v[s[0]] - (ret + gamma ** len(a) * v[s[-1]]))
            score[j] = round(score[j], STAT_DECIMALS)
        out[i] = 1.0 if score[0] > score[1] else 0.0 if score[0] < score[1] else 0.5
    return out
