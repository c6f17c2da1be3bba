"""Statistics helpers of the report, against hand-computed values."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from sandbox.report import config_columns, markdown_table, mean_ci, t_interval, wilson


def test_t_interval_matches_hand_computation():
    # values 1, 2, 3: mean 2, sd 1, n 3, t_{0.975, 2} = 4.302652729911275
    mean, lo, hi = t_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 / math.sqrt(3)
    assert mean == pytest.approx(2.0)
    assert lo == pytest.approx(2.0 - half)
    assert hi == pytest.approx(2.0 + half)


def test_single_value_interval_collapses_and_empty_is_nan():
    assert t_interval([5.0]) == (5.0, 5.0, 5.0)
    assert all(math.isnan(v) for v in t_interval([]))


def test_wilson_known_values():
    # k = 5, n = 10: Wilson 95% interval (0.2366, 0.7634)
    lo, hi = wilson(5, 10)
    assert lo == pytest.approx(0.23659, abs=1e-4)
    assert hi == pytest.approx(0.76341, abs=1e-4)
    lo, hi = wilson(0, 20)
    assert lo == 0.0 and hi == pytest.approx(0.16113, abs=1e-4)
    assert all(math.isnan(v) for v in wilson(0, 0))


def test_mean_ci_groups():
    df = pd.DataFrame({"g": ["a", "a", "b"], "value": [1.0, 3.0, 7.0]})
    out = mean_ci(df, ["g"])
    assert list(out["g"]) == ["a", "b"]
    assert list(out["mean"]) == [2.0, 7.0]
    assert list(out["n"]) == [2, 1]


def test_config_columns_reads_manifest():
    results = pd.DataFrame({"run_id": ["r1", "r2"], "metric": ["m", "m"], "value": [1.0, 2.0]})
    manifest = {
        "runs": {"r1": {"config": {"k": 1, "l": [1, 2]}}, "r2": {"config": {"k": 2, "l": [3]}}}
    }
    out = config_columns(results, manifest, ["k", "l"])
    assert list(out["k"]) == [1, 2]
    assert list(out["l"]) == [(1, 2), (3,)]
    with pytest.raises(KeyError, match="'missing'.*available: k, l"):
        config_columns(results, manifest, ["missing"])


def test_markdown_table_formats_floats():
    text = markdown_table(pd.DataFrame({"a": [1.23456], "b": ["x"]}))
    assert text.splitlines() == ["| a | b |", "|---|---|", "| 1.235 | x |"]


def test_default_plots_handle_metrics_with_and_without_steps(tmp_path):
    from sandbox.report import default_plots

    df = pd.DataFrame(
        {
            "run_id": ["r"] * 4,
            "seed": [0] * 4,
            "metric": ["curve", "curve", "final", "curve"],
            "value": [1.0, 2.0, 3.0, 2.5],
            "step": pd.array([0, 1, None, None], dtype="Int64"),
            "method": ["a", "a", "a", "a"],
        }
    )
    paths = default_plots(df, tmp_path, "t")
    assert sorted(p.name for p in paths) == ["curve.png", "final.png"]
    assert all(p.stat().st_size > 0 for p in paths)
