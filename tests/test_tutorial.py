"""Follow docs/tutorial.md: its code is the files in docs/tutorial/, and they work.

The tutorial's study is run through the CLI by import path (PYTHONPATH=docs/tutorial)
and by its registered name (the entry point declared in the tutorial's pyproject.toml,
made visible through a minimal .dist-info folder instead of installing anything), and
the tutorial's own tests are run with pytest.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
TUTORIAL = REPO / "docs" / "tutorial.md"
FILES = REPO / "docs" / "tutorial"
BLOCK = re.compile(r"<!-- file: (?P<path>[^ ]+) -->\n```[a-z]*\n(?P<body>.*?)\n```", re.DOTALL)


def _text() -> str:
    return TUTORIAL.read_text()


def _bash_commands() -> list[str]:
    """The `sandbox ...` command lines of the tutorial's bash blocks."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)\n```", _text(), re.DOTALL):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("sandbox "):
                commands.append(line)
    return commands


def _env_with(*paths: Path) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join(str(p) for p in paths), "MPLBACKEND": "Agg"}


def test_code_blocks_are_the_tutorial_files_verbatim():
    blocks = {m["path"]: m["body"] for m in BLOCK.finditer(_text())}
    on_disk = {str(p.relative_to(REPO)) for p in FILES.iterdir() if p.suffix in (".py", ".toml")}
    assert set(blocks) == on_disk, "every tutorial file is shown once, and nothing else"
    for path, body in blocks.items():
        assert body == (REPO / path).read_text().rstrip("\n"), f"{path} differs from the tutorial"


def test_documented_commands_are_the_ones_tested():
    commands = _bash_commands()
    assert "sandbox run bandit_study:STUDY --scale quick --out runs/proxy-bandit" in commands
    assert "sandbox run proxy-bandit --scale quick --out runs/proxy-bandit-by-name" in commands
    assert "sandbox run bandit_study:STUDY --set epsilon=2" in commands


def test_study_runs_through_the_cli_by_import_path(sandbox_cli, tmp_path):
    env = _env_with(FILES)
    command = "sandbox run bandit_study:STUDY --scale quick --out runs/proxy-bandit"
    args = shlex.split(command)[1:]
    args[args.index("runs/proxy-bandit")] = str(tmp_path / "out")
    res = sandbox_cli(*args, "--quiet", env=env)
    assert res.returncode == 0, res.stderr
    out = tmp_path / "out"
    results = pd.read_parquet(out / "results.parquet")
    assert {"study", "run_id", "seed", "metric", "value", "proxy_bias"} <= set(results.columns)
    assert results["run_id"].nunique() == 6 and sorted(results["seed"].unique()) == [0, 1, 2]
    assert set(results["metric"]) == {"true_return", "proxy_return", "flattering_share"}
    means = results.groupby(["proxy_bias", "metric"])["value"].mean()
    assert means[(1.0, "true_return")] < means[(0.0, "true_return")] - 0.2
    assert means[(1.0, "proxy_return")] > means[(0.0, "proxy_return")]
    # without a bias the proxy is the true reward, pull by pull
    unbiased = results[results["proxy_bias"] == 0.0].pivot(
        index="run_id", columns="metric", values="value"
    )
    assert (unbiased["true_return"] == unbiased["proxy_return"]).all()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["study"] == "proxy-bandit"
    assert manifest["study_path"] == "bandit_study:STUDY"
    report = (out / "report.md").read_text()
    assert "**Supported**: the true return falls from bias 0 to 1." in report
    assert (out / "figures" / "returns_vs_bias.png").stat().st_size > 1000

    bad = sandbox_cli(*shlex.split("run bandit_study:STUDY --set epsilon=2"), env=env)
    assert bad.returncode == 2 and "epsilon" in bad.stderr


def test_entry_point_in_the_tutorial_pyproject_registers_the_study(sandbox_cli, tmp_path):
    meta = tomllib.loads((FILES / "pyproject.toml").read_text())["project"]
    site = tmp_path / "site"
    dist = site / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n"
    )
    lines = []
    for group, entries in meta["entry-points"].items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {value}" for name, value in entries.items()]
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")
    env = _env_with(FILES, site)

    listed = sandbox_cli("list", "--names", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "proxy-bandit" in listed.stdout.split()
    res = sandbox_cli(
        "run",
        "proxy-bandit",
        "--seeds",
        "1",
        "--set",
        "steps=40",
        "--out",
        str(tmp_path / "by-name"),
        "--quiet",
        env=env,
    )
    assert res.returncode == 0, res.stderr
    manifest = json.loads((tmp_path / "by-name" / "manifest.json").read_text())
    assert manifest["study_path"] == "bandit_study:STUDY"
    assert len(manifest["runs"]) == 2  # the quick grid over proxy_bias, one seed


def test_python_snippet_of_the_tutorial_runs(tmp_path):
    snippets = [
        b for b in re.findall(r"```python\n(.*?)\n```", _text(), re.DOTALL) if "run_study" in b
    ]
    snippets = [s for s in snippets if "def test_" not in s]
    assert len(snippets) == 1
    res = subprocess.run(
        [sys.executable, "-c", snippets[0]],
        cwd=tmp_path,
        env={**os.environ, **_env_with(FILES)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert "**Supported**" in res.stdout
    results = pd.read_parquet(tmp_path / "runs" / "from-python" / "results.parquet")
    assert sorted(results["proxy_bias"].unique()) == [0.0, 0.5, 1.0]


@pytest.mark.slow
def test_the_tutorials_own_tests_pass(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(FILES)],
        cwd=FILES,
        env={**os.environ, "MPLBACKEND": "Agg"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "5 passed" in res.stdout
