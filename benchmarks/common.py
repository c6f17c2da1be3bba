"""Shared plumbing for benchmarks: timing and writing ``benchmarks/results/<name>.json``."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    try:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def best_of(fn: Callable[[], Any], repeats: int = 3) -> float:
    """Minimum wall time of ``repeats`` calls: the least disturbed by other load."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def write_result(name: str, payload: dict[str, Any]) -> Path:
    """Write one benchmark's numbers (with the machine they were measured on) atomically."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    body = {
        "benchmark": name,
        "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        **payload,
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(body, indent=2, default=float) + "\n")
    tmp.replace(path)
    print(
        f"{name}: "
        + ", ".join(f"{k}={v}" for k, v in payload.items() if not isinstance(v, dict | list))
    )
    return path
