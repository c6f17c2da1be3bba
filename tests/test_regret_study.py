"""The regret-vs-partial-return study: config, determinism, report logic, and the CLI end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from sandbox.config import ConfigError, build, expand
from sandbox.study import RunContext, load
from studies.regret_vs_partial_return import STUDY, RegretConfig, compare, summarize


def test_registered_and_presets_validate() -> None:
    study, _ = load("regret-vs-partial-return")
    assert study is STUDY or study.name == STUDY.name
    for scale in ("quick", "full"):
        preset = STUDY.preset(scale)
        configs = expand(RegretConfig, preset.set, preset.grid)
        assert {c.generator for c in configs} == {"partial_return", "regret"}
        assert {c.learner for c in configs} == {"partial_return", "regret"}
    quick = STUDY.preset("quick")
    assert quick.grid["n_prefs"] == [30, 100, 300, 1000, 3000]
    assert quick.grid["temperature"] == [0.0, 1.0]


def test_bad_config_values_raise_clear_errors() -> None:
    with pytest.raises(ConfigError, match="n_prefs"):
        build(RegretConfig, {"n_prefs": -5})
    with pytest.raises(ConfigError, match="generator.*'partial_return', 'regret'"):
        build(RegretConfig, {"generator": "boltzmann"})
    with pytest.raises(ConfigError, match="unknown config key 'n_pref'"):
        build(RegretConfig, {"n_pref": 10})
    with pytest.raises(ConfigError, match="temperature"):
        build(RegretConfig, {"temperature": -1})


def test_run_is_deterministic_under_a_seed_and_tidy() -> None:
    cfg = RegretConfig(
        generator="regret", learner="regret", n_prefs=40, n_mdps=2, n_heldout=40, temperature=1.0
    )
    a = STUDY.run(cfg, 3, RunContext(device="cpu"))
    b = STUDY.run(cfg, 3, RunContext(device="cpu"))
    pd.testing.assert_frame_equal(a, b)
    metrics = set(a["metric"])
    assert {
        "near_optimal_frac",
        "scaled_return",
        "heldout_accuracy",
        "heldout_log_likelihood",
    } <= metrics
    frac = a.set_index("metric").loc["near_optimal_frac", "value"]
    assert frac in (0.0, 0.5, 1.0)
    assert not {"study", "run_id", "seed"} & set(a.columns)


def _fake(rr: float, pp: float, rp: float) -> pd.DataFrame:
    """near_optimal_frac rows for three (generator, learner) curves, 3 seeds x 2 n_prefs."""
    rows = []
    for seed in range(3):
        for n in (30, 300):
            for (gen, learn), v in {
                ("regret", "regret"): rr,
                ("partial_return", "partial_return"): pp,
                ("regret", "partial_return"): rp,
            }.items():
                rows.append(
                    {
                        "run_id": f"{gen}{learn}{n}{seed}",
                        "seed": seed,
                        "metric": "near_optimal_frac",
                        "value": v + 0.01 * seed,
                        "generator": gen,
                        "learner": learn,
                        "n_prefs": n,
                        "temperature": 0.0,
                    }
                )
    return pd.DataFrame(rows)


def test_claim_verdict_is_computed_from_the_numbers() -> None:
    from sandbox.report import mean_ci

    df = _fake(rr=0.9, pp=0.4, rp=0.5)
    table = mean_ci(df, ["generator", "learner", "n_prefs", "temperature"])
    c = compare(table, ("regret", "regret"), ("partial_return", "partial_return"))
    assert c is not None and c["a_better"] == 2 and c["b_better"] == 0 and c["a_separated"] == 2
    assert c["a_mean"] == pytest.approx(0.91)
    assert summarize(df, None).count("**supported**") == 2
    # the same report code on numbers that contradict the paper says so
    assert summarize(_fake(rr=0.1, pp=0.4, rp=0.5), None).count("**not supported**") == 2


def test_cli_end_to_end_tiny(sandbox_cli, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = sandbox_cli(
        "run",
        "regret-vs-partial-return",
        "--scale",
        "quick",
        "--seeds",
        "1",
        "--set",
        "n_mdps=2",
        "--set",
        "n_heldout=30",
        "--grid",
        "n_prefs=30,100",
        "--grid",
        "temperature=0",
        "--workers",
        "1",
        "--out",
        str(out),
        "--quiet",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    results = pd.read_parquet(out / "results.parquet")
    assert len(results["run_id"].unique()) == 2 * 2 * 2  # generator x learner x n_prefs
    near = results[results["metric"] == "near_optimal_frac"]
    assert near["value"].between(0, 1).all()
    assert {"generator", "learner", "n_prefs"} <= set(results.columns)
    manifest = json.loads((out / "manifest.json").read_text())
    assert all(r["status"] == "ok" for r in manifest["runs"].values())
    report = (out / "report.md").read_text()
    assert "Near-optimal fraction vs number of preferences" in report
    assert "regret -> regret" in report and "partial_return -> partial_return" in report
    assert "supported" in report
    assert "identical noiseless partial-return preferences" in report
    assert (out / "figures" / "near_optimal_vs_n_prefs.png").exists()
