"""Runner overhead per run (empty study) and the local executor's 2-worker speed-up.

References, measured in the same run: calling ``Study.run`` directly in a loop (overhead),
and the same runs with one worker (speed-up).
"""

from __future__ import annotations

import argparse
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
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    o = overhead(10 if args.quick else 100)
    s = speedup(4, 300_000) if args.quick else speedup(8, 3_000_000)
    write_result(
        "runner",
        {
            "overhead_ms_per_run": o["overhead_ms_per_run"],
            "runner_vs_direct_ratio": round(o["runner_s"] / max(o["direct_s"], 1e-9), 1),
            "local_speedup_2_workers_over_1": s["speedup_2_over_1"],
            "overhead": o,
            "speedup": s,
        },
    )


if __name__ == "__main__":
    main()
