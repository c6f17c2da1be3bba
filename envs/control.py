"""Continuous-control tasks for preference-based RL: DM Control suite and Meta-World v3.

Ids (``import envs`` registers them):

* ``sandbox/DMC-<domain>-<task>-v0`` for walker-walk, walker-run, cheetah-run,
  quadruped-walk, cartpole-swingup and point_mass-easy. The dm_control observation dict is
  flattened into one ``float32`` vector (keys in the task's spec order); actions are the
  task's ``[-1, 1]`` box. ``action_repeat`` (default 1) repeats each action and sums the
  rewards. Episodes last 1000 control steps (dm_control's own time limit) and end by
  *truncation*: these tasks never terminate.
* ``sandbox/MetaWorld-<task>-v0`` for door-open, button-press, drawer-open, sweep-into,
  window-open and reach (Meta-World v3, ``<task>-v3``). The goal is observable (the last
  three observation entries); each ``reset`` draws the goal from the task's fixed set of 50
  goals (Meta-World's MT1 set, generated once from ``goal_set_seed``) with the env's own
  RNG; ``info["success"]`` is Meta-World's success flag; episodes last 500 steps
  (truncation).

Spaces tell the truth: Meta-World's own observation box is narrower than what the
simulator returns at reset, so our observation space is the finite float32 range (MuJoCo
resets states beyond 1e10, so observations never leave it); every action space is ``[-1, 1]`` (mapped linearly onto a task's own
box where that differs, e.g. quadruped). ``check_env`` is clean for every id. ``reset(seed=s)`` reproduces the episode exactly. ``render_mode="rgb_array"``
renders offscreen (set ``MUJOCO_GL=egl`` on headless machines).

:class:`HiddenReward` is the wrapper a preference-based learner sees the world through: the
environment's reward is replaced by 0 (or by a learned reward ``reward_fn(obs, action)``)
and moved to ``info["true_reward"]``, where only teachers and evaluation read it.

Simulators are imported inside constructors, so importing this module is cheap.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

DMC_TASKS: tuple[tuple[str, str], ...] = (
    ("walker", "walk"),
    ("walker", "run"),
    ("cheetah", "run"),
    ("quadruped", "walk"),
    ("cartpole", "swingup"),
    ("point_mass", "easy"),
)
METAWORLD_TASKS: tuple[str, ...] = (
    "door-open",
    "button-press",
    "drawer-open",
    "sweep-into",
    "window-open",
    "reach",
)
METAWORLD_EPISODE_STEPS = 500
# Observations are float32 vectors and the space is the whole finite float32 range. That
# is true: MuJoCo resets any simulation whose state exceeds 1e10 (mjMAXVAL), so nothing
# the simulators report comes near 3.4e38; the simulators give no tighter honest bound.
OBS_LIMIT = float(np.finfo(np.float32).max)


def _to_float32(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def dmc_id(domain: str, task: str) -> str:
    return f"sandbox/DMC-{domain}-{task}-v0"


def metaworld_id(task: str) -> str:
    return f"sandbox/MetaWorld-{task}-v0"


def task_id(task: str) -> str:
    """Gymnasium id of a study task name: ``"cartpole-swingup"`` or ``"metaworld-door-open"``."""
    if task.startswith("metaworld-"):
        name = task[len("metaworld-") :]
        if name not in METAWORLD_TASKS:
            raise ValueError(
                f"unknown Meta-World task {name!r}; valid: {', '.join(METAWORLD_TASKS)}"
            )
        return metaworld_id(name)
    for domain, t in DMC_TASKS:
        if task == f"{domain}-{t}":
            return dmc_id(domain, t)
    valid = [f"{d}-{t}" for d, t in DMC_TASKS] + [f"metaworld-{t}" for t in METAWORLD_TASKS]
    raise ValueError(f"unknown task {task!r}; valid: {', '.join(valid)}")


class _ObservationFlattener:
    """Writes a dm_control observation dict into one ``float32`` vector (keys in spec order).

    This runs every step of a ~120 us step, so the layout is worked out once: each array
    entry has a view of a scratch vector shaped like the entry (no ravel, no slicing per
    step), each scalar an index; the result is a copy of the scratch vector.
    """

    def __init__(self, spec: dict[str, Any]) -> None:
        self.size = sum(int(np.prod(entry.shape)) for entry in spec.values())
        self._scratch = np.empty(self.size, dtype=np.float32)
        self._entries: list[tuple[str, np.ndarray | None, int]] = []
        start = 0
        for key, entry in spec.items():
            size = int(np.prod(entry.shape))
            view = self._scratch[start : start + size].reshape(entry.shape)
            self._entries.append((key, view if entry.shape else None, start))
            start += size

    def __call__(self, observation: dict[str, Any]) -> np.ndarray:
        scratch = self._scratch
        for key, view, index in self._entries:
            if view is None:
                scratch[index] = observation[key]
            else:
                view[...] = observation[key]  # (np.copyto costs ~1 us more: its dispatch)
        return scratch.copy()


class DMCEnv(gym.Env[np.ndarray, np.ndarray]):
    """A dm_control suite task as a Gymnasium env with flat ``float32`` observations."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(
        self,
        domain: str,
        task: str,
        action_repeat: int = 1,
        render_mode: str | None = None,
        width: int = 240,
        height: int = 240,
        camera_id: int = 0,
    ) -> None:
        from dm_control import suite

        if action_repeat < 1:
            raise ValueError(f"action_repeat must be >= 1, got {action_repeat}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.domain, self.task_name = domain, task
        self.action_repeat = int(action_repeat)
        self.render_mode = render_mode
        self._width, self._height, self._camera_id = width, height, camera_id
        self._env = suite.load(domain, task, task_kwargs={"random": 0})
        # step() drives the task and physics directly (see step), so it keeps these itself
        self._task, self._physics = self._env.task, self._env.physics
        self._n_sub_steps = self._env._n_sub_steps
        self._step_limit = self._env._step_limit
        self._step_count = 0
        self._flatten = _ObservationFlattener(self._env.observation_spec())
        spec = self._env.action_spec()
        # The agent acts in [-1, 1]; actions are mapped linearly onto the task's own box
        # (the identity for every task whose box is already [-1, 1]).
        self._act_low = spec.minimum.astype(np.float64)
        self._act_high = spec.maximum.astype(np.float64)
        self._act_identity = bool(np.all(self._act_low == -1.0) and np.all(self._act_high == 1.0))
        self.action_space = spaces.Box(-1.0, 1.0, spec.shape, dtype=np.float32)
        self.observation_space = spaces.Box(
            -OBS_LIMIT, OBS_LIMIT, (self._flatten.size,), dtype=np.float32
        )
        self.metadata = {**self.metadata, "render_fps": round(1.0 / self._env.control_timestep())}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            # dm_control draws the initial state from the task's RandomState.
            self._env.task._random = np.random.RandomState(seed)
        time_step = self._env.reset()
        self._step_count = 0
        return self._flatten(time_step.observation), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if not self._act_identity:
            action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
            action = self._act_low + (action + 1.0) * 0.5 * (self._act_high - self._act_low)
        # (within [-1, 1] MuJoCo clamps controls to the actuators' ranges itself, and
        # dm_control casts the action; this path runs every step, so it does nothing more)
        #
        # This is dm_control's ``Environment.step`` (1.0.49) without its TimeStep: the same
        # task and physics calls in the same order, the same step limit and termination
        # rule; only the observation of the last repeated step is built, as only it is
        # returned. Skipping the TimeStep pays for flattening the observation dict.
        task, physics = self._task, self._physics
        reward = 0.0
        discount = None
        for _ in range(self.action_repeat):
            task.before_step(action, physics)
            physics.step(self._n_sub_steps)
            task.after_step(physics)
            reward += task.get_reward(physics)
            self._step_count += 1
            if self._step_count >= self._step_limit:
                discount = 1.0  # dm_control's time limit: a truncation
            else:
                discount = task.get_termination(physics)
            if discount is not None:
                break
        # a discount of 0 is a true termination; an episode that ends with discount > 0
        # (the time limit) is cut short
        terminated = discount is not None and discount == 0.0
        truncated = discount is not None and not terminated
        observation = self._flatten(task.get_observation(physics))
        return observation, float(reward), terminated, truncated, {}

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return self._env.physics.render(self._height, self._width, camera_id=self._camera_id)

    def close(self) -> None:
        self._env.close()


@functools.lru_cache(maxsize=32)
def _metaworld_tasks(env_name: str, goal_set_seed: int) -> tuple[Any, tuple[Any, ...]]:
    """The env class and the MT1 goal set of one Meta-World task (generating it costs ~1 s)."""
    import metaworld

    benchmark = metaworld.MT1(env_name, seed=goal_set_seed)
    return benchmark.train_classes[env_name], tuple(benchmark.train_tasks)


class MetaWorldEnv(gym.Env[np.ndarray, np.ndarray]):
    """A Meta-World v3 task with an observable goal re-drawn from its goal set at each reset."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 80}

    def __init__(
        self,
        task: str,
        goal_set_seed: int = 0,
        render_mode: str | None = None,
        width: int = 240,
        height: int = 240,
        camera_name: str = "corner",
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.task_name = task
        self.render_mode = render_mode
        env_cls, self._tasks = _metaworld_tasks(f"{task}-v3", goal_set_seed)
        self._env = env_cls(
            render_mode=render_mode, camera_name=camera_name, width=width, height=height
        )
        self._env.set_task(self._tasks[0])
        self._env.seed(goal_set_seed)
        self.max_episode_steps = METAWORLD_EPISODE_STEPS
        self._env.max_path_length = METAWORLD_EPISODE_STEPS
        self.action_space = spaces.Box(-1.0, 1.0, (4,), dtype=np.float32)
        dim = int(self._env.sawyer_observation_space.shape[0])
        self.observation_space = spaces.Box(-OBS_LIMIT, OBS_LIMIT, (dim,), dtype=np.float32)
        self.goal_index = 0

    @property
    def goal(self) -> np.ndarray:
        return np.asarray(self._env._target_pos, dtype=np.float32).copy()

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            self._env.seed(seed)
        self.goal_index = int(self.np_random.integers(len(self._tasks)))
        self._env.set_task(self._tasks[self.goal_index])
        obs, _ = self._env.reset()
        return _to_float32(obs), {"goal_index": self.goal_index}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)
        obs, reward, _, truncated, info = self._env.step(action)
        info = dict(info)
        info["success"] = float(info.get("success", 0.0))
        # Meta-World never terminates; episodes are cut at 500 steps.
        return _to_float32(obs), float(reward), False, bool(truncated), info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return self._env.render()

    def close(self) -> None:
        self._env.close()


RewardFn = Callable[[np.ndarray, np.ndarray], float]


class HiddenReward(gym.Wrapper):
    """Hide the environment's reward from the learner.

    ``step`` returns reward 0 (or ``reward_fn(obs, action)`` once one is set: the learned
    reward of the observation the action was taken in) and puts the environment's reward
    in ``info["true_reward"]``, which only teachers and evaluation read. Observations pass
    through unchanged, so the true reward cannot leak through them either.
    """

    def __init__(self, env: gym.Env, reward_fn: RewardFn | None = None) -> None:
        super().__init__(env)
        self.reward_fn = reward_fn
        self._last_obs: np.ndarray | None = None

    def set_reward_fn(self, reward_fn: RewardFn | None) -> None:
        self.reward_fn = reward_fn

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self._last_obs = obs
        return obs, info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, true_reward, terminated, truncated, info = self.env.step(action)
        info["true_reward"] = float(true_reward)
        if self.reward_fn is None:
            reward = 0.0
        else:
            reward = float(self.reward_fn(self._last_obs, np.asarray(action)))
        self._last_obs = obs
        return obs, reward, terminated, truncated, info


def make(task: str, *, hide_reward: bool = False, **kwargs: Any) -> gym.Env:
    """Make a study task by name (``"cartpole-swingup"``, ``"metaworld-reach"``)."""
    env = gym.make(task_id(task), **kwargs)
    return HiddenReward(env) if hide_reward else env


def register_envs() -> None:
    """Register every id (skipping ids already registered)."""
    for domain, task in DMC_TASKS:
        env_id = dmc_id(domain, task)
        if env_id not in gym.registry:
            gym.register(
                id=env_id,
                entry_point="envs.control:DMCEnv",
                kwargs={"domain": domain, "task": task},
                disable_env_checker=False,
            )
    for task in METAWORLD_TASKS:
        env_id = metaworld_id(task)
        if env_id not in gym.registry:
            gym.register(
                id=env_id,
                entry_point="envs.control:MetaWorldEnv",
                kwargs={"task": task},
                max_episode_steps=METAWORLD_EPISODE_STEPS,
            )
