"""Expand a study's grid x seeds into run specs, execute them, store and resume.

A run is identified by a stable hash of (study name, study version, full config, seed),
so the same run in another folder, on another machine or after a crash has the same id,
and ``--resume`` only runs the ids that have no stored part.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import json
import os
import platform
import random
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sandbox import config as cfg
from sandbox.config import ConfigError
from sandbox.executors import Executor, LocalExecutor
from sandbox.results import ResultsFolder
from sandbox.study import RESERVED_COLUMNS, RunContext, Study, load_path

TRACKED_PACKAGES = (
    "alignment-sandbox",
    "numpy",
    "pandas",
    "pyarrow",
    "pydantic",
    "torch",
    "gymnasium",
    "stable-baselines3",
    "mujoco",
    "dm-control",
    "metaworld",
    "mesa",
    "openai",
    "ray",
)


@dataclass(frozen=True)
class RunSpec:
    """Everything a worker needs to execute one run, in plain picklable values."""

    study_path: str
    study_name: str
    study_version: str
    config: dict[str, Any]
    seed: int
    varied: dict[str, Any]
    run_id: str
    device: str = "auto"
    cache_dir: str | None = None
    shared_data: str | None = None


@dataclass
class RunOutcome:
    run_id: str
    status: str  # "ok" | "failed"
    frame: pd.DataFrame | None = None
    error: str | None = None
    start: str | None = None
    end: str | None = None
    wall_s: float | None = None
    extras: dict[str, Any] = field(default_factory=dict)


class UsageError(ValueError):
    """A command-line mistake other than a config value (exit code 2)."""


def run_id_for(study_name: str, version: str, config: Mapping[str, Any], seed: int) -> str:
    payload = json.dumps(
        {"study": study_name, "version": str(version), "config": config, "seed": int(seed)},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def find_shared_data() -> Path | None:
    """The shared data folder: $SANDBOX_SHARED_DATA, else ``../shared/data`` beside the checkout."""
    env = os.environ.get("SANDBOX_SHARED_DATA")
    if env:
        return Path(env) if Path(env).is_dir() else None
    here = Path(__file__).resolve().parents[1]
    for base in (here, Path.cwd()):
        candidate = base.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return None


def default_cache_dir() -> Path:
    return Path(os.environ.get("SANDBOX_CACHE_DIR") or Path.home() / ".cache" / "alignment-sandbox")


def plan(
    study: Study,
    study_path: str,
    scale: str = "quick",
    seeds: Sequence[int] | None = None,
    sets: Mapping[str, Any] | None = None,
    grids: Mapping[str, Sequence[Any]] | None = None,
    device: str = "auto",
) -> list[RunSpec]:
    """Validate the whole configuration and expand it into run specs (nothing runs yet).

    Precedence: the study's defaults < the scale preset < ``sets`` and ``grids`` from the
    command line. A key given with ``--set`` drops the preset's grid over that key.
    """
    preset = study.preset(scale)
    sets = dict(sets or {})
    grids = dict(grids or {})
    cfg.check_keys(study.Config, sets)
    cfg.check_keys(study.Config, grids)
    both = set(sets) & set(grids)
    if both:
        raise ConfigError(
            f"key(s) {', '.join(sorted(both))} given both with --set and --grid; use one"
        )
    base = {**preset.set, **sets}
    grid = {k: v for k, v in preset.grid.items() if k not in sets}
    grid.update(grids)
    for k in grid:
        base.pop(k, None)
    configs = cfg.expand(study.Config, base, grid)
    if seeds is None:
        seeds = list(range(preset.seeds))
    if not seeds:
        raise UsageError("no seeds: give --seeds N with N >= 1 or a non-empty --seed-list")
    if len(set(seeds)) != len(seeds):
        raise UsageError(f"duplicate seeds in {list(seeds)}")
    dumped = [c.model_dump(mode="json") for c in configs]
    varied_keys = [
        k
        for k in study.Config.model_fields
        if len({json.dumps(d[k], sort_keys=True) for d in dumped}) > 1
    ]
    specs = []
    for conf in dumped:
        for seed in seeds:
            specs.append(
                RunSpec(
                    study_path=study_path,
                    study_name=study.name,
                    study_version=str(study.version),
                    config=conf,
                    seed=int(seed),
                    varied={k: conf[k] for k in varied_keys},
                    run_id=run_id_for(study.name, study.version, conf, seed),
                    device=device,
                )
            )
    return specs


def _seed_everything(seed: int) -> None:
    """Seed the global generators a study might touch (studies should use their own rngs)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch = sys.modules.get("torch")  # only if the study uses torch: importing it costs seconds
    if torch is not None:
        torch.manual_seed(seed)


