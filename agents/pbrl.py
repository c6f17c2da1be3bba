r"""Preference-based RL on Stable-Baselines3 SAC: PEBBLE and PARL.

One loop, readable top to bottom (:class:`PreferenceSAC`), with three methods:

* ``sac_true_reward`` -- SB3 SAC on the environment's reward: the upper bound.
* ``pebble`` -- Lee, Smith & Abbeel, "PEBBLE", ICML 2021.
* ``parl`` -- Chakraborty et al., "PARL: A Unified Framework for Policy Alignment in
  Reinforcement Learning", ICLR 2024 (no official code exists; this is our reading).

The PEBBLE loop
---------------
The learner sees the world through :class:`envs.control.HiddenReward`: its rewards are 0
and the environment's reward travels in ``info["true_reward"]``, which only the teacher
and the evaluation read (the segment store below keeps it in a separate array that is
handed to the teacher and to nothing else).

1. ``learning_starts`` steps of uniform random actions, then unsupervised pre-training
   until ``unsup_steps``: SAC maximises the k-NN state-entropy reward
   r_int(s') = ||s' - s'_(k)|| (distance to the k-th nearest neighbour, k = 5, among
   all states in the replay buffer), divided by a running standard deviation (PEBBLE's
   ``compute_state_entropy``). It is computed when a minibatch is sampled.
2. At ``unsup_steps`` the critic is re-initialised (PEBBLE's ``reset_critic``) and the
   first feedback session runs; then one every ``session_interval`` environment steps
   until ``feedback_budget`` queries have been asked. A session draws ``M`` queries:
   for ``uniform`` selection M random segment pairs, otherwise the top M of 10 M random
   candidates (B-Pref's ``large_batch``) by ensemble disagreement or entropy. Segments
   (length H) are cut from the last ``query_window`` steps of behaviour and never cross
   an episode boundary. The teacher labels them (skipped queries still count toward the
   budget).
3. The ensemble reward model (:class:`sandbox.rewards.EnsembleRewardModel`) is trained on
   every label so far, epoch by epoch until its training accuracy exceeds 97% or
   ``reward_epochs`` epochs have run; then the whole SB3 replay buffer is relabelled with
   the new ensemble-mean reward r_hat(s, a). New transitions are stored with r_hat of the
   state they were taken in and their action.

PARL: the bilevel gradient
--------------------------
PARL writes preference learning as a bilevel problem:

    upper:  max_nu  G(nu) = E_{y ~ rho(.; pi*_nu)} [ U_nu(y) ]
    lower:  pi*_nu = argmax_pi  J(pi; r_nu)            (SAC: entropy-regularised)

where y = (sigma_1, sigma_2, l) is a labelled segment pair, both segments drawn from the
lower level's policy and the label l from the teacher, and
U_nu(y) = l log s(R_nu(sigma_1) - R_nu(sigma_2)) + (1 - l) log s(R_nu(sigma_2) - R_nu(sigma_1))
is the Bradley-Terry log-likelihood (s the logistic function, R_nu(sigma) the sum of r_nu
over the segment). Because the distribution of y depends on nu through pi*_nu,

    grad G = E[ grad_nu U_nu(y) ]  +  E[ U_nu(y) grad_nu log rho(y; pi*_nu) ].

PEBBLE follows only the first term. The second is the policy-dependent term; its estimate
is selected by ``hypergradient``:

``none``
    the term is dropped: exactly PEBBLE's reward update (same code path, same random
    numbers; tested).

``covariance`` (first order, no Hessians)
    SAC's lower level is entropy-regularised with temperature alpha. For the soft-optimal
    policy of a deterministic MDP from a fixed start state, the trajectory distribution is
    rho(tau) = p_0 exp((R_nu(tau) - V_nu(s_0)) / alpha), so
    grad log rho(tau) = (grad R_nu(tau) - E_rho[grad R_nu]) / alpha, since
    grad V_nu(s_0) = E_rho[grad R_nu]. The teacher's label does not depend on nu and the
    two segments are independent, hence

        E[U grad log rho(y)] = Cov_y( U_nu(y), grad R_nu(sigma_1) + grad R_nu(sigma_2) ) / alpha.

    We estimate the covariance over the pairs labelled in the latest feedback session
    (the "recent on-policy pairs") with the surrogate loss
    ``-(1/alpha) mean_i[(U_i - mean U) (G_i - mean G)]``, U detached and G_i = R(sigma_1,i)
    + R(sigma_2,i) differentiable (:func:`covariance_surrogate`); its gradient is minus
    the covariance term. For the ensemble, rho depends on the ensemble-mean reward
    (what SAC optimises), so member e's term is Cov(sum_e' U_e', grad R_e) / (E alpha) =
    Cov(mean_e' U_e', grad R_e) / alpha. The surrogate, scaled by ``parl_scale``, is
    added to every minibatch loss of the reward update. alpha is SAC's current entropy
    coefficient.

``unrolled`` (differentiating through K SAC actor updates)
    Instead of assuming soft-optimality, follow how the actual policy responds to nu:
    theta_{k+1} = theta_k - eta grad_theta L_actor(theta_k; nu) for k < K, starting from
    SAC's current actor theta_0 (which does not depend on nu), with SAC's actor loss
    L = E_s[alpha log pi(a~|s) - Q_nu(s, a~)], a~ = tanh(mu + sigma eps) on a fixed batch
    of replay states and fixed noise eps. The critic is trained on r_nu by TD, so
    Q_nu depends on nu; we keep the immediate term of that dependence,
    Q_nu(s, a) = Q(s, a) + r_nu(s, a) - stopgrad(r_nu(s, a)) (the value is SAC's critic,
    the gradient in nu is grad r_nu). Then log rho(y) = log pi_{theta_K}(sigma_1) +
    log pi_{theta_K}(sigma_2) + terms free of nu, and the term is
    Cov(U, grad_nu log rho(y)) estimated on the latest session's pairs by autograd
    through the K updates (second-order terms included: create_graph).
    Approximations: plain gradient steps of size eta (SAC uses Adam), K small (default
    3), the critic's dependence on nu cut to its immediate term, the latest session's pairs
    standing in for samples of rho (as above).

Approximations in ``covariance`` (each stated, none hidden):

1. SAC's policy is treated as soft-optimal for the current r_hat (it is a few thousand
   gradient steps behind it).
2. rho(tau) proportional to exp(R/alpha) is exact for deterministic dynamics from one
   start state; DM Control and Meta-World have random start states (the exact baseline is
   E[grad R | s_0], we use the unconditional mean) and MuJoCo is deterministic given the
   state.
3. Segments stand in for trajectories: a segment's log-probability under the soft-optimal
   policy is its reward sum over alpha plus terms (the soft value at its two ends) that
   we drop; SAC's discount (gamma^H over a segment) is ignored.
4. The expectation over rho uses the labelled pairs of the latest session; with
   disagreement or entropy selection these are not a sample of rho but the most
   uncertain pairs of a sample (use ``query_selection="uniform"`` for an unbiased one).
5. The gradient is a sample covariance over a few dozen pairs (biased by 1/n).

The tabular check in ``tests/test_pbrl_parl.py`` builds a small deterministic MDP with a
single start state, computes G(nu) exactly through soft value iteration, and confirms that
E[grad U] plus the covariance term equals autograd's gradient of G. The unrolled
estimate's derivative through the K actor updates is checked against finite differences.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import SAC
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from sandbox.device import pick
from sandbox.preferences.teachers import Teacher
from sandbox.rewards import EnsembleRewardModel, select_queries

Method = Literal["sac_true_reward", "pebble", "parl"]
Hypergradient = Literal["none", "covariance", "unrolled"]
METHODS: tuple[str, ...] = ("sac_true_reward", "pebble", "parl")
HYPERGRADIENTS: tuple[str, ...] = ("none", "covariance", "unrolled")
LARGE_BATCH = 10  # B-Pref: candidates drawn per query for uncertainty-based selection
TARGET_TRAIN_ACCURACY = 0.97  # PEBBLE stops a reward update once training accuracy passes this


# ---------------------------------------------------------------------------------------
# The PARL hypergradient
# ---------------------------------------------------------------------------------------


def covariance_surrogate(
    utilities: torch.Tensor,
    returns_1: torch.Tensor,
    returns_2: torch.Tensor,
    alpha: float,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """A scalar whose gradient is -Cov(U, grad (R_1 + R_2)) / alpha (PARL's policy term).

    ``utilities`` (E, N) are the members' log-likelihoods U_e of the N labelled pairs (they
    are detached here); ``returns_1``/``returns_2`` (E, N) the members' segment returns,
    differentiable. The lower level is driven by the ensemble mean, so the pair's score is
    G_i = mean_e (R_1 + R_2) and the weight is sum_e U_e (see the module docstring).
    ``weights`` (N,) are probabilities of the pairs (the exact expectation on an enumerated
    support); None means the sample average.
    """
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    u = utilities.detach().sum(dim=0)
    g = (returns_1 + returns_2).mean(dim=0)
    if weights is None:
        weights = torch.full_like(u, 1.0 / u.shape[0])
    weights = weights.detach().to(u.dtype)
    u_centred = u - (weights * u).sum()
    g_centred = g - (weights * g).sum()
    return -(weights * u_centred * g_centred).sum() / alpha


def pair_utilities(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """U = log-likelihood of each label under Bradley-Terry, elementwise (E, N)."""
    return -torch.nn.functional.binary_cross_entropy_with_logits(
        logits, labels.expand_as(logits), reduction="none"
    )


class _ActorDistParams(torch.nn.Module):
    """SB3's SAC actor seen as obs -> (mean, log_std), for torch.func.functional_call."""

    def __init__(self, actor: torch.nn.Module) -> None:
        super().__init__()
        self.actor = actor

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std, _ = self.actor.get_action_dist_params(obs)
        return mean, log_std


