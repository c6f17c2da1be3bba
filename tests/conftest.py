"""Shared fixtures: the CLI as a subprocess, and the shared data folder."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared_data_dir() -> Path | None:
    env = os.environ.get("SANDBOX_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "data")
    for c in candidates:
        if c.is_dir():
            return c
    return None


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test, as in the runner's workers: small models run fastest
    that way on a shared 2-core machine, and results do not depend on the thread count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def shared_data() -> Path:
    """The shared data folder (``../shared/data`` beside the checkout); skips when absent."""
    path = _shared_data_dir()
    if path is None:
        pytest.skip(
            "shared data folder ../shared/data is absent (set SANDBOX_SHARED_DATA to point at it)"
        )
    return path


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("MUJOCO_GL", "egl")
    env["SANDBOX_CACHE_DIR"] = str(tmp_path / "cache")
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def sandbox_cli(cli_env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess]:
    """Run ``python -m sandbox.cli ARGS`` in a subprocess (text mode), from the repo root."""

    def run(
        *args: str, timeout: float = 600, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "sandbox.cli", *map(str, args)],
            cwd=REPO,
            env={**cli_env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run
