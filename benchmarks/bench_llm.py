"""LLM layer: concurrency and the response cache, end to end through the study.

Two ratios, each measured in one run against the local OpenAI-compatible server
(``sandbox.llm.server``, scripted persona) with a simulated per-request think time
standing in for a remote model:

* ``concurrency_speedup``: the principal-agent study's trials with ``concurrency=16``
  vs the same trials sent one at a time (``concurrency=1``);
* ``cache_speedup``: a rerun served from the SQLite cache vs the first run.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from benchmarks.common import write_result
from sandbox.llm.server import serve
from sandbox.study import RunContext
from studies.principal_agent import STUDY, PrincipalAgentConfig

KEY_ENV = "SANDBOX_BENCH_KEY"  # a placeholder key for the local server


def _config(url: str, samples: int, concurrency: int, cache: bool) -> PrincipalAgentConfig:
    return PrincipalAgentConfig(
        backend="openai",
        model="bench",
        base_url=url,
        api_key_env=KEY_ENV,
        scenario="car",
        condition="all",
        samples=samples,
        concurrency=concurrency,
        temperature=0.8,
        cache=cache,
    )


def _timed(config: PrincipalAgentConfig, ctx: RunContext) -> tuple[float, dict]:
    t0 = time.perf_counter()
    frame = STUDY.run(config, 0, ctx)
    wall = time.perf_counter() - t0
    failed = float(frame.loc[frame["metric"] == "n_failed", "value"].sum())
    if failed:
        raise RuntimeError(f"{failed:g} trials failed during the benchmark")
    return wall, ctx.extras["tokens"]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="40 trials instead of 200")
    parser.add_argument("--latency", type=float, default=0.05, help="server think time (s)")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args(argv)
    trials = 40 if args.quick else 200
    samples = trials // 4  # car scenario x 4 conditions
    os.environ.setdefault(KEY_ENV, "EMPTY")
    with tempfile.TemporaryDirectory() as tmp, serve("scripted", latency_s=args.latency) as srv:
        _timed(_config(srv.url, 1, 1, cache=False), RunContext())  # warm-up: imports, client
        seq_s, _ = _timed(_config(srv.url, samples, 1, cache=False), RunContext())
        conc_s, _ = _timed(_config(srv.url, samples, args.concurrency, cache=False), RunContext())
        cache_dir = Path(tmp) / "cache"
        first_s, first_tokens = _timed(
            _config(srv.url, samples, args.concurrency, cache=True), RunContext(cache_dir=cache_dir)
        )
        rerun_s, rerun_tokens = _timed(
            _config(srv.url, samples, args.concurrency, cache=True), RunContext(cache_dir=cache_dir)
        )
    assert rerun_tokens["cache_hits"] == trials and rerun_tokens["requests"] == 0
    payload = {
        "trials": trials,
        "server_latency_s": args.latency,
        "concurrency": args.concurrency,
        "sequential_s": round(seq_s, 3),
        "concurrent_s": round(conc_s, 3),
        "concurrency_speedup": round(seq_s / conc_s, 2),
        "first_run_s": round(first_s, 3),
        "cached_rerun_s": round(rerun_s, 3),
        "cache_speedup": round(first_s / rerun_s, 2),
        "first_run_requests": first_tokens["requests"],
        "quick": args.quick,
    }
    path = write_result("llm", payload)
    print(
        f"{trials} trials, server latency {args.latency:g}s: concurrency {args.concurrency} "
        f"{payload['concurrency_speedup']}x faster than sequential "
        f"({seq_s:.2f}s -> {conc_s:.2f}s); cached rerun {payload['cache_speedup']}x faster "
        f"({first_s:.2f}s -> {rerun_s:.2f}s) -> {path}"
    )
    return payload


if __name__ == "__main__":
    main()