def _gaussian_log_prob(mean: torch.Tensor, log_std: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    z = (u - mean) * torch.exp(-log_std)
    return (-0.5 * z * z - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


def unrolled_segment_log_probs(
    reward_model: EnsembleRewardModel,
    actor: torch.nn.Module,
    critic: torch.nn.Module,
    states: torch.Tensor,
    noise: torch.Tensor,
    segments: torch.Tensor,
    obs_dim: int,
    alpha: float,
    lr: float,
    steps: int,
) -> torch.Tensor:
    """log pi_{theta_K(nu)}(segment) (N,) after K actor steps under r_nu, differentiable in nu.

    ``segments`` (N, H, obs_dim + act_dim) hold states and [-1, 1] actions; the tanh
    correction of the squashed Gaussian does not depend on theta and is left out.
    """
    module = _ActorDistParams(actor)
    params = {n: p.detach().clone().requires_grad_(True) for n, p in module.named_parameters()}
    for _ in range(steps):
        mean, log_std = torch.func.functional_call(module, params, (states,))
        u = mean + torch.exp(log_std) * noise
        action = torch.tanh(u)
        log_pi = _gaussian_log_prob(mean, log_std, u) - torch.log(1 - action**2 + 1e-6).sum(-1)
        q = torch.min(torch.cat(critic(states, action), dim=1), dim=1).values
        r = reward_model.member_rewards(torch.cat([states, action], dim=-1)).mean(0)
        loss = (alpha * log_pi - (q + r - r.detach())).mean()
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
        params = {n: p - lr * g for (n, p), g in zip(params.items(), grads, strict=True)}
    n, h, _ = segments.shape
    obs = segments[..., :obs_dim].reshape(n * h, obs_dim)
    act = segments[..., obs_dim:].reshape(n * h, -1).clamp(-1 + 1e-6, 1 - 1e-6)
    mean, log_std = torch.func.functional_call(module, params, (obs,))
    return _gaussian_log_prob(mean, log_std, torch.atanh(act)).reshape(n, h).sum(-1)


def score_surrogate(utilities: torch.Tensor, log_rho: torch.Tensor) -> torch.Tensor:
    """A scalar whose gradient is -Cov(sum_e U_e, grad log rho) over the pairs (N,)."""
    u = utilities.detach().sum(dim=0)
    return -((u - u.mean()) * (log_rho - log_rho.mean())).mean()


# ---------------------------------------------------------------------------------------
# Replay buffer with learned rewards and PEBBLE's state-entropy reward
# ---------------------------------------------------------------------------------------


class PreferenceReplayBuffer(ReplayBuffer):
    """SB3's replay buffer whose rewards come from a learned reward model.

    * ``reward_fn(obs, actions) -> rewards`` (batched numpy) labels each new transition as
      it is stored (the environment's reward, 0 behind :class:`HiddenReward`, is ignored);
      :meth:`relabel` recomputes every stored reward.
    * ``state_entropy_k``: when set, sampled minibatches carry PEBBLE's k-NN state-entropy
      reward of their next observations instead (unsupervised pre-training).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reward_fn: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
        self.state_entropy_k: int | None = None
        self._entropy_stats = RunningMeanStd(shape=())

    def add(self, obs, next_obs, action, reward, done, infos) -> None:  # noqa: ANN001
        if self.reward_fn is not None:
            reward = self.reward_fn(
                np.asarray(obs).reshape(self.n_envs, -1),
                np.asarray(action).reshape(self.n_envs, -1),
            )
        super().add(obs, next_obs, action, reward, done, infos)

    def stored(self) -> int:
        return self.buffer_size if self.full else self.pos

    def relabel(self, reward_fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> None:
        """Recompute every stored reward (PEBBLE relabels the whole buffer after an update)."""
        n = self.stored()
        if n == 0:
            return
        obs = self.observations[:n].reshape(n * self.n_envs, -1)
        act = self.actions[:n].reshape(n * self.n_envs, -1)
        self.rewards[:n] = reward_fn(obs, act).reshape(n, self.n_envs)

    def _get_samples(self, batch_inds: np.ndarray, env: Any = None) -> ReplayBufferSamples:
        samples = super()._get_samples(batch_inds, env)
        if self.state_entropy_k is None:
            return samples
        reward = self._state_entropy(samples.next_observations)
        return samples._replace(rewards=reward.reshape(-1, 1))

    @torch.no_grad()
    def _state_entropy(self, next_obs: torch.Tensor, chunk: int = 10_000) -> torch.Tensor:
        """Distance to the k-th nearest stored state, over the running std (PEBBLE)."""
        n = self.stored()
        states = torch.as_tensor(
            self.observations[:n].reshape(n * self.n_envs, -1), device=next_obs.device
        )
        dists = []
        for start in range(0, states.shape[0], chunk):
            dists.append(torch.cdist(next_obs, states[start : start + chunk]))
        all_d = torch.cat(dists, dim=1)
        k = min(self.state_entropy_k + 1, all_d.shape[1])  # +1: the state itself is stored
        knn = torch.kthvalue(all_d, k, dim=1).values
        self._entropy_stats.update(knn.cpu().numpy())
        return knn / float(math.sqrt(self._entropy_stats.var) + 1e-8)


# ---------------------------------------------------------------------------------------
# Segments of recent behaviour (with the true rewards, for the teacher only)
# ---------------------------------------------------------------------------------------


class SegmentStore:
    """The last ``capacity`` steps of behaviour: features x = (s, a) and episode ids.

    The true rewards are kept apart (``_teacher_rewards``) and are only ever returned by
    :meth:`teacher_rewards`, whose callers are the teacher and the evaluation.
    """

    def __init__(self, capacity: int, feature_dim: int) -> None:
        self.capacity = int(capacity)
        self.features = np.zeros((self.capacity, feature_dim), dtype=np.float32)
        self.episode = np.zeros(self.capacity, dtype=np.int64)
        self._teacher_rewards = np.zeros(self.capacity, dtype=np.float64)
        self.pos, self.size, self._episode_id = 0, 0, 0

    def add(self, obs: np.ndarray, action: np.ndarray, true_reward: float, done: bool) -> None:
        d = obs.shape[-1]
        self.features[self.pos, :d] = obs
        self.features[self.pos, d:] = action
        self.episode[self.pos] = self._episode_id
        self._teacher_rewards[self.pos] = true_reward
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        if done:
            self._episode_id += 1

    def _valid_starts(self, length: int) -> tuple[np.ndarray, np.ndarray]:
        chron = (self.pos - self.size + np.arange(self.size)) % self.capacity
        ep = self.episode[chron]
        if self.size < length:
            return chron, np.zeros(0, dtype=np.int64)
        starts = np.flatnonzero(ep[: self.size - length + 1] == ep[length - 1 :])
        return chron, starts

    def sample_segments(self, n: int, length: int, rng: np.random.Generator) -> np.ndarray:
        """Indices (n, length) of n random segments that stay inside one episode."""
        chron, starts = self._valid_starts(length)
        if starts.size == 0:
            raise ValueError(f"no complete segment of length {length} stored yet")
        picked = starts[rng.integers(0, starts.size, size=n)]
        return chron[picked[:, None] + np.arange(length)[None, :]]

    def segment_features(self, index: np.ndarray) -> np.ndarray:
        return self.features[index]

    def teacher_rewards(self, index: np.ndarray) -> np.ndarray:
        return self._teacher_rewards[index]


# ---------------------------------------------------------------------------------------
# The learner
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PbRLSettings:
    """Hyper-parameters of the loop (defaults: PEBBLE's DM Control settings, smaller nets)."""

    method: Method = "pebble"
    hypergradient: Hypergradient = "covariance"
    parl_scale: float = 1.0
    unroll_steps: int = 3
    unroll_batch: int = 256
    feedback_budget: int = 1000
    queries_per_session: int = 100
    session_interval: int = 20_000
    segment_length: int = 50
    query_selection: str = "disagreement"
    unsup_steps: int = 9000
    learning_starts: int = 1000
    query_window: int = 100_000
    reward_hidden: tuple[int, ...] = (256, 256, 256)
    reward_members: int = 3
    reward_lr: float = 3e-4
    reward_epochs: int = 50
    reward_batch_size: int = 128
    state_entropy_k: int = 5
    net_arch: tuple[int, ...] = (256, 256)
    batch_size: int = 256
    learning_rate: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    init_temperature: float = 0.1
    buffer_size: int = 1_000_000
    n_accuracy_pairs: int = 200

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; valid: {', '.join(METHODS)}")
        if self.hypergradient not in HYPERGRADIENTS:
            raise ValueError(
                f"unknown hypergradient {self.hypergradient!r}; valid: {', '.join(HYPERGRADIENTS)}"
            )
        if self.unsup_steps < self.learning_starts:
            raise ValueError("unsup_steps must be >= learning_starts")
        if self.queries_per_session < 1 or self.session_interval < 1:
            raise ValueError("queries_per_session and session_interval must be >= 1")


@dataclass
class Evaluation:
    step: int
    true_return: float
    success_rate: float
    feedback_used: int
    reward_model_accuracy: float
    alpha: float  # SAC's entropy temperature: PARL's covariance term is scaled by 1/alpha


@dataclass
class _Labelled:
    """Every label so far, and which rows came from the latest session."""

    x1: list[np.ndarray] = field(default_factory=list)
    x2: list[np.ndarray] = field(default_factory=list)
    y: list[np.ndarray] = field(default_factory=list)

    def add(self, x1: np.ndarray, x2: np.ndarray, y: np.ndarray) -> None:
        self.x1.append(x1)
        self.x2.append(x2)
        self.y.append(y)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return np.concatenate(self.x1), np.concatenate(self.x2), np.concatenate(self.y)

    def latest(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.x1[-1], self.x2[-1], self.y[-1]

    def __len__(self) -> int:
        return sum(len(y) for y in self.y)


def update_reward_model(
    model: EnsembleRewardModel,
    labelled: tuple[np.ndarray, np.ndarray, np.ndarray],
    recent: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    hypergradient: str,
    alpha: float,
    rng: np.random.Generator,
    max_epochs: int,
    batch_size: int = 128,
    parl_scale: float = 1.0,
    unrolled_log_rho: Callable[[EnsembleRewardModel, torch.Tensor], torch.Tensor] | None = None,
) -> tuple[int, float]:
    """One reward update: epochs until training accuracy > 97% or ``max_epochs``.

    ``hypergradient="none"`` is PEBBLE's update; ``"covariance"`` adds PARL's term
    estimated on the ``recent`` pairs; ``"unrolled"`` adds the score-function term with
    log rho(y) from ``unrolled_log_rho(model, segments)`` (see the module docstring).
    Returns (epochs run, last training accuracy).
    """
    extra: Callable[[EnsembleRewardModel], torch.Tensor] | None = None
    if hypergradient == "covariance" and recent is not None and len(recent[2]) > 1:
        r1 = torch.as_tensor(recent[0], dtype=torch.float32, device=model.device)
        r2 = torch.as_tensor(recent[1], dtype=torch.float32, device=model.device)
        ry = torch.as_tensor(recent[2], dtype=torch.float32, device=model.device)

        def extra(m: EnsembleRewardModel) -> torch.Tensor:
            ret1, ret2 = m.segment_returns(r1), m.segment_returns(r2)
            utilities = pair_utilities(ret1 - ret2, ry)
            return parl_scale * covariance_surrogate(utilities, ret1, ret2, alpha)

    elif hypergradient == "unrolled" and recent is not None and len(recent[2]) > 1:
        if unrolled_log_rho is None:
            raise ValueError("hypergradient 'unrolled' needs unrolled_log_rho")
        u1 = torch.as_tensor(recent[0], dtype=torch.float32, device=model.device)
        u2 = torch.as_tensor(recent[1], dtype=torch.float32, device=model.device)
        uy = torch.as_tensor(recent[2], dtype=torch.float32, device=model.device)
        log_rho_fn = unrolled_log_rho

        def extra(m: EnsembleRewardModel) -> torch.Tensor:
            with torch.no_grad():
                utilities = pair_utilities(m.segment_returns(u1) - m.segment_returns(u2), uy)
            both = log_rho_fn(m, torch.cat([u1, u2]))  # one unroll for both segments
            log_rho = both[: len(uy)] + both[len(uy) :]
            return parl_scale * score_surrogate(utilities, log_rho)

    elif hypergradient not in HYPERGRADIENTS:
        raise ValueError(f"unknown hypergradient {hypergradient!r}")
    accuracy, epochs = 0.0, 0
    for epochs in range(1, max_epochs + 1):  # noqa: B007
        accuracy = model.train_epoch(*labelled, batch_size=batch_size, rng=rng, extra_loss=extra)
        if accuracy > TARGET_TRAIN_ACCURACY:
            break
    return epochs, accuracy


class _LoopCallback(BaseCallback):
    def __init__(self, agent: PreferenceSAC) -> None:
        super().__init__()
        self.agent = agent

    def _on_step(self) -> bool:
        self.agent._on_env_step(self.locals, int(self.model.num_timesteps))
        return True


def evaluate(model: SAC, env: gym.Env, n_episodes: int, seed: int) -> tuple[float, float]:
    """Mean true return and success rate of the deterministic policy over ``n_episodes``."""
    returns, successes = [], []
    for i in range(n_episodes):
        obs, _ = env.reset(seed=seed + i)
        done, total, success = False, 0.0, 0.0
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, _, terminated, truncated, info = env.step(action)
            total += info["true_reward"]
            success = max(success, float(info.get("success", 0.0)))
            done = terminated or truncated
        returns.append(total)
        successes.append(success)
    return float(np.mean(returns)), float(np.mean(successes))


class PreferenceSAC:
    """SAC whose reward is learned from a teacher's preferences (PEBBLE / PARL), or the
    true reward (``method="sac_true_reward"``).

    ``make_env()`` must return a fresh :class:`envs.control.HiddenReward`-wrapped env;
    called twice (training and evaluation). ``on_eval(Evaluation)`` is called every
    ``eval_interval`` steps and at the end.
    """

    def __init__(
        self,
        make_env: Callable[[], gym.Env],
        settings: PbRLSettings,
        teacher: Teacher | None = None,
        seed: int = 0,
        device: str = "auto",
    ) -> None:
        self.settings = s = settings
        self.device = pick(device)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.env = make_env()
        self.eval_env = make_env()
        self.teacher = teacher if teacher is not None else Teacher.preset("oracle", seed)
        self.preference_based = s.method != "sac_true_reward"
        obs_dim = int(np.prod(self.env.observation_space.shape))
        act_dim = int(np.prod(self.env.action_space.shape))
        self.sac = SAC(
            "MlpPolicy",
            _TrueRewardView(self.env) if not self.preference_based else self.env,
            learning_rate=s.learning_rate,
            buffer_size=s.buffer_size,
            learning_starts=s.learning_starts,
            batch_size=s.batch_size,
            tau=s.tau,
            gamma=s.gamma,
            train_freq=1,
            gradient_steps=1,
            ent_coef=f"auto_{s.init_temperature}",
            replay_buffer_class=PreferenceReplayBuffer,
            policy_kwargs={"net_arch": list(s.net_arch)},
            seed=seed,
            device=self.device,
            verbose=0,
        )
        self.buffer: PreferenceReplayBuffer = self.sac.replay_buffer  # type: ignore[assignment]
        self.reward_model: EnsembleRewardModel | None = None
        self.store: SegmentStore | None = None
        self.labelled = _Labelled()
        self.feedback_used = 0
        self.sessions = 0
        self.last_update: tuple[int, float] | None = None
        if self.preference_based:
            self.reward_model = EnsembleRewardModel(
                obs_dim + act_dim,
                n_members=s.reward_members,
                hidden_sizes=s.reward_hidden,
                lr=s.reward_lr,
                device=self.device,
                seed=seed,
            )
            self.store = SegmentStore(s.query_window, obs_dim + act_dim)
            self.buffer.state_entropy_k = s.state_entropy_k
        self._eval_interval = 0
        self._eval_episodes = 1
        self._on_eval: Callable[[Evaluation], None] | None = None
        self.evaluations: list[Evaluation] = []

    # -- the learned reward ------------------------------------------------------------
    def learned_reward(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        assert self.reward_model is not None
        return self.reward_model.predict(np.concatenate([obs, actions], axis=-1))

    @property
    def alpha(self) -> float:
        """SAC's current entropy coefficient (the lower level's temperature)."""
        if self.sac.log_ent_coef is not None:
            return float(torch.exp(self.sac.log_ent_coef.detach()).item())
        return float(self.sac.ent_coef_tensor.item())

    # -- the loop ------------------------------------------------------------------------
    def learn(
        self,
        total_steps: int,
        eval_interval: int,
        eval_episodes: int = 5,
        on_eval: Callable[[Evaluation], None] | None = None,
    ) -> list[Evaluation]:
        self._eval_interval, self._eval_episodes, self._on_eval = (
            eval_interval,
            eval_episodes,
            on_eval,
        )
        self.sac.learn(total_timesteps=total_steps, callback=_LoopCallback(self))
        if not self.evaluations or self.evaluations[-1].step != total_steps:
            self._evaluate(total_steps)
        return self.evaluations

    def _on_env_step(self, local: dict[str, Any], step: int) -> None:
        s = self.settings
        if self.preference_based:
            assert self.store is not None
            obs = np.asarray(self.sac._last_obs)[0]
            action = np.asarray(local["buffer_actions"])[0]
            info = local["infos"][0]
            self.store.add(obs, action, info["true_reward"], bool(local["dones"][0]))
            if step == s.unsup_steps:
                self._end_unsupervised_phase()
                self._feedback_session()
            elif step > s.unsup_steps and (step - s.unsup_steps) % s.session_interval == 0:
                self._feedback_session()
        if self._eval_interval and step % self._eval_interval == 0:
            self._evaluate(step)

    def _end_unsupervised_phase(self) -> None:
        """Stop the state-entropy reward and re-initialise the critic (PEBBLE)."""
        self.buffer.state_entropy_k = None
        self.buffer.reward_fn = self.learned_reward
        critic = self.sac.critic
        for module in critic.modules():
            if isinstance(module, torch.nn.Linear):
                module.reset_parameters()
        self.sac.critic_target.load_state_dict(critic.state_dict())
        critic.optimizer = type(critic.optimizer)(critic.parameters(), **critic.optimizer.defaults)

    def _feedback_session(self) -> None:
        s = self.settings
        assert self.store is not None and self.reward_model is not None
        n = min(s.queries_per_session, s.feedback_budget - self.feedback_used)
        if n <= 0:
            return
        n_candidates = n if s.query_selection == "uniform" else n * LARGE_BATCH
        idx1 = self.store.sample_segments(n_candidates, s.segment_length, self.rng)
        idx2 = self.store.sample_segments(n_candidates, s.segment_length, self.rng)
        x1 = self.store.segment_features(idx1)
        x2 = self.store.segment_features(idx2)
        if s.query_selection == "uniform":
            chosen = np.arange(n)
        else:
            probs = self.reward_model.preference_probabilities(x1, x2)
            chosen = select_queries(probs, n, s.query_selection, self.rng)
        labels = self.teacher.label(
            self.store.teacher_rewards(idx1[chosen]), self.store.teacher_rewards(idx2[chosen])
        )
        self.feedback_used += labels.n_asked  # skipped queries count too
        self.sessions += 1
        kept = chosen[labels.kept]
        if kept.size == 0:
            return
        self.labelled.add(x1[kept], x2[kept], labels.labels[labels.kept])
        hypergradient = s.hypergradient if s.method == "parl" else "none"
        unrolled = self._unrolled_log_rho() if hypergradient == "unrolled" else None
        self.last_update = update_reward_model(
            self.reward_model,
            self.labelled.arrays(),
            self.labelled.latest(),
            hypergradient,
            self.alpha,
            self.rng,
            s.reward_epochs,
            s.reward_batch_size,
            s.parl_scale,
            unrolled,
        )
        self.buffer.relabel(self.learned_reward)

    def _unrolled_log_rho(self) -> Callable[[EnsembleRewardModel, torch.Tensor], torch.Tensor]:
        """log pi_{theta_K(nu)} of segments, on replay states and noise fixed for this update."""
        s = self.settings
        n = self.buffer.stored()
        idx = self.rng.integers(0, n, size=s.unroll_batch)
        obs_dim = int(np.prod(self.env.observation_space.shape))
        states = torch.as_tensor(self.buffer.observations[idx, 0], device=self.sac.device)
        gen = torch.Generator().manual_seed(int(self.rng.integers(2**31)))
        act_dim = int(np.prod(self.env.action_space.shape))
        noise = torch.randn(s.unroll_batch, act_dim, generator=gen).to(self.sac.device)
        alpha, lr = self.alpha, s.learning_rate
        actor, critic = self.sac.actor, self.sac.critic

        def log_rho(model: EnsembleRewardModel, segments: torch.Tensor) -> torch.Tensor:
            return unrolled_segment_log_probs(
                model, actor, critic, states, noise, segments, obs_dim, alpha, lr, s.unroll_steps
            )

        return log_rho

    def reward_model_accuracy(self) -> float:
        """Agreement with the true preference on fresh random pairs (not part of the budget)."""
        s = self.settings
        if self.reward_model is None or self.store is None or self.sessions == 0:
            return float("nan")
        eval_rng = np.random.default_rng([self.seed, self.sessions, 7])
        try:
            idx1 = self.store.sample_segments(s.n_accuracy_pairs, s.segment_length, eval_rng)
            idx2 = self.store.sample_segments(s.n_accuracy_pairs, s.segment_length, eval_rng)
        except ValueError:
            return float("nan")
        r1 = self.store.teacher_rewards(idx1).sum(1)
        r2 = self.store.teacher_rewards(idx2).sum(1)
        distinct = r1 != r2
        if not distinct.any():
            return float("nan")
        p = self.reward_model.preference_probabilities(
            self.store.segment_features(idx1[distinct]),
            self.store.segment_features(idx2[distinct]),
        ).mean(0)
        return float(np.mean((p > 0.5) == (r1[distinct] > r2[distinct])))

    def _evaluate(self, step: int) -> None:
        mean_return, success = evaluate(
            self.sac, self.eval_env, self._eval_episodes, seed=10_000 * (self.seed + 1)
        )
        record = Evaluation(
            step=step,
            true_return=mean_return,
            success_rate=success,
            feedback_used=self.feedback_used,
            reward_model_accuracy=self.reward_model_accuracy(),
            alpha=self.alpha,
        )
        self.evaluations.append(record)
        if self._on_eval is not None:
            self._on_eval(record)

    def close(self) -> None:
        self.env.close()
        self.eval_env.close()


class _TrueRewardView(gym.Wrapper):
    """For the oracle only: hand the hidden true reward back as the reward."""

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, _, terminated, truncated, info = self.env.step(action)
        return obs, float(info["true_reward"]), terminated, truncated, info
