"""Runner overhead per run (empty study) and the local executor's 2-worker speed-up.

References, measured in the same run: calling ``Study.run`` directly in a loop (overhead),
and the same runs with one worker (speed-up).
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from pathlib import Path

from benchmarks.common import write_result
from sandbox.executors import LocalExecutor
from sandbox.report import write_report
from sandbox.runner import plan, run_study
from sandbox.study import RunContext
from sandbox.testing import EMPTY, SPIN


def overhead(n_runs: int) -> dict[str, float]:
    specs = plan(EMPTY, "sandbox.testing:EMPTY", seeds=list(range(n_runs)))
    config = EMPTY.Config()
    t0 = time.perf_counter()
    for seed in range(n_runs):
        EMPTY.run(config, seed, RunContext())
    direct = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run_study(
            EMPTY, specs, Path(tmp) / "out", executor=LocalExecutor(1), quiet=True, report=False
        )
        ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        write_report(EMPTY, Path(tmp) / "out")
        report_s = time.perf_counter() - t0
    return {
        "runs": n_runs,
        "direct_s": round(direct, 4),
        "runner_s": round(ours, 4),
        "overhead_ms_per_run": round(1000 * (ours - direct) / n_runs, 2),
        "report_once_s": round(report_s, 3),
    }


def _spin_once(args: tuple[int, int]) -> None:
    seed, iterations = args
    SPIN.run(SPIN.Config(iterations=iterations), seed, RunContext())


def machine_ceiling(n_runs: int, iterations: int) -> float:
    """The same work through a bare 2-process ``multiprocessing`` pool vs a plain loop: the
    most any executor can gain on this machine (a shared VM may give far less than 2x)."""
    work = [(seed, iterations) for seed in range(n_runs)]
    t0 = time.perf_counter()
    for item in work:
        _spin_once(item)
    sequential = time.perf_counter() - t0
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(_spin_once, work[:2])  # start the workers before timing
        t0 = time.perf_counter()
        pool.map(_spin_once, work, chunksize=1)
        pooled = time.perf_counter() - t0
    return round(sequential / pooled, 3)


def speedup(n_runs: int, iterations: int) -> dict[str, float]:
    specs = plan(
        SPIN, "sandbox.testing:SPIN", seeds=list(range(n_runs)), sets={"iterations": iterations}
    )
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            t0 = time.perf_counter()
            run_study(
                SPIN, specs, Path(tmp) / f"w{workers}", executor=LocalExecutor(workers), quiet=True
            )
            times[workers] = time.perf_counter() - t0
    return {
        "runs": n_runs,
        "one_worker_s": round(times[1], 3),
        "two_workers_s": round(times[2], 3),
        "speedup_2_over_1": round(times[1] / times[2], 3),
        "bare_pool_speedup_2_over_1": machine_ceiling(n_runs, iterations),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    o = overhead(10 if args.quick else 100)
    s = speedup(4, 300_000) if args.quick else speedup(8, 10_000_000)
    write_result(
        "runner",
        {
            "overhead_ms_per_run": o["overhead_ms_per_run"],
            "runner_vs_direct_ratio": round(o["runner_s"] / max(o["direct_s"], 1e-9), 1),
            "local_speedup_2_workers_over_1": s["speedup_2_over_1"],
            "bare_multiprocessing_speedup_2_over_1": s["bare_pool_speedup_2_over_1"],
            "overhead": o,
            "speedup": s,
        },
    )


if __name__ == "__main__":
    main()
