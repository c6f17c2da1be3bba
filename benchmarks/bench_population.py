"""Population labelling: the vectorized Population vs a per-agent Mesa loop, and memory at 1e6.

Every annotator labels ``--queries-per-annotator`` response pairs (8-dimensional
embeddings) under the Bradley-Terry model with Boltzmann noise.

* ours: ``sandbox.population.Population.label`` -- one vectorized call over all queries;
* reference (``ratio``): the textbook Mesa way -- ``model.agents.do("step")``, where each
  annotator agent labels its own queries in ``step``, one query at a time;
* a kinder reference (``ratio_vs_agent_batched``): the same agent loop, but each agent
  labels all its own queries in one numpy call, so only the per-agent cost remains.

All are timed at 10,000 and 100,000 annotators (best of 3 for ours, one pass for the
loops); with noiseless annotators all give identical labels (checked). Then the peak
traced memory (``tracemalloc``; numpy reports its buffers to it) of building a population
of 1,000,000 annotators with ``create_agents=False`` and of labelling 1,000,000 queries
with it, and the per-agent memory of Mesa agent objects (measured at the smaller size).
Run: ``python -m benchmarks.bench_population [--quick]``.
"""

from __future__ import annotations

import argparse
import math
import time
import tracemalloc

import mesa
import numpy as np

from benchmarks.common import best_of, write_result
from sandbox.population import Population

DIM = 8
SHARES = [0.8, 0.2]


def _centres() -> np.ndarray:
    c = np.zeros((2, DIM))
    c[0, 0], c[1, 0] = 1.5, -1.5
    c[:, -1] = 1.0
    return c


class LoopAnnotator(mesa.Agent):
    """The per-agent reference: an annotator that owns its values and labels its queries."""

    def __init__(self, model: LoopModel, values: np.ndarray, beta: float, start: int, stop: int):
        super().__init__(model)
        self.values = values.copy()
        self.beta = beta
        self.start, self.stop = start, stop

    def step(self) -> None:
        m = self.model
        if m.batched:  # all of this agent's queries in one numpy call
            sl = slice(self.start, self.stop)
            diff = (m.item_a[sl] - m.item_b[sl]) @ self.values
            with np.errstate(over="ignore"):
                p = 1.0 / (1.0 + np.exp(-self.beta * diff))
            m.labels[sl] = m.rng.random(p.shape) < p
            return
        for q in range(self.start, self.stop):  # one decision per query
            z = self.beta * float(self.values @ (m.item_a[q] - m.item_b[q]))
            p = 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0
            m.labels[q] = m.random.random() < p


class LoopModel(mesa.Model):
    def __init__(self, values: np.ndarray, beta: np.ndarray, per: int, seed: int = 0) -> None:
        super().__init__(seed=seed)
        for i, (v, b) in enumerate(zip(values, beta, strict=True)):
            LoopAnnotator(self, v, float(b), i * per, (i + 1) * per)
        self.item_a = self.item_b = self.labels = None
        self.batched = False

    def step(self, item_a: np.ndarray, item_b: np.ndarray, batched: bool = False) -> None:
        self.item_a, self.item_b, self.batched = item_a, item_b, batched
        self.labels = np.zeros(item_a.shape[0])
        self.agents.do("step")


