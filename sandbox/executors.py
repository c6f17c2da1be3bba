"""Where runs execute: a local process pool (default) or Ray, behind one interface.

An executor maps a picklable top-level function over run specs and yields results as
they complete. The function itself never raises for a failing study (it returns a failed
outcome); an executor turns the loss of a worker (killed, out of memory) into a failed
outcome too, so the other runs still finish and are saved.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")

EXECUTORS = ("local", "ray")

# Workers run one run at a time on one thread each: results must not depend on how many
# workers share the machine, and BLAS threads would oversubscribe the cores.
_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}


class Executor(Protocol):
    name: str

    def map(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        on_lost: Callable[[T, str], R],
        tick: Callable[[], None] | None = None,
    ) -> Iterator[tuple[T, R]]:
        """Yield (item, fn(item)) as each completes; ``on_lost(item, error)`` for a lost worker.

        ``tick`` is called a few times a second while waiting (e.g. to draw progress)."""
        ...

    def close(self) -> None: ...


def _worker_init() -> None:
    os.environ.update(_THREAD_ENV)


class LocalExecutor:
    """A spawn-context process pool; with one worker, runs in this process (no pickling)."""

    name = "local"

    def __init__(self, workers: int | None = None):
        self.workers = max(1, workers or os.cpu_count() or 1)

    def map(self, fn, items, on_lost, tick=None):
        if self.workers == 1 or len(items) <= 1:
            for item in items:
                yield item, fn(item)
            return
        ctx = mp.get_context("spawn")
        saved = {k: os.environ.get(k) for k in _THREAD_ENV}
        os.environ.update(_THREAD_ENV)  # spawned children inherit these before numpy loads
        try:
            with ProcessPoolExecutor(
                max_workers=min(self.workers, len(items)), mp_context=ctx, initializer=_worker_init
            ) as pool:
                pending: dict[Future, Any] = {pool.submit(fn, item): item for item in items}
                while pending:
                    done, _ = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                    if tick is not None:
                        tick()
                    for fut in done:
                        item = pending.pop(fut)
                        try:
                            yield item, fut.result()
                        except Exception as err:  # the worker process died (BrokenProcessPool, ...)
                            yield item, on_lost(item, f"{type(err).__name__}: {err}")
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def close(self) -> None:
        return None


class RayExecutor:
    """Runs on Ray: joins ``address`` when given, else starts a local instance and stops it after."""

    name = "ray"

    def __init__(self, workers: int | None = None, address: str | None = None):
        try:
            import ray
        except ImportError as err:
            raise RuntimeError(
                "the ray executor needs Ray: pip install 'alignment-sandbox[ray]'"
            ) from err
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            env = {"env_vars": dict(_THREAD_ENV)}
            if address:
                ray.init(address=address, runtime_env=env, log_to_driver=False)
            else:
                ray.init(
                    num_cpus=max(1, workers or os.cpu_count() or 1),
                    include_dashboard=False,
                    runtime_env=env,
                    log_to_driver=False,
                    configure_logging=False,
                )
            self._started = True

    def map(self, fn, items, on_lost, tick=None):
        ray = self._ray
        remote_fn = ray.remote(num_cpus=1, max_retries=0)(fn)
        pending = {remote_fn.remote(item): item for item in items}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.25)
            if tick is not None:
                tick()
            for ref in ready:
                item = pending.pop(ref)
                try:
                    yield item, ray.get(ref)
                except Exception as err:  # worker died or task could not run
                    yield (
                        item,
                        on_lost(
                            item,
                            f"{type(err).__name__}: {traceback.format_exception_only(err)[-1].strip()}",
                        ),
                    )

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()
            self._started = False


def make_executor(name: str, workers: int | None = None, address: str | None = None) -> Executor:
    if name == "local":
        if address:
            raise ValueError("--address is only for --executor ray")
        return LocalExecutor(workers)
    if name == "ray":
        return RayExecutor(workers, address)
    raise ValueError(f"unknown executor {name!r}; valid: {', '.join(EXECUTORS)}")
