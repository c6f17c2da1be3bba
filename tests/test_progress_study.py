"""The progress-coevolve study: config validation, one run in-process, and the CLI end to end."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from envs.coevolution import N_DIMS, VALUE_DIMENSIONS
from sandbox.config import ConfigError, build
from sandbox.study import RunContext, load
from studies.progress_coevolve import STUDY, ProgressCoevolveConfig

TINY = {"horizon": 3, "n_humans": 30, "elicitation_pairs": 40, "votes_per_pair": 3}


def test_registered_and_config_validation():
    study, path = load("progress-coevolve")
    assert study.name == "progress-coevolve" and path == "studies.progress_coevolve:STUDY"
    for key in (
        "algorithm",
        "influence",
        "horizon",
        "n_humans",
        "elicitation_pairs",
        "extrapolation_order",
        "lookahead",
    ):
        assert key in ProgressCoevolveConfig.model_fields
    with pytest.raises(ConfigError, match="algorithm"):
        build(ProgressCoevolveConfig, {"algorithm": "dpo"})
    with pytest.raises(ConfigError, match="influence"):
        build(ProgressCoevolveConfig, {"influence": 2})


def test_run_is_tidy_and_deterministic():
    cfg = ProgressCoevolveConfig(algorithm="extrapolative", influence=0.4, **TINY)
    a = STUDY.run(cfg, seed=3, ctx=RunContext())
    b = STUDY.run(cfg, seed=3, ctx=RunContext())
    pd.testing.assert_frame_equal(a, b)
    assert {"metric", "value", "step"} <= set(a.columns)
    assert not {"study", "run_id", "seed"} & set(a.columns)
    final = a[a["step"].isna()].set_index("metric")["value"]
    for m in ("follow", "predict", "coevolve", "progress_ratio", "lock_in", "value_diversity"):
        assert np.isfinite(final[m])
    assert final["lock_in"] == pytest.approx(1 - final["progress_ratio"])
    curve = a[a["metric"] == "human_progress"]
    assert list(curve["step"]) == list(range(4)) and curve["value"].iloc[0] == 0.0


def test_history_csv_is_used_and_validated(tmp_path):
    hist = np.cumsum(np.full((6, N_DIMS), 0.1), axis=0) + np.linspace(-1, 1, N_DIMS)
    good = tmp_path / "h.csv"
    good.write_text(
        ",".join(VALUE_DIMENSIONS) + "\n" + "\n".join(",".join(map(str, r)) for r in hist)
    )
    cfg = ProgressCoevolveConfig(algorithm="oracle", lookahead=0, history_csv=str(good), **TINY)
    out = STUDY.run(cfg, seed=0, ctx=RunContext())
    assert out.set_index("metric").loc["follow", "value"] == pytest.approx(1.0)
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(",".join(["0"] * 18) for _ in range(6)))
    with pytest.raises(ValueError, match="expected 19"):
        STUDY.run(cfg.model_copy(update={"history_csv": str(bad)}), seed=0, ctx=RunContext())
    with pytest.raises(ValueError, match="needs 11"):
        STUDY.run(cfg.model_copy(update={"horizon": 10}), seed=0, ctx=RunContext())


def _synthetic(progress: dict, predict: dict, seeds=(0, 1, 2, 3)) -> pd.DataFrame:
    rows = []
    rng = np.random.default_rng(0)
    for (alg, lam), ratio in progress.items():
        for s in seeds:
            jitter = 0.01 * rng.standard_normal()
            rows.append(
                {
                    "algorithm": alg,
                    "influence": lam,
                    "seed": s,
                    "metric": "progress_ratio",
                    "value": ratio + jitter,
                }
            )
            rows.append(
                {
                    "algorithm": alg,
                    "influence": lam,
                    "seed": s,
                    "metric": "predict",
                    "value": predict[alg] + jitter,
                }
            )
    return pd.DataFrame(rows)


def test_claim_verdicts_follow_the_numbers():
    lams = (0.1, 0.8)
    algs = ("static", "lifelong", "lifelong_restart", "extrapolative", "oracle")
    locked = {
        (a, lam): (0.3 if a in ("static", "lifelong") and lam == 0.8 else 1.0)
        for a in algs
        for lam in lams
    }
    free = {(a, lam): 1.0 for a in algs for lam in lams}
    good = {
        "static": 0.8,
        "lifelong": 0.9,
        "lifelong_restart": 0.9,
        "extrapolative": 0.97,
        "oracle": 1.0,
    }
    bad = {**good, "extrapolative": 0.85}
    text = "\n".join(STUDY._claim_lock_in(_synthetic(locked, good)))
    assert "**Supported**" in text and "- static: keeps 3" in text and "stalled" in text
    assert "**Not supported**" in "\n".join(STUDY._claim_lock_in(_synthetic(free, good)))
    assert "**Supported**" in "\n".join(STUDY._claim_predict(_synthetic(locked, good)))
    assert "**Not supported**" in "\n".join(STUDY._claim_predict(_synthetic(locked, bad)))


@pytest.mark.slow
def test_cli_end_to_end(sandbox_cli, tmp_path):
    out = tmp_path / "out"
    res = sandbox_cli(
        "run", "progress-coevolve", "--scale", "quick", "--seeds", "2",
        "--set", "horizon=5", "--set", "n_humans=40", "--set", "elicitation_pairs=60",
        "--grid", "algorithm=static,lifelong_restart,extrapolative",
        "--grid", "influence=0.6",
        "--out", str(out), "--quiet",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    df = pd.read_parquet(out / "results.parquet")
    assert set(df["algorithm"]) == {"static", "lifelong_restart", "extrapolative"}
    assert len(df["run_id"].unique()) == 6
    manifest = json.loads((out / "manifest.json").read_text())
    assert all(r["status"] == "ok" for r in manifest["runs"].values())
    report = (out / "report.md").read_text()
    assert "Claim 1 (lock-in)" in report and "Claim 2 (prediction)" in report
    verdicts = ("**Supported**", "**Partly supported**", "**Not supported**", "**Direction agrees")
    assert any(w in report for w in verdicts)
    assert list((out / "figures").glob("lock_in_curves_*.png"))
    assert (out / "figures" / "predict.png").exists()