def _queries(n: int, per: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    annotators = np.repeat(np.arange(n), per)
    return annotators, rng.standard_normal((n * per, DIM)), rng.standard_normal((n * per, DIM))


def compare(n: int, per: int) -> dict:
    pop = Population.from_groups(n, SHARES, _centres(), 0.3, beta=1.0, seed=0, create_agents=False)
    annotators, a, b = _queries(n, per, 1)
    t_ours = best_of(lambda: pop.label(annotators, a, b), repeats=3)

    t0 = time.perf_counter()
    loop = LoopModel(pop.values, pop.beta, per)
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    loop.step(a, b)
    t_loop = time.perf_counter() - t0
    t0 = time.perf_counter()
    loop.step(a, b, batched=True)
    t_batched = time.perf_counter() - t0

    # equal work: noiseless annotators give identical labels all three ways
    pop.beta[:] = np.inf
    for agent in loop.agents:
        agent.beta = 1e300
    ours = pop.label(annotators, a, b)
    loop.step(a, b)
    same = bool(np.array_equal(ours, loop.labels))
    loop.step(a, b, batched=True)
    same = same and bool(np.array_equal(ours, loop.labels))
    return {
        "annotators": n,
        "queries": n * per,
        "ours_s": t_ours,
        "loop_s": t_loop,
        "loop_batched_s": t_batched,
        "loop_build_s": t_build,
        "ratio": t_loop / t_ours,
        "ratio_vs_agent_batched": t_batched / t_ours,
        "identical_noiseless_labels": same,
    }


def memory(n: int, queries: int) -> dict:
    tracemalloc.start()
    pop = Population.from_groups(n, SHARES, _centres(), 0.3, beta=1.0, seed=0, create_agents=False)
    _, build_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rng = np.random.default_rng(2)
    annotators = rng.integers(0, n, queries)
    a, b = rng.standard_normal((queries, DIM)), rng.standard_normal((queries, DIM))
    tracemalloc.start()
    t0 = time.perf_counter()
    pop.label(annotators, a, b)
    t_label = time.perf_counter() - t0
    _, label_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    array_bytes = pop.values.nbytes + pop.groups.nbytes + pop.beta.nbytes + pop.bias.nbytes
    return {
        "annotators": n,
        "array_mib": array_bytes / 2**20,
        "build_peak_mib": build_peak / 2**20,
        "label_queries": queries,
        "label_peak_mib": label_peak / 2**20,
        "label_inputs_mib": (annotators.nbytes + a.nbytes + b.nbytes) / 2**20,
        "label_s": t_label,
    }


def agent_bytes(n: int) -> float:
    """Traced bytes per Annotator object (Mesa agent + registration), at n annotators."""
    values = np.zeros((n, DIM))
    tracemalloc.start()
    Population(values, create_agents=True)
    with_agents, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    tracemalloc.start()
    Population(values, create_agents=False)
    without, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return (with_agents - without) / n


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 / 10,000 annotators, 1e5")
    parser.add_argument("--queries-per-annotator", type=int, default=10)
    args = parser.parse_args(argv)
    sizes = [2_000, 10_000] if args.quick else [10_000, 100_000]
    big = 100_000 if args.quick else 1_000_000
    per = args.queries_per_annotator

    rows = [compare(n, per) for n in sizes]
    for r in rows:
        print(
            f"  {r['annotators']:>9,} annotators, {r['queries']:>10,} queries: ours "
            f"{r['ours_s'] * 1e3:7.1f} ms; per-agent loop {r['loop_s'] * 1e3:8.1f} ms "
            f"({r['ratio']:.0f}x); agent-batched loop {r['loop_batched_s'] * 1e3:7.1f} ms "
            f"({r['ratio_vs_agent_batched']:.1f}x); identical={r['identical_noiseless_labels']}"
        )
    mem = memory(big, big)
    per_agent = agent_bytes(min(sizes))
    print(
        f"  {big:,} annotators: arrays {mem['array_mib']:.0f} MiB, build peak "
        f"{mem['build_peak_mib']:.0f} MiB; labelling {big:,} queries: peak "
        f"{mem['label_peak_mib']:.0f} MiB (+ {mem['label_inputs_mib']:.0f} MiB inputs), "
        f"{mem['label_s']:.2f} s; Mesa agent objects ~{per_agent:.0f} B each"
    )
    payload = {
        "ratio": rows[-1]["ratio"],
        "ratio_small": rows[0]["ratio"],
        "ratio_vs_agent_batched": rows[-1]["ratio_vs_agent_batched"],
        "ours_s_large": rows[-1]["ours_s"],
        "loop_s_large": rows[-1]["loop_s"],
        "memory_annotators": big,  # 1e6 (1e5 with --quick)
        "peak_mib": max(mem["build_peak_mib"], mem["label_peak_mib"]),
        "quick": args.quick,
        "sizes": rows,
        "memory": mem,
        "agent_object_bytes": per_agent,
    }
    write_result("population", payload)
    return payload


if __name__ == "__main__":
    main()
