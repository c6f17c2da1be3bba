"""Tiny studies for testing and benchmarking the kernel itself (not registered).

Run them by import path, e.g. ``sandbox run sandbox.testing:EMPTY``. They exercise the
runner without any environment: ``EMPTY`` returns one row at once (runner overhead),
``SPIN`` burns a fixed amount of CPU (executor speed-up), and ``FLAKY`` fails or sleeps
on chosen seeds (failure handling, resume after a killed process).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import Field

from sandbox.config import StudyConfig
from sandbox.study import Preset, RunContext, Study


class EmptyConfig(StudyConfig):
    scale_factor: float = Field(1.0, description="multiplies the single reported value")
    label: str = Field("a", description="a free-form string key (for grid tests)")


class EmptyStudy(Study):
    name = "empty"
    summary = "returns one row; measures runner overhead"
    Config = EmptyConfig
    presets = {"quick": Preset(seeds=2), "full": Preset(seeds=4)}

    def run(self, config: EmptyConfig, seed: int, ctx: RunContext) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        return pd.DataFrame({"metric": ["draw"], "value": [config.scale_factor * rng.random()]})


class SpinConfig(StudyConfig):
    iterations: int = Field(2_000_000, gt=0, description="pure-Python loop iterations per run")
    steps: int = Field(4, gt=0, description="rows reported over `step`")


class SpinStudy(Study):
    name = "spin"
    summary = "CPU-bound pure-Python work; measures executor speed-up"
    Config = SpinConfig
    presets = {"quick": Preset(set={"iterations": 200_000}, seeds=4), "full": Preset(seeds=8)}

    def run(self, config: SpinConfig, seed: int, ctx: RunContext) -> pd.DataFrame:
        rows = []
        acc = seed
        per_step = config.iterations // config.steps
        for step in range(config.steps):
            for i in range(per_step):
                acc = (acc * 1103515245 + 12345 + i) % 2147483648
            rows.append({"step": step, "metric": "acc", "value": float(acc % 1000)})
            ctx.progress(step + 1, config.steps)
        return pd.DataFrame(rows)


class FlakyConfig(StudyConfig):
    fail_seeds: list[int] = Field(default_factory=list, description="seeds whose run raises")
    sleep_s: float = Field(0.0, ge=0, description="seconds each run sleeps before returning")
    log_dir: str | None = Field(
        None, description="if set, each run appends its seed to log_dir/<pid>.log"
    )


class FlakyStudy(Study):
    name = "flaky"
    summary = "fails on chosen seeds, optionally slow; for failure and resume tests"
    Config = FlakyConfig
    presets = {"quick": Preset(seeds=3), "full": Preset(seeds=3)}

    def run(self, config: FlakyConfig, seed: int, ctx: RunContext) -> pd.DataFrame:
        if config.log_dir:
            with open(Path(config.log_dir) / f"{os.getpid()}.log", "a") as fh:
                fh.write(f"{seed}\n")
        time.sleep(config.sleep_s)
        if seed in config.fail_seeds:
            raise RuntimeError(f"planned failure on seed {seed}")
        return pd.DataFrame({"metric": ["seed_squared", "seed_half"], "value": [seed**2, seed / 2]})


EMPTY = EmptyStudy()
SPIN = SpinStudy()
FLAKY = FlakyStudy()
