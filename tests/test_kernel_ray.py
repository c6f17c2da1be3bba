"""The Ray executor gives the same results as the local one."""

from __future__ import annotations

import pandas as pd
import pytest

from sandbox.executors import LocalExecutor, make_executor
from sandbox.runner import plan, run_study
from sandbox.study import load

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install '.[ray]')")


def test_ray_matches_local_and_records_failures(tmp_path):
    study, path = load("sandbox.testing:FLAKY")
    specs = plan(study, path, seeds=[0, 1, 2, 3], sets={"fail_seeds": [2]})
    local = run_study(study, specs, tmp_path / "local", executor=LocalExecutor(1), quiet=True)
    remote = run_study(
        study, specs, tmp_path / "ray", executor=make_executor("ray", workers=2), quiet=True
    )
    assert not ray.is_initialized()  # the local instance we started was shut down
    assert sorted(local.ok) == sorted(remote.ok)
    assert set(remote.failed) == set(local.failed) and len(remote.failed) == 1
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "local" / "results.parquet"),
        pd.read_parquet(tmp_path / "ray" / "results.parquet"),
    )
