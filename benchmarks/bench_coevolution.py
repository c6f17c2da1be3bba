"""Value co-evolution hot path: one step of 100,000 humans x 19 value dimensions.

Each step every human is pulled towards the real next timestep (plus its own offset) and
towards the AI's value vector, with noise: h <- h + eta (1 - lambda) (x_t + o - h) +
lambda (v_AI - h) + noise N(0, I).

* ours: ``sandbox.population.Population.step`` (one numpy update of the (N, 19) array),
  over ``--steps`` steps, as the env runs it (``collect_statistics=False``), and again with
  the Mesa DataCollector's per-step group statistics;
* reference: the same update written the textbook Mesa way, one ``mesa.Agent`` per human
  holding its own value vector, ``model.agents.do("step")`` each step; timed on
  ``--loop-steps`` steps and scaled per step (it is linear in steps);
* the bare numpy update without Population's bookkeeping (DataCollector statistics), the
  floor of the vectorized step;
* also the full ``sandbox/ValueCoevolution-v0`` step (both populations, vote elicitation
  on 500 pairs x 5 voters, diversity estimate) at the same population size.

With noise off the two updates give the same values (checked), so the ratio compares
equal work. Run: ``python -m benchmarks.bench_coevolution [--quick]``.
"""

from __future__ import annotations

import argparse
import time

import mesa
import numpy as np

from benchmarks.common import write_result
from envs.coevolution import N_DIMS, ValueCoevolutionEnv, generate_history
from sandbox.population import Population

ETA, LAM, NOISE = 0.5, 0.3, 0.01


class LoopHuman(mesa.Agent):
    """The per-agent reference: a human that owns its value vector and updates itself."""

    def __init__(self, model: LoopModel, value: np.ndarray, offset: np.ndarray) -> None:
        super().__init__(model)
        self.value = value.copy()
        self.offset = offset

    def step(self) -> None:
        m = self.model
        h = self.value
        delta = ETA * (1 - LAM) * (m.target + self.offset - h) + LAM * (m.ai - h)
        if m.noise > 0:
            delta = delta + m.noise * m.rng.standard_normal(N_DIMS)
        self.value = h + delta


class LoopModel(mesa.Model):
    def __init__(
        self, values: np.ndarray, offsets: np.ndarray, noise: float, seed: int = 0
    ) -> None:
        super().__init__(seed=seed)
        self.noise = noise
        self.target = np.zeros(N_DIMS)
        self.ai = np.zeros(N_DIMS)
        for v, o in zip(values, offsets, strict=True):
            LoopHuman(self, v, o)

    def step(self, target: np.ndarray, ai: np.ndarray) -> None:
        self.target, self.ai = target, ai
        self.agents.do("step")

    def values(self) -> np.ndarray:
        return np.stack([a.value for a in self.agents])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 humans, 20 steps")
    parser.add_argument("--humans", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--loop-steps", type=int, default=None)
    args = parser.parse_args(argv)
    n = args.humans or (10_000 if args.quick else 100_000)
    steps = args.steps or (20 if args.quick else 100)
    loop_steps = args.loop_steps or (2 if args.quick else 3)

    rng = np.random.default_rng(0)
    history = generate_history(steps, rng)
    offsets = 0.3 * rng.standard_normal((n, N_DIMS))
    init = history[0] + offsets
    ai = rng.uniform(-1, 1, N_DIMS)

    # correctness: with noise off, the vectorized and the per-agent updates agree
    k = min(n, 2000)
    pop = Population(init[:k], seed=0, create_agents=False)
    ref = LoopModel(init[:k], offsets[:k], noise=0.0)
    for t in range(2):
        pop.step(pull_targets=[(history[t + 1] + offsets[:k], ETA * (1 - LAM)), (ai, LAM)])
        ref.step(history[t + 1], ai)
    if not np.allclose(pop.values, ref.values(), atol=1e-12):
        raise AssertionError("the vectorized and the per-agent updates differ")

    # ours: the vectorized population step, as the env runs it (no DataCollector), and with
    # the DataCollector's per-step group statistics
    def population_step_s(collect_statistics: bool) -> float:
        pop = Population(init, seed=0, create_agents=False, collect_statistics=collect_statistics)
        t0 = time.perf_counter()
        for t in range(steps):
            targets = [(history[t + 1] + offsets, ETA * (1 - LAM)), (ai, LAM)]
            pop.step(pull_targets=targets, noise=NOISE)
        return (time.perf_counter() - t0) / steps

    vec_per_step = population_step_s(collect_statistics=False)
    stats_per_step = population_step_s(collect_statistics=True)

    # the bare numpy update (no Population bookkeeping, no DataCollector): the floor
    vals = init.copy()
    noise_rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for t in range(steps):
        vals += ETA * (1 - LAM) * (history[t + 1] + offsets - vals) + LAM * (ai - vals)
        vals += NOISE * noise_rng.standard_normal(vals.shape)
    raw_per_step = (time.perf_counter() - t0) / steps

    # reference: per-agent Mesa loop, timed on a few steps
    t0 = time.perf_counter()
    ref = LoopModel(init, offsets, noise=NOISE)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for t in range(loop_steps):
        ref.step(history[t + 1], ai)
    loop_per_step = (time.perf_counter() - t0) / loop_steps

    # the whole environment step at this size (two populations + elicitation + diversity)
    env_steps = min(steps, 10)
    env = ValueCoevolutionEnv(
        horizon=env_steps, n_humans=n, influence=LAM, history_rate=ETA, noise=NOISE
    )
    env.reset(seed=0)
    t0 = time.perf_counter()
    for _ in range(env_steps):
        env.step(ai)
    env_per_step = (time.perf_counter() - t0) / env_steps

    payload = {
        "humans": n,
        "dims": N_DIMS,
        "steps": steps,
        "loop_steps_timed": loop_steps,
        "vectorized_s_per_step": round(vec_per_step, 5),
        "per_agent_mesa_s_per_step": round(loop_per_step, 4),
        "speedup": round(loop_per_step / vec_per_step, 1),
        "with_statistics_s_per_step": round(stats_per_step, 5),
        "speedup_with_statistics": round(loop_per_step / stats_per_step, 1),
        "bare_numpy_s_per_step": round(raw_per_step, 5),
        "vectorized_total_s": round(vec_per_step * steps, 3),
        "per_agent_mesa_total_s_scaled": round(loop_per_step * steps, 1),
        "per_agent_mesa_build_s": round(build_s, 2),
        "env_s_per_step": round(env_per_step, 4),
    }
    write_result("coevolution", payload)
    return payload


if __name__ == "__main__":
    main()
