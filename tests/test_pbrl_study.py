"""The parl-vs-pebble study: target analysis on a constructed table, and a tiny CLI run."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from sandbox.config import ConfigError, build
from studies.parl_vs_pebble import STUDY, TARGET_FRACTION, ParlConfig


def _curve(method: str, seed: int, returns: list[float], feedback: list[float]) -> list[dict]:
    rows = []
    for i, (r, f) in enumerate(zip(returns, feedback, strict=True)):
        step = 100 * (i + 1)
        common = {
            "run_id": f"{method}-{seed}",
            "seed": seed,
            "step": step,
            "task": "t",
            "method": method,
            "teacher": "oracle",
            "feedback_budget": 50,
        }
        rows.append({**common, "metric": "true_return", "value": r})
        rows.append({**common, "metric": "feedback_used", "value": f})
    return rows


def test_steps_to_target_and_claim_by_hand() -> None:
    rows = (
        _curve("sac_true_reward", 0, [50, 90, 100], [0, 0, 0])
        + _curve("sac_true_reward", 1, [40, 80, 100], [0, 0, 0])  # final mean 100 -> target 80
        + _curve("pebble", 0, [10, 20, 85], [10, 20, 30])
        + _curve("pebble", 1, [10, 79, 81], [10, 20, 30])
        + _curve("parl", 0, [10, 81, 90], [10, 20, 30])
        + _curve("parl", 1, [80, 10, 10], [10, 20, 30])
    )
    hits = STUDY.steps_to_target(pd.DataFrame(rows))
    assert TARGET_FRACTION == 0.8
    assert (hits["target"] == 80.0).all()
    by = hits.set_index(["method", "seed"])
    assert by.loc[("pebble", 0), "steps_to_target"] == 300
    assert by.loc[("pebble", 1), "steps_to_target"] == 300
    assert by.loc[("parl", 0), "steps_to_target"] == 200
    assert by.loc[("parl", 1), "steps_to_target"] == 100  # reaching it once counts
    assert by.loc[("parl", 0), "feedback_to_target"] == 20
    assert by.loc[("sac_true_reward", 1), "steps_to_target"] == 200
    claim = "\n".join(STUDY._claim(hits))
    # PARL 150 steps vs PEBBLE 300: 50% fewer -> supports
    assert "PARL needed 150 steps vs PEBBLE's 300" in claim and "+50% fewer" in claim
    assert "supports" in claim and "does not support" not in claim

    slow = [r for r in rows if r["method"] != "parl"] + _curve("parl", 0, [1, 2, 3], [10, 20, 30])
    claim = "\n".join(STUDY._claim(STUDY.steps_to_target(pd.DataFrame(slow))))
    assert "PEBBLE reached the target, PARL did not: does not support" in claim

    easy = [r for r in rows if r["method"] not in ("parl", "pebble")]
    easy += _curve("pebble", 0, [90, 90, 90], [10, 20, 30]) + _curve(
        "parl", 0, [95, 90, 90], [10, 20, 30]
    )
    claim = "\n".join(STUDY._claim(STUDY.steps_to_target(pd.DataFrame(easy))))
    assert "first evaluation" in claim and "inconclusive" in claim
    assert math.isnan(
        STUDY.steps_to_target(pd.DataFrame(slow))
        .query("method == 'parl'")["steps_to_target"]
        .iloc[0]
    )


def test_config_is_validated() -> None:
    with pytest.raises(ConfigError, match="teacher"):
        build(ParlConfig, {"teacher": "sloppy"})
    with pytest.raises(ConfigError, match="task"):
        build(ParlConfig, {"task": "walker-fly"})
    assert build(ParlConfig, {"hypergradient": "none"}).hypergradient == "none"


TINY = [
    "total_steps=120",
    "unsup_steps=40",
    "learning_starts=20",
    "session_interval=20",
    "queries_per_session=5",
    "feedback_budget=15",
    "segment_length=10",
    "eval_interval=60",
    "eval_episodes=1",
    "episode_steps=30",
    "action_repeat=2",
    "net_width=16",
    "reward_width=16",
    "batch_size=16",
    "reward_epochs=3",
]


@pytest.mark.slow
def test_quick_study_runs_end_to_end_through_the_cli(sandbox_cli, tmp_path) -> None:
    out = tmp_path / "out"
    sets = [a for kv in TINY for a in ("--set", kv)]
    res = sandbox_cli(
        "run",
        "parl-vs-pebble",
        "--scale",
        "quick",
        "--seeds",
        "1",
        *sets,
        "--out",
        str(out),
        "--quiet",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    df = pd.read_parquet(out / "results.parquet")
    assert set(df["method"]) == {"sac_true_reward", "pebble", "parl"}
    assert {"true_return", "feedback_used", "reward_model_accuracy", "sac_alpha"} <= set(
        df["metric"]
    )
    assert (df[df["metric"] == "sac_alpha"]["value"] > 0).all()
    assert sorted(df["step"].unique().tolist()) == [60, 120]
    fb = df[(df["metric"] == "feedback_used") & (df["step"] == 120)].set_index("method")["value"]
    assert fb["pebble"] == 15 and fb["parl"] == 15 and fb["sac_true_reward"] == 0
    acc = df[df["metric"] == "reward_model_accuracy"]
    assert set(acc["method"]) == {"pebble", "parl"} and acc["value"].between(0, 1).all()
    report = (out / "report.md").read_text()
    assert "## The paper's claim" in report and "Steps and feedback to reach the target" in report
    assert (out / "figures" / "true_return.png").exists()
