"""``python -m benchmarks [--quick] [name ...]``: run every ``bench_*.py`` (or the named ones)."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("names", nargs="*", help="benchmark module names (default: all bench_*.py)")
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: a smoke check, not a measurement"
    )
    args = parser.parse_args(argv)
    here = Path(__file__).resolve().parent
    names = args.names or sorted(p.stem for p in here.glob("bench_*.py"))
    failures = []
    for name in names:
        module_name = name if name.startswith("bench_") else f"bench_{name}"
        print(f"== {module_name}", flush=True)
        t0 = time.perf_counter()
        try:
            module = importlib.import_module(f"benchmarks.{module_name}")
            module.main(["--quick"] if args.quick else [])
        except Exception:
            traceback.print_exc()
            failures.append(module_name)
        print(f"   ({time.perf_counter() - t0:.1f} s)", flush=True)
    if failures:
        print(f"failed: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
