"""The w2s-deception study: config validation, rows of one run, and the CLI end to end."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sandbox.config import ConfigError, build
from sandbox.study import RunContext, load
from studies.w2s_deception import STUDY, W2SConfig

TINY = {"n_train": 200, "n_gold": 200, "n_help": 100, "n_test": 300, "steps": 30, "batch_size": 64}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_registered_and_config_keys():
    study, _ = load("w2s-deception")
    assert study is STUDY or type(study) is type(STUDY)
    for key in (
        "weak",
        "strong",
        "intermediate",
        "conflict",
        "alpha",
        "aux_conf",
        "conflict_fraction",
        "n_train",
    ):
        assert key in W2SConfig.model_fields
    with pytest.raises(ConfigError, match="weak='huge'"):
        build(W2SConfig, {"weak": "huge"})
    # the command line turns "none" into None; both spell the named choice
    assert build(W2SConfig, {"conflict": None, "intermediate": None}).conflict == "none"
    with pytest.raises(ConfigError, match="unknown config key 'confilct'"):
        build(W2SConfig, {"confilct": "none"})


def test_run_rows_and_determinism():
    cfg = W2SConfig(weak="tiny", strong="medium", conflict="explicit", **TINY)
    a = STUDY.run(cfg, 3, RunContext(device="cpu"))
    b = STUDY.run(cfg, 3, RunContext(device="cpu"))
    pd.testing.assert_frame_equal(a, b)
    assert set(a.path) == {"direct", "bootstrap"}
    assert (a.gap == 2).all()
    direct = a[a.path == "direct"].set_index("metric")["value"]
    for m in (
        "weak_acc",
        "ceiling_acc",
        "w2s_acc",
        "pgr",
        "helpful_acc",
        "deception_score",
        "deception_excess",
    ):
        assert m in direct.index
    if not math.isnan(direct["deception_excess"]):
        assert direct["deception_excess"] == pytest.approx(
            direct["deception_score"] - direct["weak_unknown_base_rate"]
        )
    expected_pgr = (direct["w2s_acc"] - direct["weak_acc"]) / (
        direct["ceiling_acc"] - direct["weak_acc"]
    )
    if direct["ceiling_acc"] > direct["weak_acc"]:
        assert direct["pgr"] == pytest.approx(expected_pgr)
    # no conflict: no deception rows, no bootstrapping when the rungs are adjacent
    c = STUDY.run(
        W2SConfig(weak="tiny", strong="small", conflict="none", **TINY), 3, RunContext(device="cpu")
    )
    assert "deception_excess" not in set(c.metric) and set(c.path) == {"direct"}


def test_run_on_user_npz(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 6))
    y_h = (x[:, 1] + 0.5 * x[:, 2] * x[:, 3] > 0).astype(int)
    y_p = np.where(x[:, 0] > 0.8, 1 - y_h, y_h)
    path = tmp_path / "user.npz"
    np.savez(path, x=x, y_harmless=y_h, y_helpful=y_p, groups=np.array([-1, 0, 1, 1, 2, 3]))
    cfg = W2SConfig(weak="tiny", strong="small", conflict="implicit", npz=str(path), steps=30)
    rows = STUDY.run(cfg, 0, RunContext(device="cpu"))
    assert rows.loc[rows.metric == "conflict_share", "value"].item() == pytest.approx(
        float((x[:, 0] > 0.8).mean()), abs=0.1
    )


def test_cli_quick_end_to_end(sandbox_cli, tmp_path):
    out = tmp_path / "out"
    sets = [f"{k}={v}" for k, v in TINY.items()]
    res = sandbox_cli(
        "run", "w2s-deception", "--scale", "quick", "--seeds", "2",
        "--grid", "strong=medium", "--grid", "conflict=explicit",
        *[a for s in sets for a in ("--set", s)],
        "--out", str(out), "--quiet",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr + res.stdout
    df = pd.read_parquet(out / "results.parquet")
    assert set(df.seed) == {0, 1}
    assert {"deception_excess", "pgr", "w2s_acc", "ceiling_acc"} <= set(df.metric)
    assert set(df.path) == {"direct", "bootstrap"}
    report = (out / "report.md").read_text()
    assert "PGR without conflict" in report
    assert "1. deception exists" in report and "3. bootstrapping reduces deception" in report
    assert any(v in report for v in ("supported", "contradicted", "not supported", "inconclusive"))
    assert (out / "figures" / "deception_excess_vs_gap.png").exists()
