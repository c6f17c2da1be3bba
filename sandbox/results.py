"""The results folder: one Parquet part per run, the merged table, and the manifest.

Layout::

    DIR/parts/<run_id>.parquet   written atomically (temp file + rename) as each run ends
    DIR/results.parquet          every part of the study's runs, merged
    DIR/manifest.json            study, versions, git revision, and per run: config, seed,
                                 status, start/end, wall time, error

A part only ever appears complete, so a folder whose writer was killed can be resumed
by running the run ids that have no part.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

PARTS = "parts"
RESULTS = "results.parquet"
MANIFEST = "manifest.json"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file in the same folder, fsync, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_parquet(path: Path, df: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        df.to_parquet(tmp, index=False)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ResultsFolder:
    """Reads and writes one study's results folder."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def parts_dir(self) -> Path:
        return self.path / PARTS

    def part_path(self, run_id: str) -> Path:
        return self.parts_dir / f"{run_id}.parquet"

    def is_empty(self) -> bool:
        return not self.path.exists() or not any(self.path.iterdir())

    def completed_run_ids(self) -> set[str]:
        """Run ids with a complete part (temp files of a killed writer are ignored)."""
        if not self.parts_dir.exists():
            return set()
        return {p.stem for p in self.parts_dir.glob("*.parquet") if not p.name.startswith(".")}

    def remove_stale_temp_files(self) -> int:
        n = 0
        for p in self.path.rglob(".*.tmp") if self.path.exists() else []:
            p.unlink(missing_ok=True)
            n += 1
        return n

    def write_part(self, run_id: str, df: pd.DataFrame) -> Path:
        path = self.part_path(run_id)
        atomic_write_parquet(path, df)
        return path

    def read_parts(self, run_ids: Iterable[str] | None = None) -> pd.DataFrame:
        ids = sorted(
            self.completed_run_ids() if run_ids is None else set(run_ids) & self.completed_run_ids()
        )
        frames = [pd.read_parquet(self.part_path(rid)) for rid in ids]
        frames = [f for f in frames if not f.empty]
        if not frames:
            return pd.DataFrame(columns=["study", "run_id", "seed", "metric", "value"])
        return pd.concat(frames, ignore_index=True, sort=False)

    def write_results(self, df: pd.DataFrame) -> Path:
        path = self.path / RESULTS
        atomic_write_parquet(path, df)
        return path

    def read_results(self) -> pd.DataFrame:
        path = self.path / RESULTS
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist: is {self.path} a results folder?")
        return pd.read_parquet(path)

    def write_manifest(self, manifest: Mapping[str, Any]) -> Path:
        path = self.path / MANIFEST
        atomic_write_bytes(
            path, json.dumps(manifest, indent=2, sort_keys=False, default=str).encode()
        )
        return path

    def read_manifest(self) -> dict[str, Any]:
        path = self.path / MANIFEST
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist: is {self.path} a results folder?")
        return json.loads(path.read_text())
