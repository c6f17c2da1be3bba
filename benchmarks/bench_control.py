"""Our control env wrappers against the raw simulators: environment steps per second.

Ours: ``gym.make("sandbox/DMC-...")`` / ``gym.make("sandbox/MetaWorld-...")`` (with
Gymnasium's default wrappers) inside :class:`envs.control.HiddenReward`, as a
preference-based learner sees it. Reference, measured in the same run on the same actions:
dm_control's ``env.step`` and Meta-World's inner ``SawyerXYZEnv.step``. The issue's bar:
the wrappers may cost at most 5% (ratio >= 0.95). The ratio is the median over paired
blocks; the same comparison with dm_control on both sides shows the machine's noise floor.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym
import numpy as np

import envs  # noqa: F401
from benchmarks.common import write_result
from envs.control import HiddenReward, _metaworld_tasks, dmc_id, metaworld_id


def _block_time(step, reset, actions: np.ndarray) -> float:
    """Seconds for one block of steps from a reset (the reset is not timed)."""
    reset()
    t0 = time.perf_counter()
    for a in actions:
        step(a)
    return time.perf_counter() - t0


def _compare(raw_step, raw_reset, our_step, our_reset, actions, raw_actions, repeats: int):
    """Time raw and ours on the same blocks of actions from the same state, back to back, and
    take the median of the per-block time ratios: each pair sees the same machine load, and
    the median ignores the pairs a noisy neighbour disturbed. The order within a pair
    alternates, so neither side always runs on the caches the other warmed."""
    block = max(len(actions) // 10, 10)
    raw_t, ours_t = [], []
    for _ in range(repeats):
        for i, start in enumerate(range(0, len(actions), block)):
            raw_block, our_block = (
                raw_actions[start : start + block],
                actions[start : start + block],
            )
            if i % 2:
                ours = _block_time(our_step, our_reset, our_block)
                raw = _block_time(raw_step, raw_reset, raw_block)
            else:
                raw = _block_time(raw_step, raw_reset, raw_block)
                ours = _block_time(our_step, our_reset, our_block)
            raw_t.append(raw)
            ours_t.append(ours)
    return _ratio(block, np.array(raw_t), np.array(ours_t))


def dmc(domain: str, task: str, n: int, repeats: int) -> dict[str, float]:
    from dm_control import suite

    raw = suite.load(domain, task, task_kwargs={"random": 0})
    ours = HiddenReward(gym.make(dmc_id(domain, task)))
    dim = raw.action_spec().shape[0]
    actions = np.random.default_rng(0).uniform(-1, 1, (n, dim)).astype(np.float32)
    raw_actions = actions.astype(np.float64)

    def raw_reset() -> None:
        # the initial state ours.reset(seed=0) draws, so both simulate the same trajectory
        # (a different state changes the contacts, and the contacts change the cost)
        raw.task._random = np.random.RandomState(0)
        raw.reset()

    out = _compare(
        raw.step, raw_reset, ours.step, lambda: ours.reset(seed=0), actions, raw_actions, repeats
    )
    ours.close()
    return out


def dmc_noise_floor(domain: str, task: str, n: int, repeats: int) -> dict[str, float]:
    """The same comparison with dm_control on both sides: how far from 1 noise alone moves
    the ratio on this machine."""
    from dm_control import suite

    first = suite.load(domain, task, task_kwargs={"random": 0})
    second = suite.load(domain, task, task_kwargs={"random": 0})
    actions = np.random.default_rng(0).uniform(-1, 1, (n, *first.action_spec().shape))

    def resetter(env: Any) -> Callable[[], None]:
        def reset() -> None:
            env.task._random = np.random.RandomState(0)
            env.reset()

        return reset

    return _compare(
        first.step, resetter(first), second.step, resetter(second), actions, actions, repeats
    )


def metaworld(task: str, n: int, repeats: int) -> dict[str, float]:
    env_cls, tasks = _metaworld_tasks(f"{task}-v3", 0)
    raw = env_cls()
    raw.set_task(tasks[0])
    raw.seed(0)
    ours = HiddenReward(gym.make(metaworld_id(task)))
    ours.reset(seed=0)
    goal = tasks[ours.unwrapped.goal_index]  # the same goal for both: contacts cost differ
    actions = np.random.default_rng(0).uniform(-1, 1, (n, 4)).astype(np.float32)

    def raw_reset() -> None:
        raw.set_task(goal)
        raw.reset()

    out = _compare(
        raw.step, raw_reset, ours.step, lambda: ours.reset(seed=0), actions, actions, repeats
    )
    ours.close()
    return out


def _ratio(n: int, raw_s: np.ndarray, ours_s: np.ndarray) -> dict[str, float]:
    return {
        "block_steps": n,
        "pairs": len(raw_s),
        "raw_steps_per_s": round(n / float(np.median(raw_s)), 1),
        "ours_steps_per_s": round(n / float(np.median(ours_s)), 1),
        "ratio": round(float(np.median(raw_s / ours_s)), 4),
        "ratio_of_fastest_blocks": round(float(raw_s.min() / ours_s.min()), 4),
        "overhead_us_per_step": round(float(np.median(ours_s - raw_s)) / n * 1e6, 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few steps: a smoke check")
    args = parser.parse_args(argv)
    n, repeats = (300, 2) if args.quick else (2000, 5)
    results = {
        "dmc_cartpole_swingup": dmc("cartpole", "swingup", n, repeats),
        "dmc_walker_walk": dmc("walker", "walk", n, repeats),
        "dmc_point_mass_easy": dmc("point_mass", "easy", n, repeats),
        "metaworld_door_open": metaworld("door-open", n // 2, repeats),
    }
    noise_floor = dmc_noise_floor("point_mass", "easy", n, repeats)
    worst = min(r["ratio"] for r in results.values())
    write_result(
        "control",
        {
            "ratio": worst,
            "ratio_meaning": (
                "raw simulator time / our wrapped env time, median over paired blocks "
                "(worst task); 1 = free"
            ),
            "max_overhead": round(1 - worst, 4),
            "within_5_percent": bool(worst >= 0.95),
            "quick": args.quick,
            "tasks": results,
            "noise_floor_raw_vs_raw_point_mass": noise_floor,
        },
    )


if __name__ == "__main__":
    main()
