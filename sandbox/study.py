"""The Study protocol and the registry that finds studies.

A study is one experiment: a validated ``Config``, scale presets, and a ``run(config,
seed, ctx)`` that returns a tidy DataFrame (``metric``, ``value``, optional ``step`` and
any descriptive columns). The runner does seeds, grids, executors and storage; the
report calls ``summarize`` and ``plot``. Studies are found through the entry-point group
``sandbox.studies`` (see pyproject.toml), or by an import path ``module:attribute``, so
the kernel never imports ``studies/`` itself.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from sandbox.config import ConfigError, StudyConfig, closest

ENTRY_POINT_GROUP = "sandbox.studies"
RESERVED_COLUMNS = ("study", "run_id", "seed")


@dataclass(frozen=True)
class Preset:
    """A named scale: fixed config values, grids swept by default, and a seed count."""

    set: Mapping[str, Any] = field(default_factory=dict)
    grid: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    seeds: int = 1
    description: str = ""


def _no_progress(done: float, total: float | None = None) -> None:
    return None


@dataclass
class RunContext:
    """What a run may use besides its config and seed.

    ``progress(done, total)`` reports progress inside a long run (a no-op unless the runner
    shows it); ``device`` is the torch device preference from the command line;
    ``cache_dir`` is a folder for caches that may outlive the run (e.g. LLM responses);
    ``shared_data`` points at the shared data folder when one was found.
    """

    device: str = "auto"
    cache_dir: Path | None = None
    shared_data: Path | None = None
    progress: Callable[[float, float | None], None] = _no_progress
    extras: dict[str, Any] = field(default_factory=dict)


class Study:
    """Base class of every study. Subclasses set the class attributes and ``run``.

    ``summarize`` and ``plot`` have generic defaults (a table of means with 95% intervals
    over seeds; one figure per metric); studies override them to show the paper's claim.
    """

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    summary: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    Config: ClassVar[type[StudyConfig]]
    presets: ClassVar[Mapping[str, Preset]] = {"quick": Preset(), "full": Preset()}

    def run(self, config: StudyConfig, seed: int, ctx: RunContext) -> pd.DataFrame:
        raise NotImplementedError(f"{type(self).__name__}.run")

    def summarize(self, results: pd.DataFrame, manifest: Mapping[str, Any]) -> str:
        from sandbox.report import default_summary

        return default_summary(results, manifest)

    def plot(self, results: pd.DataFrame, figure_dir: Path) -> list[Path]:
        from sandbox.report import default_plots

        return default_plots(results, figure_dir, self.name)

    def preset(self, scale: str) -> Preset:
        if scale not in self.presets:
            raise ConfigError(
                f"unknown scale {scale!r} for study {self.name!r}; valid: {', '.join(self.presets)}"
            )
        return self.presets[scale]


def _load_object(path: str) -> Any:
    module_name, _, attr = path.partition(":")
    module = importlib.import_module(module_name)
    obj = module
    for part in attr.split(".") if attr else []:
        obj = getattr(obj, part)
    return obj


def _as_study(obj: Any, origin: str) -> Study:
    if isinstance(obj, type) and issubclass(obj, Study):
        obj = obj()
    if not isinstance(obj, Study):
        raise TypeError(f"{origin} is not a sandbox Study (got {type(obj).__name__})")
    return obj


def registered() -> dict[str, str]:
    """Registered study names -> import paths ("module:attr"), from the entry points."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load(name_or_path: str) -> tuple[Study, str]:
    """Resolve a study name (or ``module:attr``) to (study, import path).

    The import path is what travels to worker processes and Ray, which re-import it.
    """
    table = registered()
    if name_or_path in table:
        path = table[name_or_path]
    elif ":" in name_or_path:
        path = name_or_path
    else:
        hint = closest(name_or_path, table)
        msg = f"unknown study {name_or_path!r}; registered: {', '.join(sorted(table)) or '(none)'}"
        if hint:
            msg += f" (did you mean {hint!r}?)"
        raise ConfigError(msg)
    try:
        obj = _load_object(path)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"study {name_or_path!r} ({path}) could not be loaded: {err}") from err
    return _as_study(obj, path), path


def load_path(path: str) -> Study:
    """Re-import a study from its import path (used inside workers)."""
    return _as_study(_load_object(path), path)
