"""The pluralistic-maxmin study: config validation, determinism, and the CLI end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sandbox.config import ConfigError, build
from sandbox.study import RunContext
from studies.pluralistic_maxmin import STUDY, PluralisticConfig, group_centres

TINY = {
    "n_users": 40,
    "pairs_per_user": 20,
    "n_prompts": 20,
    "n_candidates": 6,
    "n_unseen_users": 6,
    "few_shot": [1, 5],
    "test_pairs": 10,
    "pal_steps": 60,
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_config_rejects_a_minority_as_large_as_the_majority():
    with pytest.raises(ConfigError, match="must exceed each minority's share"):
        build(PluralisticConfig, {"minority_share": 0.35, "n_groups": 3})
    with pytest.raises(ConfigError, match="minority_share"):
        build(PluralisticConfig, {"minority_share": 0.6})
    with pytest.raises(ConfigError, match="method"):
        build(PluralisticConfig, {"method": "dpo"})


def test_group_centres_conflict_on_one_axis_and_share_the_last():
    c = group_centres(PluralisticConfig(n_groups=2, separation=1.5, shared=1.0))
    np.testing.assert_allclose(c, [[1.5, 0, 0, 1.0], [-1.5, 0, 0, 1.0]], atol=1e-12)
    c3 = group_centres(PluralisticConfig(n_groups=3, minority_share=0.2))
    np.testing.assert_allclose(np.linalg.norm(c3[:, :2], axis=1), 1.5)


@pytest.mark.parametrize("method", ["single", "em_maxmin", "pal"])
def test_run_is_deterministic_and_complete(method):
    cfg = PluralisticConfig(method=method, minority_share=0.2, **TINY)
    a = STUDY.run(cfg, 3, RunContext(device="cpu"))
    b = STUDY.run(cfg, 3, RunContext(device="cpu"))
    pd.testing.assert_frame_equal(a, b)
    metrics = set(a.metric)
    for name in ("win_rate_majority", "win_rate_minority", "rm_accuracy_minority"):
        assert name in metrics
    assert (method != "single") == ("cluster_purity" in metrics)
    unseen = a[a.metric == "unseen_user_accuracy"]
    assert sorted(unseen.shots) == [1, 5]
    assert a.value.between(-1e9, 1e9).all()
    wins = a[a.metric.str.startswith("win_rate")].value
    assert wins.between(0, 1).all()


def test_three_groups_report_the_worst_minority():
    cfg = PluralisticConfig(method="em_maxmin", n_groups=3, minority_share=0.2, **TINY)
    df = STUDY.run(cfg, 0, RunContext(device="cpu")).set_index("metric").value
    assert df["win_rate_minority"] == min(df["win_rate_minority1"], df["win_rate_minority2"])
    assert df["win_rate_worst"] <= df["win_rate_majority"]


def test_cli_end_to_end(sandbox_cli, tmp_path):
    out = tmp_path / "out"
    sets = [x for k, v in TINY.items() for x in ("--set", f"{k}={v}".replace(" ", ""))]
    res = sandbox_cli(
        "run", "pluralistic-maxmin", "--scale", "quick", "--seeds", "1",
        "--grid", "minority_share=0.1,0.3", *sets, "--workers", "1", "--out", str(out), "--quiet",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    df = pd.read_parquet(out / "results.parquet")
    assert set(df.method) == {"single", "em_maxmin", "pal"}
    assert df.run_id.nunique() == 3 * 2
    report = (out / "report.md").read_text()
    assert "## Win rate against the reference policy, by group" in report
    assert "serves the minority worse the smaller its share" in report
    assert report.count("**Supported**") + report.count("**Not supported**") >= 3
    assert (out / "figures" / "win_rate_by_group.png").exists()
    assert (out / "figures" / "unseen_user_accuracy.png").exists()