@contextlib.contextmanager
def _torch_single_thread():
    """One torch thread while a run executes, as in pool workers, so results don't depend on
    the worker count. Applied when torch is already loaded; workers set OMP_NUM_THREADS=1."""
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if torch is not None and threads is not None:
            torch.set_num_threads(threads)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def tidy(frame: pd.DataFrame, spec: RunSpec) -> pd.DataFrame:
    """Check a study's rows and add the runner's columns (study, run_id, seed, varied keys)."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(
            f"{spec.study_name}.run returned {type(frame).__name__}, expected a pandas DataFrame"
        )
    missing = {"metric", "value"} - set(frame.columns)
    if missing:
        raise ValueError(
            f"{spec.study_name}.run returned no {', '.join(sorted(missing))} column(s)"
        )
    clash = set(RESERVED_COLUMNS) & set(frame.columns)
    if clash:
        raise ValueError(
            f"{spec.study_name}.run returned reserved column(s) {', '.join(sorted(clash))}"
        )
    out = frame.reset_index(drop=True).copy()
    out["metric"] = out["metric"].astype(str)
    out["value"] = pd.to_numeric(out["value"], errors="raise").astype("float64")
    front = pd.DataFrame(
        {"study": spec.study_name, "run_id": spec.run_id, "seed": spec.seed}, index=out.index
    )
    out = pd.concat([front, out], axis=1)
    for key, value in spec.varied.items():
        if key not in out.columns:
            out[key] = json.dumps(value) if isinstance(value, list | dict) else value
    return out


def execute(
    spec: RunSpec, progress: Callable[[float, float | None], None] | None = None
) -> RunOutcome:
    """Run one spec; never raises for a failing study (the failure is the outcome).

    Module-level so process pools and Ray can pickle it.
    """
    from threadpoolctl import threadpool_limits

    start, t0 = _now(), time.perf_counter()
    ctx = RunContext(
        device=spec.device,
        cache_dir=Path(spec.cache_dir) if spec.cache_dir else None,
        shared_data=Path(spec.shared_data) if spec.shared_data else None,
    )
    if progress is not None:
        ctx.progress = progress
    try:
        study = load_path(spec.study_path)
        config = study.Config(**spec.config)
        with threadpool_limits(limits=1), _torch_single_thread():
            _seed_everything(spec.seed)
            frame = tidy(study.run(config, spec.seed, ctx), spec)
        status, error = "ok", None
    except Exception:
        frame, status, error = None, "failed", traceback.format_exc(limit=20)
    return RunOutcome(
        run_id=spec.run_id,
        status=status,
        frame=frame,
        error=error,
        start=start,
        end=_now(),
        wall_s=round(time.perf_counter() - t0, 4),
        extras=_jsonable(ctx.extras),
    )


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except TypeError:
        return json.loads(json.dumps(value, default=str))


def _lost(spec: RunSpec, error: str) -> RunOutcome:
    return RunOutcome(
        run_id=spec.run_id, status="failed", error=f"worker lost: {error}", start=None, end=_now()
    )


def _git_revision() -> str | None:
    root = Path(__file__).resolve().parents[1]
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        )
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


@dataclass
class RunSummary:
    folder: Path
    ok: list[str]
    failed: dict[str, str]
    skipped: list[str]
    report: Path | None
    report_error: str | None = None


def run_study(
    study: Study,
    specs: Sequence[RunSpec],
    out: str | Path,
    *,
    executor: Executor | None = None,
    resume: bool = False,
    scale: str = "quick",
    quiet: bool = False,
    command: Sequence[str] | None = None,
    report: bool = True,
) -> RunSummary:
    """Execute ``specs`` into the results folder ``out`` and build its report.

    Without ``resume`` a non-empty folder is refused (nothing is overwritten). With it,
    run ids that already have a part are skipped and the manifest keeps their records.
    """
    folder = ResultsFolder(out)
    executor = executor or LocalExecutor(1)
    previous: dict[str, Any] = {}
    if not folder.is_empty():
        if not resume:
            raise UsageError(
                f"output folder {folder.path} is not empty; pass --resume to continue it, or choose another --out"
            )
        folder.remove_stale_temp_files()
        if (folder.path / "manifest.json").exists():
            previous = folder.read_manifest()
            if previous.get("study") != study.name:
                raise UsageError(
                    f"{folder.path} holds results of study {previous.get('study')!r}, not {study.name!r}"
                )
    folder.path.mkdir(parents=True, exist_ok=True)

    done = folder.completed_run_ids()
    cache_dir = str(default_cache_dir())
    shared = find_shared_data()
    specs = [
        RunSpec(
            **{
                **asdict(s),
                "cache_dir": s.cache_dir or cache_dir,
                "shared_data": s.shared_data or (str(shared) if shared else None),
            }
        )
        for s in specs
    ]
    todo = [s for s in specs if s.run_id not in done]
    skipped = [s.run_id for s in specs if s.run_id in done]

    old_runs = previous.get("runs", {})
    runs: dict[str, Any] = {}
    for s in specs:
        entry = {"config": s.config, "seed": s.seed, "status": "pending"}
        if s.run_id in done:
            entry = {**entry, **old_runs.get(s.run_id, {}), "status": "ok"}
        runs[s.run_id] = entry
    manifest: dict[str, Any] = {
        "study": study.name,
        "study_version": str(study.version),
        "study_path": specs[0].study_path if specs else None,
        "scale": scale,
        "created": previous.get("created", _now()),
        "updated": _now(),
        "command": list(command) if command else None,
        "executor": getattr(executor, "name", type(executor).__name__),
        "git_revision": _git_revision(),
        "versions": _versions(),
        "host": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "seeds": sorted({s.seed for s in specs}),
        "varied_keys": sorted({k for s in specs for k in s.varied}),
        "runs": runs,
    }
    folder.write_manifest(manifest)

    ok = list(skipped)
    failed: dict[str, str] = {}
    bar = None if quiet else _progress_bar(len(todo), study.name)
    inner = None if quiet else _InnerProgress(executor)
    fn = execute if inner is None else inner.wrap(execute)
    try:
        for spec, outcome in executor.map(
            fn, todo, _lost, tick=None if inner is None else inner.drain
        ):
            entry = runs[spec.run_id]
            entry.update(
                status=outcome.status, start=outcome.start, end=outcome.end, wall_s=outcome.wall_s
            )
            if outcome.extras:
                entry["extras"] = outcome.extras
            if outcome.status == "ok" and outcome.frame is not None:
                folder.write_part(spec.run_id, outcome.frame)
                entry.pop("error", None)
                ok.append(spec.run_id)
            else:
                entry["error"] = outcome.error
                failed[spec.run_id] = outcome.error or "unknown error"
            manifest["updated"] = _now()
            folder.write_manifest(manifest)
            if inner is not None:
                inner.finish(spec.run_id)
            if bar is not None:
                bar.update(1)
                if failed:
                    bar.set_postfix(failed=len(failed))
    finally:
        if inner is not None:
            inner.close()
        if bar is not None:
            bar.close()
        executor.close()

    merged = folder.read_parts([s.run_id for s in specs])
    folder.write_results(merged)
    report_path, report_error = None, None
    if report:
        try:
            from sandbox.report import write_report

            report_path = write_report(study, folder.path)
        except Exception:
            report_error = traceback.format_exc(limit=10)
    return RunSummary(
        folder=folder.path,
        ok=ok,
        failed=failed,
        skipped=skipped,
        report=report_path,
        report_error=report_error,
    )


def _progress_bar(total: int, name: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"{name} runs", unit="run", file=sys.stderr, dynamic_ncols=True)


class _InnerProgress:
    """Bars for progress inside runs (``ctx.progress``), one per run in flight.

    In this process the study's callback draws directly; from pool or Ray workers the
    updates travel through a queue that the runner drains while it waits.
    """

    def __init__(self, executor: Executor):
        self.bars: dict[str, Any] = {}
        self.queue = None
        self._manager = None
        if not (isinstance(executor, LocalExecutor) and executor.workers == 1):
            import multiprocessing as mp

            self._manager = mp.get_context("spawn").Manager()
            self.queue = self._manager.Queue()

    def wrap(self, fn: Callable[..., RunOutcome]) -> Callable[[RunSpec], RunOutcome]:
        if self.queue is None:
            return functools.partial(_execute_local_progress, sink=self.update, fn=fn)
        return functools.partial(_execute_queued_progress, queue=self.queue, fn=fn)

    def update(self, run_id: str, done: float, total: float | None) -> None:
        from tqdm.auto import tqdm

        bar = self.bars.get(run_id)
        if bar is None:
            bar = tqdm(
                total=total,
                desc=f"  {run_id[:8]}",
                leave=False,
                file=sys.stderr,
                dynamic_ncols=True,
                position=len(self.bars) + 1,
            )
            self.bars[run_id] = bar
        if total is not None and bar.total != total:
            bar.total = total
        bar.n = done
        bar.refresh()

    def drain(self) -> None:
        if self.queue is None:
            return
        import queue as queue_module

        while True:
            try:
                run_id, done, total = self.queue.get_nowait()
            except (queue_module.Empty, OSError, EOFError):
                return
            if run_id in self.bars or done < (total or float("inf")):
                self.update(run_id, done, total)

    def finish(self, run_id: str) -> None:
        self.drain()
        bar = self.bars.pop(run_id, None)
        if bar is not None:
            bar.close()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()
        if self._manager is not None:
            self._manager.shutdown()
            self._manager = None


class _Throttled:
    """Forward at most a few progress updates a second (and always the last one)."""

    def __init__(self, send: Callable[[float, float | None], None], interval: float = 0.2):
        self.send, self.interval, self.last = send, interval, 0.0

    def __call__(self, done: float, total: float | None = None) -> None:
        now = time.monotonic()
        if now - self.last >= self.interval or (total is not None and done >= total):
            self.last = now
            self.send(done, total)


def _execute_local_progress(
    spec: RunSpec, sink: Callable[..., None], fn: Callable[..., RunOutcome]
) -> RunOutcome:
    return fn(spec, progress=_Throttled(functools.partial(sink, spec.run_id)))


def _execute_queued_progress(
    spec: RunSpec, queue: Any, fn: Callable[..., RunOutcome]
) -> RunOutcome:
    def send(done: float, total: float | None) -> None:
        try:
            queue.put_nowait((spec.run_id, done, total))
        except Exception:  # a full or closed queue must never fail the run
            pass

    return fn(spec, progress=_Throttled(send))
