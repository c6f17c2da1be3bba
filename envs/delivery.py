"""The delivery gridworld of Knox et al. (TMLR 2024) as an exact, vectorized tabular MDP.

A grid of cells, each one of: blank, house (blocks movement), sheep (terminal, penalty),
goal (terminal, bonus), coin, roadblock, mud. Four actions (up, right, down, left) move
the agent deterministically by one cell. Every transition has a feature vector

    [gas, goal, sheep, coin, roadblock, mud]

and the reward is ``w . features``. The features of a move are those of the step itself
(``gas = 1``, or ``mud = 1`` instead when the agent enters a mud cell: mud replaces the gas
cost) plus the cell entered (``goal``, ``sheep``, ``coin`` or ``roadblock`` = 1). With the
default weights ``[-1, 50, -50, 1, -1, -2]`` a blank step costs -1, a coin step nets 0, a
roadblock step -2, a mud step -2. Bumping into a house or the grid's edge leaves the agent
where it is and costs one plain gas step (no cell is entered, so nothing is collected).
Coins are not used up (the state is the agent's cell only). Terminal cells (goal, sheep)
are absorbing: every action stays with all-zero features, so their value is 0.

The MDP is held as arrays: ``next_state`` (S x A), ``features`` (S x A x F), ``terminal``
(S,), ``start_states`` (the non-terminal, non-house cells). ``DeliveryMDP.solve`` gives the
exact V*, Q* by policy iteration whose evaluation is exact (pointer doubling over the
deterministic successor map); ``value_iteration`` is the textbook vectorized sweep;
``evaluate`` evaluates any stochastic policy by a linear solve. ``DeliveryEnv``
(``sandbox/Delivery-v0``) exposes one MDP through Gymnasium.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

# cell types
BLANK, HOUSE, SHEEP, GOAL, COIN, ROADBLOCK, MUD = range(7)
CELL_NAMES = ("blank", "house", "sheep", "goal", "coin", "roadblock", "mud")
CELL_CHARS = ".HSGCRM"
FEATURES = ("gas", "goal", "sheep", "coin", "roadblock", "mud")
N_FEATURES = len(FEATURES)
DEFAULT_WEIGHTS = np.array([-1.0, 50.0, -50.0, 1.0, -1.0, -2.0])
ACTIONS = ("up", "right", "down", "left")
_MOVES = np.array([(-1, 0), (0, 1), (1, 0), (0, -1)])

# The paper's random-MDP generator (Knox et al., Appendix): choices drawn uniformly.
HEIGHTS = (3, 6, 10, 15)
WIDTHS = (5, 6, 10)
SHEEP_PROPORTIONS = (0.0, 0.1, 0.3)
ROADBLOCK_PROPORTIONS = (0.0, 0.1, 0.5, 0.8)
COIN_PROPORTIONS = (0.0, 0.1, 0.2)
GOAL_WEIGHTS = (0.0, 1.0, 5.0, 10.0, 50.0)
SHEEP_WEIGHTS = (-5.0, -10.0, -50.0, -100.0)
ROADBLOCK_WEIGHTS = (-2.0, -5.0, -10.0)
MUD_WEIGHTS = (-1.0, -2.0, -3.0)

# Action values closer than TIE_TOL x (the largest |Q|, at least 1) are ties; policy
# iteration only switches an action for a gain above IMPROVE_TOL x the value scale.
TIE_TOL = 1e-9
IMPROVE_TOL = 1e-12


@dataclass(frozen=True)
class Solution:
    """Exact optimal values of an MDP under one reward: V* (S,), Q* (S, A), discount."""

    V: np.ndarray
    Q: np.ndarray
    gamma: float
    iterations: int

    @property
    def advantage(self) -> np.ndarray:
        """A*(s, a) = Q*(s, a) - V*(s) (<= 0, 0 exactly for optimal actions)."""
        return self.Q - self.V[:, None]

    def optimal_actions(self, tol: float = TIE_TOL) -> np.ndarray:
        """Boolean (S, A): actions within ``tol`` of the best (scaled by the value size)."""
        scale = max(1.0, float(np.abs(self.Q).max(initial=0.0)))
        return self.Q >= self.V[:, None] - tol * scale

    def greedy_policy(self, tol: float = TIE_TOL) -> np.ndarray:
        """The greedy stochastic policy (S, A): uniform over the optimal actions."""
        best = self.optimal_actions(tol).astype(np.float64)
        return best / best.sum(axis=1, keepdims=True)


def _parse_layout(layout: str | list[str]) -> np.ndarray:
    rows = [r.strip() for r in (layout.strip().splitlines() if isinstance(layout, str) else layout)]
    rows = [r for r in rows if r]
    if not rows or len({len(r) for r in rows}) != 1:
        raise ValueError("a layout needs one or more rows of equal length")
    grid = np.zeros((len(rows), len(rows[0])), dtype=np.int64)
    for i, row in enumerate(rows):
        for j, ch in enumerate(row):
            idx = CELL_CHARS.find(ch.upper())
            if idx < 0:
                raise ValueError(f"unknown cell {ch!r} in layout; valid: {CELL_CHARS!r}")
            grid[i, j] = idx
    return grid


@dataclass(eq=False)
class DeliveryMDP:
    """One delivery gridworld: a grid of cell types and reward weights over the 6 features.

    ``grid`` is an (H, W) integer array of cell types (``BLANK`` ... ``MUD``), or build one
    from text with :meth:`from_layout` (``. H S G C R M``). States are cells, numbered
    row-major (``s = row * W + col``); house cells are states too but unreachable and never
    start states.
    """

    grid: np.ndarray
    weights: np.ndarray = field(default_factory=lambda: DEFAULT_WEIGHTS.copy())
    name: str = "delivery"

    def __post_init__(self) -> None:
        self.grid = np.asarray(self.grid, dtype=np.int64)
        self.weights = np.asarray(self.weights, dtype=np.float64)
        if self.grid.ndim != 2 or self.grid.size == 0:
            raise ValueError(f"grid must be a non-empty 2-D array, got shape {self.grid.shape}")
        if self.grid.min() < 0 or self.grid.max() >= len(CELL_NAMES):
            raise ValueError(f"grid cells must be cell types 0..{len(CELL_NAMES) - 1}")
        if self.weights.shape != (N_FEATURES,):
            raise ValueError(
                f"weights must have shape ({N_FEATURES},) over {FEATURES}, got {self.weights.shape}"
            )
        self._build()
        if self.start_states.size == 0:
            raise ValueError(
                f"MDP {self.name!r} has no start state (every cell is a house or terminal)"
            )

    @classmethod
    def from_layout(
        cls, layout: str | list[str], weights: Any = None, name: str = "delivery"
    ) -> DeliveryMDP:
        w = DEFAULT_WEIGHTS.copy() if weights is None else np.asarray(weights, dtype=np.float64)
        return cls(_parse_layout(layout), w, name)

    # ----------------------------------------------------------------- structure
    def _build(self) -> None:
        h, w = self.grid.shape
        cells = self.grid.ravel()
        rows, cols = np.divmod(np.arange(h * w), w)
        nr = rows[:, None] + _MOVES[None, :, 0]
        nc = cols[:, None] + _MOVES[None, :, 1]
        inside = (nr >= 0) & (nr < h) & (nc >= 0) & (nc < w)
        target = np.where(inside, np.clip(nr, 0, h - 1) * w + np.clip(nc, 0, w - 1), 0)
        blocked = ~inside | (cells[target] == HOUSE)
        terminal = (cells == GOAL) | (cells == SHEEP)
        stay = np.arange(h * w)[:, None]
        nxt = np.where(blocked | terminal[:, None], stay, target)

        feats = np.zeros((h * w, 4, N_FEATURES))
        entered = np.where(blocked, -1, cells[target])
        feats[..., 0] = entered != MUD  # gas: every move, except a mud step
        feats[..., 1] = entered == GOAL
        feats[..., 2] = entered == SHEEP
        feats[..., 3] = entered == COIN
        feats[..., 4] = entered == ROADBLOCK
        feats[..., 5] = entered == MUD
        feats[terminal] = 0.0  # absorbing
        self.next_state = nxt
        self.features = feats
        self.terminal = terminal
        self.start_states = np.flatnonzero(~terminal & (cells != HOUSE))

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.grid.shape)  # type: ignore[return-value]

    @property
    def n_states(self) -> int:
        return self.grid.size

    @property
    def n_actions(self) -> int:
        return len(ACTIONS)

    def reward(self, weights: Any = None) -> np.ndarray:
        """The (S, A) reward table ``features @ w`` (the MDP's own weights by default)."""
        w = self.weights if weights is None else np.asarray(weights, dtype=np.float64)
        return self.features @ w

    def with_weights(self, weights: Any) -> DeliveryMDP:
        return DeliveryMDP(self.grid.copy(), np.asarray(weights, dtype=np.float64), self.name)

    def render(self) -> str:
        """The grid as text, one character per cell (``. H S G C R M``)."""
        return "\n".join("".join(CELL_CHARS[c] for c in row) for row in self.grid)

    # ----------------------------------------------------------------- solving
    def solve(self, gamma: float = 0.999, weights: Any = None, max_iter: int = 1000) -> Solution:
        """Exact V*, Q* under ``weights`` (default: the MDP's) by policy iteration.

        Each evaluation is exact (pointer doubling over the deterministic successor map, so
        no linear solve and no slow geometric convergence at gamma close to 1); each
        improvement switches only where an action beats the current one by more than the
        tie tolerance, so the iteration terminates.
        """
        if not 0 <= gamma < 1:
            raise ValueError(f"gamma must lie in [0, 1), got {gamma}")
        r = self.reward(weights)
        sol = solve_batch(self.next_state, r[..., None], gamma, max_iter=max_iter)
        return Solution(sol[0][:, 0], sol[1][:, :, 0], gamma, sol[2])

    def value_iteration(
        self, gamma: float = 0.999, weights: Any = None, tol: float = 1e-10, max_iter: int = 200_000
    ) -> Solution:
        """Vectorized value iteration: V <- max_a r(s, a) + gamma V(s') over all (S, A) at once.

        Stops when the sup-norm change guarantees |V - V*| < ``tol`` (change below
        tol (1 - gamma) / gamma); slow at gamma near 1 when values take long to propagate,
        which is why :meth:`solve` uses policy iteration instead.
        """
        if not 0 <= gamma < 1:
            raise ValueError(f"gamma must lie in [0, 1), got {gamma}")
        r = self.reward(weights)
        v = np.zeros(self.n_states)
        threshold = tol * (1 - gamma) / max(gamma, 1e-12)
        iterations = 0
        while iterations < max_iter:
            iterations += 1
            v_new = (r + gamma * v[self.next_state]).max(axis=1)
            delta = np.abs(v_new - v).max()
            v = v_new
            if delta < threshold:
                break
        q = r + gamma * v[self.next_state]
        return Solution(q.max(axis=1), q, gamma, iterations)

    def evaluate(self, policy: np.ndarray, gamma: float = 0.999, weights: Any = None) -> np.ndarray:
        """V^pi (S,) of a stochastic policy ``policy`` (S, A), by one linear solve."""
        policy = np.asarray(policy, dtype=np.float64)
        if policy.shape != (self.n_states, self.n_actions):
            raise ValueError(
                f"policy must be (S, A) = {(self.n_states, self.n_actions)}, got {policy.shape}"
            )
        r_pi = (policy * self.reward(weights)).sum(axis=1)
        p = np.zeros((self.n_states, self.n_states))
        np.add.at(
            p,
            (np.repeat(np.arange(self.n_states), self.n_actions), self.next_state.ravel()),
            policy.ravel(),
        )
        return np.linalg.solve(np.eye(self.n_states) - gamma * p, r_pi)

    def uniform_policy(self) -> np.ndarray:
        return np.full((self.n_states, self.n_actions), 1.0 / self.n_actions)

    def successor_features(self, actions: np.ndarray, gamma: float = 0.999) -> np.ndarray:
        """Successor features psi^pi(s) = E[sum_t gamma^t phi_t] of deterministic policies.

        ``actions`` (S,) gives (S, F); ``actions`` (S, K) gives (K, S, F). Then
        V^pi_w(s) = psi^pi(s) . w for every weight vector w.
        """
        actions = np.asarray(actions)
        if actions.ndim == 1:
            return evaluate_deterministic(self.next_state, actions, self.features, gamma)
        k = actions.shape[1]
        feats = np.broadcast_to(
            self.features[:, :, None, :], (*self.features.shape[:2], k, N_FEATURES)
        )
        psi = evaluate_deterministic(self.next_state, actions, feats, gamma)  # (S, K, F)
        return np.ascontiguousarray(psi.transpose(1, 0, 2))


def evaluate_deterministic(
    next_state: np.ndarray, actions: np.ndarray, rewards: np.ndarray, gamma: float
) -> np.ndarray:
    """Exact V of deterministic policies in a deterministic MDP, vectorized by pointer doubling.

    ``next_state`` (S, A); ``actions`` (S,) or (S, K); ``rewards`` (S, A, *rest) where, when
    ``actions`` is (S, K), ``rest`` starts with K. After k doublings ``acc`` holds the
    discounted sum over the first 2^k steps and ``ptr`` the state reached after 2^k steps.
    """
    s = next_state.shape[0]
    batched = actions.ndim == 2
    idx = np.arange(s)[:, None] if batched else np.arange(s)
    ptr = next_state[idx, actions]  # (S,) or (S, K)
    if batched:
        k = actions.shape[1]
        acc = rewards[np.arange(s)[:, None], actions, np.arange(k)[None, :]].astype(np.float64)
        cols = np.arange(k)[None, :]
    else:
        acc = rewards[np.arange(s), actions].astype(np.float64)
    g = gamma
    # gamma^(2^k) below 1e-18 of the largest term: the remaining tail is below float precision
    while g > 1e-18:
        extra = acc[ptr, cols] if batched else acc[ptr]
        acc = acc + (g * extra)
        ptr = ptr[ptr, cols] if batched else ptr[ptr]
        g = g * g
    return acc


def solve_batch(
    next_state: np.ndarray, rewards: np.ndarray, gamma: float, max_iter: int = 1000
) -> tuple[np.ndarray, np.ndarray, int]:
    """Policy iteration for K rewards at once: ``rewards`` (S, A, K) -> V (S, K), Q (S, A, K).

    Exact evaluation by pointer doubling; improvement with a relative tie tolerance so that a
    policy only changes where it strictly gains, which guarantees termination.
    """
    s, a, k = rewards.shape
    actions = np.argmax(rewards, axis=1)  # greedy one-step start
    cols = np.arange(k)[None, :]
    scale = max(1.0, float(np.abs(rewards).max(initial=0.0)) / max(1e-12, 1 - gamma))
    for it in range(1, max_iter + 1):
        v = evaluate_deterministic(next_state, actions, rewards, gamma)  # (S, K)
        q = rewards + gamma * v[next_state]  # (S, A, K)
        best = q.argmax(axis=1)
        current = q[np.arange(s)[:, None], actions, cols]
        gain = q[np.arange(s)[:, None], best, cols] - current
        improve = gain > IMPROVE_TOL * scale
        if not improve.any():
            return v, q, it
        actions = np.where(improve, best, actions)
    raise RuntimeError(f"policy iteration did not converge in {max_iter} iterations")


# --------------------------------------------------------------------- generators
def random_mdp(
    seed: int | np.random.SeedSequence | np.random.Generator,
    height: int | None = None,
    width: int | None = None,
    house_proportion: float = 0.0,
) -> DeliveryMDP:
    """A random delivery MDP from the paper's generator (Knox et al., Appendix).

    Height in {3, 6, 10, 15} and width in {5, 6, 10} (or fixed by the arguments); one goal;
    proportions of the remaining cells: sheep in {0, .1, .3}, roadblocks in {0, .1, .5, .8}
    of the rest, coins in {0, .1, .2} of the rest; weights gas -1, goal in {0, 1, 5, 10,
    50}, sheep in {-5, -10, -50, -100}, coin 1, roadblock in {-2, -5, -10}, mud in
    {-1, -2, -3}. The generator places no mud (its weight is drawn anyway) and, by
    default, no houses.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    h = int(rng.choice(HEIGHTS)) if height is None else int(height)
    w = int(rng.choice(WIDTHS)) if width is None else int(width)
    if h < 1 or w < 1 or h * w < 2:
        raise ValueError(f"grid {h}x{w} is too small (need at least 2 cells)")
    grid = np.full(h * w, BLANK, dtype=np.int64)
    order = rng.permutation(h * w)
    grid[order[0]] = GOAL
    rest = order[1:]

    def place(cells: np.ndarray, proportion: float, kind: int) -> np.ndarray:
        n = int(round(proportion * cells.size))
        grid[cells[:n]] = kind
        return cells[n:]

    rest = place(rest, house_proportion, HOUSE)
    rest = place(rest, float(rng.choice(SHEEP_PROPORTIONS)), SHEEP)
    rest = place(rest, float(rng.choice(ROADBLOCK_PROPORTIONS)), ROADBLOCK)
    rest = place(rest, float(rng.choice(COIN_PROPORTIONS)), COIN)
    weights = np.array(
        [
            -1.0,
            rng.choice(GOAL_WEIGHTS),
            rng.choice(SHEEP_WEIGHTS),
            1.0,
            rng.choice(ROADBLOCK_WEIGHTS),
            rng.choice(MUD_WEIGHTS),
        ]
    )
    return DeliveryMDP(grid.reshape(h, w), weights, name=f"random-{h}x{w}")


DELIVERY_BOARD = """
.C..H..R.G
.HH.H.RR..
..M.S..C..
R.M....HH.
..MMR.S...
.H...C..R.
.H.RR.H...
S..C..H.M.
..H...R.M.
C....S...C
"""


def delivery_board(weights: Any = None) -> DeliveryMDP:
    """The fixed 10x10 delivery board, default weights ``[-1, 50, -50, 1, -1, -2]``.

    Layout (row 0 at the top; ``.`` blank, ``H`` house, ``S`` sheep, ``G`` goal, ``C`` coin,
    ``R`` roadblock, ``M`` mud)::

        .C..H..R.G
        .HH.H.RR..
        ..M.S..C..
        R.M....HH.
        ..MMR.S...
        .H...C..R.
        .H.RR.H...
        S..C..H.M.
        ..H...R.M.
        C....S...C

    The goal sits in the top-right corner behind a roadblock wall; houses form short
    walls, a mud strip runs down column 2-3 and a second through column 8, sheep lie
    beside the shortest routes, and coins tempt detours (a coin step nets 0).
    """
    return DeliveryMDP.from_layout(DELIVERY_BOARD, weights, name="delivery-board")


# --------------------------------------------------------------------- gymnasium
class DeliveryEnv(gym.Env):
    """Gymnasium view of one :class:`DeliveryMDP`: discrete states, 4 actions, true reward.

    ``mdp`` is the MDP to expose; without it, ``mdp_seed`` draws one from :func:`random_mdp`,
    and with neither the fixed :func:`delivery_board` is used.

    ``reset`` draws the start uniformly from ``mdp.start_states`` (or uses
    ``options["state"]``); an episode terminates on entering a goal or sheep cell and is
    truncated after ``max_steps``. ``info["features"]`` is the transition's feature vector.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        mdp: DeliveryMDP | None = None,
        mdp_seed: int | None = None,
        max_steps: int = 200,
        render_mode: str | None = None,
    ) -> None:
        super().__init__()
        if mdp is None:
            mdp = delivery_board() if mdp_seed is None else random_mdp(mdp_seed)
        self.mdp = mdp
        self.max_steps = int(max_steps)
        self.render_mode = render_mode
        self.observation_space = spaces.Discrete(mdp.n_states)
        self.action_space = spaces.Discrete(mdp.n_actions)
        self._reward = mdp.reward()
        self._state = int(mdp.start_states[0])
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[int, dict]:
        super().reset(seed=seed)
        if options and "state" in options:
            state = int(options["state"])
            if state not in set(self.mdp.start_states.tolist()):
                raise ValueError(f"state {state} is not a start state of {self.mdp.name}")
            self._state = state
        else:
            self._state = int(self.np_random.choice(self.mdp.start_states))
        self._t = 0
        return self._state, {"features": np.zeros(N_FEATURES)}

    def step(self, action: int) -> tuple[int, float, bool, bool, dict]:
        a = int(action)
        if not self.action_space.contains(a):
            raise ValueError(f"invalid action {action!r}; valid: 0..{self.mdp.n_actions - 1}")
        s = self._state
        feats = self.mdp.features[s, a].copy()
        reward = float(self._reward[s, a])
        self._state = int(self.mdp.next_state[s, a])
        self._t += 1
        terminated = bool(self.mdp.terminal[self._state])
        truncated = not terminated and self._t >= self.max_steps
        return self._state, reward, terminated, truncated, {"features": feats}

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        rows = [list(r) for r in self.mdp.render().splitlines()]
        r, c = divmod(self._state, self.mdp.shape[1])
        rows[r][c] = "A"
        return "\n".join("".join(row) for row in rows)


def register_envs() -> None:
    """Register ``sandbox/Delivery-v0`` (the fixed board by default; ``mdp_seed=`` for a random MDP)."""
    if "sandbox/Delivery-v0" not in gym.registry:
        gym.register(id="sandbox/Delivery-v0", entry_point="envs.delivery:DeliveryEnv")
