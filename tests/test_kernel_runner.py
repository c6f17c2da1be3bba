"""The runner through the CLI: run ids, exit codes, failures, resume after SIGKILL, determinism."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from sandbox.executors import LocalExecutor
from sandbox.runner import plan, run_id_for, run_study
from sandbox.study import load
from sandbox.testing import EMPTY

REPO = Path(__file__).resolve().parents[1]


def test_run_id_is_stable_and_sensitive_to_every_part():
    base = run_id_for("s", "1", {"a": 1, "b": [1, 2]}, 0)
    assert base == run_id_for("s", "1", {"b": [1, 2], "a": 1}, 0)  # key order is irrelevant
    assert len(base) == 16
    others = {
        run_id_for("t", "1", {"a": 1, "b": [1, 2]}, 0),
        run_id_for("s", "2", {"a": 1, "b": [1, 2]}, 0),
        run_id_for("s", "1", {"a": 2, "b": [1, 2]}, 0),
        run_id_for("s", "1", {"a": 1, "b": [1, 2]}, 1),
    }
    assert base not in others and len(others) == 4


def test_plan_expands_grid_by_seeds_and_marks_varied_keys():
    study, path = load("sandbox.testing:EMPTY")
    specs = plan(
        study, path, seeds=[0, 5], grids={"label": ["x", "y", "z"]}, sets={"scale_factor": "2"}
    )
    assert len(specs) == 6
    assert {s.seed for s in specs} == {0, 5}
    assert all(s.varied == {"label": s.config["label"]} for s in specs)
    assert all(s.config["scale_factor"] == 2.0 for s in specs)
    assert len({s.run_id for s in specs}) == 6


def test_run_writes_parts_results_manifest_and_report(sandbox_cli, tmp_path):
    out = tmp_path / "out"
    res = sandbox_cli(
        "run",
        "sandbox.testing:EMPTY",
        "--seeds",
        "3",
        "--grid",
        "label=a,b",
        "--out",
        out,
        "--quiet",
        "--workers",
        "1",
    )
    assert res.returncode == 0, res.stderr
    df = pd.read_parquet(out / "results.parquet")
    assert list(df.columns) == ["study", "run_id", "seed", "metric", "value", "label"]
    assert len(df) == 6 and set(df["label"]) == {"a", "b"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["study"] == "empty" and manifest["seeds"] == [0, 1, 2]
    assert manifest["varied_keys"] == ["label"]
    assert all(r["status"] == "ok" and r["wall_s"] >= 0 for r in manifest["runs"].values())
    assert "numpy" in manifest["versions"]
    assert len(list((out / "parts").glob("*.parquet"))) == 6
    assert "wall" not in " ".join(df.columns)  # timings stay out of results
    assert (out / "report.md").read_text().startswith("# empty")
    assert list((out / "figures").glob("*.png"))


def test_nonempty_folder_is_refused_without_resume(sandbox_cli, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    res = sandbox_cli("run", "sandbox.testing:EMPTY", "--out", out, "--quiet", "--workers", "1")
    assert res.returncode == 2
    assert "not empty" in res.stderr and "--resume" in res.stderr
    assert (out / "keep.txt").read_text() == "precious"


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "nonexistent-study"], "unknown study 'nonexistent-study'"),
        (["run", "sandbox.testing:EMPTY", "--set", "scale_factr=2"], "did you mean 'scale_factor'"),
        (["run", "sandbox.testing:EMPTY", "--set", "scale_factor=big"], "scale_factor='big'"),
        (["run", "sandbox.testing:EMPTY", "--scale", "huge"], "unknown scale 'huge'"),
        (["run", "sandbox.testing:EMPTY", "--seeds", "0"], "--seeds must be >= 1"),
        (["run", "sandbox.testing:EMPTY", "--seed-list", "1,x"], "--seed-list expects"),
        (["run", "sandbox.testing:EMPTY", "--device", "tpu"], "'tpu' is not one of"),
        (["report", "/nonexistent/folder"], "does not exist"),
    ],
)
def test_usage_errors_exit_2_with_a_clear_message(sandbox_cli, tmp_path, args, message):
    res = sandbox_cli(*args, "--out", tmp_path / "o") if args[0] == "run" else sandbox_cli(*args)
    assert res.returncode == 2, res.stdout + res.stderr
    assert message in res.stderr
    assert not (tmp_path / "o").exists()  # nothing ran


def test_failed_runs_exit_1_and_the_rest_are_saved(sandbox_cli, tmp_path):
    out = tmp_path / "out"
    res = sandbox_cli(
        "run",
        "sandbox.testing:FLAKY",
        "--seeds",
        "3",
        "--set",
        "fail_seeds=[1]",
        "--out",
        out,
        "--quiet",
        "--workers",
        "2",
    )
    assert res.returncode == 1
    assert "planned failure on seed 1" in res.stderr
    df = pd.read_parquet(out / "results.parquet")
    assert sorted(df["seed"].unique()) == [0, 2]
    manifest = json.loads((out / "manifest.json").read_text())
    statuses = {r["seed"]: r["status"] for r in manifest["runs"].values()}
    assert statuses == {0: "ok", 1: "failed", 2: "ok"}
    failed = next(r for r in manifest["runs"].values() if r["status"] == "failed")
    assert "RuntimeError: planned failure on seed 1" in failed["error"]
    assert "Failed runs" in (out / "report.md").read_text()


def test_resume_after_sigkill_runs_only_missing_ids(tmp_path, cli_env):
    out, log = tmp_path / "out", tmp_path / "log"
    log.mkdir()
    cmd = [
        sys.executable,
        "-m",
        "sandbox.cli",
        "run",
        "sandbox.testing:FLAKY",
        "--seeds",
        "6",
        "--workers",
        "1",
        "--set",
        "sleep_s=0.6",
        "--set",
        f"log_dir={log}",
        "--out",
        str(out),
        "--quiet",
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, env=cli_env, start_new_session=True)
    deadline = time.time() + 60
    while (
        time.time() < deadline
        and len(list((out / "parts").glob("*.parquet")) if (out / "parts").exists() else []) < 2
    ):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = {p.stem for p in (out / "parts").glob("*.parquet")}
    assert 2 <= len(first) < 6
    ran_before = sum(len(p.read_text().split()) for p in log.glob("*.log"))
    for p in log.glob("*.log"):
        p.unlink()
    res = subprocess.run(
        cmd + ["--resume"], cwd=REPO, env=cli_env, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    rerun = sorted(int(s) for p in log.glob("*.log") for s in p.read_text().split())
    assert len(rerun) == 6 - len(first)  # only the missing run ids ran again
    assert ran_before >= len(first)
    df = pd.read_parquet(out / "results.parquet")
    assert sorted(df["seed"].unique()) == list(range(6))
    assert f"({len(first)} resumed)" in res.stdout
    assert not list(out.rglob(".*.tmp"))


def test_resume_refuses_another_studys_folder(sandbox_cli, tmp_path):
    out = tmp_path / "out"
    assert (
        sandbox_cli(
            "run", "sandbox.testing:EMPTY", "--out", out, "--quiet", "--workers", "1"
        ).returncode
        == 0
    )
    res = sandbox_cli(
        "run", "sandbox.testing:FLAKY", "--out", out, "--resume", "--quiet", "--workers", "1"
    )
    assert res.returncode == 2 and "holds results of study 'empty'" in res.stderr


def test_results_identical_across_worker_counts(tmp_path):
    study, path = load("sandbox.testing:SPIN")
    specs = plan(study, path, seeds=[0, 1, 2], sets={"iterations": 20000})
    frames = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        run_study(study, specs, out, executor=LocalExecutor(workers), quiet=True)
        frames.append(pd.read_parquet(out / "results.parquet"))
    pd.testing.assert_frame_equal(frames[0], frames[1])


def test_report_command_rebuilds_report(sandbox_cli, tmp_path):
    out = tmp_path / "out"
    run_study(EMPTY, plan(EMPTY, "sandbox.testing:EMPTY", seeds=[0]), out, quiet=True)
    (out / "report.md").unlink()
    res = sandbox_cli("report", out)
    assert res.returncode == 0, res.stderr
    assert (out / "report.md").exists()
