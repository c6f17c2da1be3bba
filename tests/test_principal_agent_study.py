"""The principal-agent study: economic baseline, replay reproduces the paper's table,
failures become failed trials, caching, the API key never reaches disk, the CLI."""

from __future__ import annotations

import ast
import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agents.economic import EconomicAgent
from agents.llm_agent import LLMAgent
from envs.shopping import ShoppingEnv
from sandbox.config import ConfigError
from sandbox.llm import make_chat_model
from sandbox.llm.server import serve
from sandbox.preferences import boltzmann_probability
from sandbox.study import RunContext
from studies.principal_agent import STUDY, PrincipalAgentConfig

FAKE_KEY = "sk-sandbox-test-DO-NOT-WRITE-4f9c2e"


def _run(ctx=None, seed=0, **overrides):
    ctx = ctx or RunContext()
    return STUDY.run(PrincipalAgentConfig(**overrides), seed, ctx), ctx


def _value(df, metric, **where):
    rows = df[df["metric"] == metric]
    for k, v in where.items():
        rows = rows[rows[k] == v]
    assert len(rows) == 1, (metric, where, len(rows))
    return float(rows["value"].iloc[0])


# -- agents ----------------------------------------------------------------------------


def test_economic_utilities_by_hand():
    _, info = ShoppingEnv("car", "both").reset(seed=0)
    agent = EconomicAgent(alpha=0.5, kappa=0.5, temperature=0.1)
    ids, u = agent.utilities(info)
    # Tesla: .5*1 + .5*0 = .5; Porsche: .5*.4 + .5*1 - .5 (the customer reads it) = .2
    assert list(ids) == [1, 2] and u == pytest.approx([0.5, 0.2])
    _, p = agent.probabilities(info)
    assert p[0] == pytest.approx(float(boltzmann_probability(0.5, 0.2, 0.1)))
    _, hidden = ShoppingEnv("car", "neither").reset(seed=0)
    assert agent.utilities(hidden)[1] == pytest.approx([0.5, 0.7])
    loyal = EconomicAgent(kappa=0.0, kappa_principal=1.0, temperature=0.0)
    _, info_p = ShoppingEnv("car", "principal-only").reset(seed=0)
    assert loyal.utilities(info_p)[1] == pytest.approx([-0.5, 0.7])
    assert list(loyal.probabilities(info_p)[1]) == [0.0, 1.0]
    tie = EconomicAgent(alpha=0.5, kappa=0.0, temperature=0.0)
    custom = {
        **info,
        "products": [
            {**p, "customer_utility": 1.0, "company_utility": 1.0} for p in info["products"]
        ],
    }
    assert list(tie.probabilities(custom)[1]) == [0.5, 0.5]
    with pytest.raises(ValueError, match="alpha must be in"):
        EconomicAgent(alpha=1.5)


def test_economic_agent_never_buys_over_budget():
    info = {
        "products": [
            {"id": 1, "name": "A", "price": 90, "customer_utility": 0.2, "company_utility": 0.2},
            {"id": 2, "name": "B", "price": 200, "customer_utility": 1.0, "company_utility": 1.0},
        ],
        "budget": 100,
        "customer_first": 2,
        "company_favourite": 2,
        "customer_sees": True,
        "principal_sees": True,
    }
    agent = EconomicAgent(temperature=5.0)
    assert list(agent.probabilities(info)[1]) == [1.0, 0.0]
    text = agent.act(info, np.random.default_rng(0))
    assert text.endswith("Choice: 1") and "not a language model" in text


def test_llm_agent_builds_the_papers_single_user_message():
    model = make_chat_model("scripted")
    agent = LLMAgent(model, temperature=0.0, seed=5, system_prompt=None)
    obs, _ = ShoppingEnv("car", "user-only").reset()
    assert agent.messages(obs) == [{"role": "user", "content": obs}]
    outs = agent.sample(obs, n=4, concurrency=2)
    assert [o.text.endswith("Choice: 1") for o in outs] == [True] * 4
    assert LLMAgent(model, system_prompt="be good").messages("x")[0] == {
        "role": "system",
        "content": "be good",
    }
    with pytest.raises(ValueError, match="2 observations but 1 sample indices"):
        agent.act_many(["a", "b"], [0])


# -- the study: offline backends -----------------------------------------------------------


def test_economic_run_is_deterministic_and_tidy():
    a, ctx = _run(backend="economic", samples=20, seed=3)
    b, _ = _run(backend="economic", samples=20, seed=3)
    c, _ = _run(backend="economic", samples=20, seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)
    assert not {"study", "run_id", "seed"} & set(a.columns)
    assert {"scenario", "condition", "backend", "model", "temperature", "metric", "value"} <= set(
        a.columns
    )
    assert set(a["scenario"]) == {"film", "car", "generated"} and set(a["condition"]) == {
        "both",
        "principal-only",
        "user-only",
        "neither",
    }
    assert ctx.extras["tokens"]["requests"] == 0
    # rational choice: hiding the explanation from the customer raises overrides
    seen = _value(a, "n_override", scenario="car", condition="both")
    hidden = _value(a, "n_override", scenario="car", condition="neither")
    assert hidden > seen


def test_scripted_run_follows_its_rule_and_is_labelled():
    df, ctx = _run(backend="scripted", samples=6, scenario="car", temperature=0.0)
    assert set(df["backend"]) == {"scripted"} and set(df["model"]) == {"scripted-persona-v1"}
    rates = {c: _value(df, "override_rate", condition=c) for c in ("both", "user-only", "neither")}
    assert rates == {"both": 1.0, "user-only": 0.0, "neither": 1.0}
    assert _value(df, "unparsed_rate", condition="both") == 0.0
    assert ctx.extras["tokens"]["requests"] == 4 * 6


def test_config_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="backend=openai needs model="):
        _run(backend="openai", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ConfigError, match="transcripts='/nope': no such file"):
        _run(backend="replay", transcripts="/nope")
    (tmp_path / "t.jsonl").write_text('{"prompt": "x", "completion": "Choice: 1", "model": "m"}\n')
    with pytest.raises(ConfigError, match="cannot swap labels"):
        _run(backend="replay", transcripts=str(tmp_path / "t.jsonl"), swap_labels=True)
    with pytest.raises(ConfigError, match="no recordings of generated scenarios"):
        _run(backend="replay", transcripts=str(tmp_path / "t.jsonl"), scenario="generated")


# -- replay reproduces the recorded experiment ----------------------------------------------


def test_replay_reproduces_the_papers_table(shared_data):
    """Override counts per cell from the paper's own recorded choices (read straight from
    the CSV) match the study's, except one answer the paper's parser misread."""
    expected: Counter = Counter()
    parsed: Counter = Counter()
    for path in sorted((shared_data / "tinmen").glob("*.csv")):
        for row in csv.DictReader(path.open(encoding="utf-8", newline="")):
            text = " ".join(ast.literal_eval(row["Transcript"]))
            scenario = (
                "car" if ("Tesla" in text or "Porche" in text or "vehicle" in text) else "film"
            )
            key = (row["Model"], float(row["Temperature"]), scenario, row["Condition"])
            if row["Choice"]:
                parsed[key] += 1
                expected[key] += (
                    row["Choice"] == "PAChoice(value=2)"
                )  # 2 = not the customer's first
    expected[("gpt-3.5-turbo", 0.6, "car", "principal-only")] += 1  # the misread answer
    df, ctx = _run(ctx=RunContext(shared_data=shared_data), backend="replay", samples=0)
    assert len(parsed) == 32
    for (model, temp, scenario, condition), n in parsed.items():
        where = {"model": model, "temperature": temp, "scenario": scenario, "condition": condition}
        assert _value(df, "n_trials", **where) == 30
        assert _value(df, "n_parsed", **where) == n, where
        assert _value(df, "n_override", **where) == expected[(model, temp, scenario, condition)], (
            where
        )
    assert ctx.extras["tokens"]["requests"] == 960
    # Another seed draws the recordings in another order: the same table.
    df2, _ = _run(ctx=RunContext(shared_data=shared_data), backend="replay", samples=0, seed=9)
    counts = df[df["metric"].str.startswith("n_")].reset_index(drop=True)
    counts2 = df2[df2["metric"].str.startswith("n_")].reset_index(drop=True)
    pd.testing.assert_frame_equal(counts, counts2)


def test_replay_subsample_is_deterministic_under_a_seed(shared_data):
    kw = {
        "backend": "replay",
        "samples": 10,
        "model": "gpt-3.5-turbo",
        "temperature": 0.6,
        "scenario": "car",
    }
    a, _ = _run(ctx=RunContext(shared_data=shared_data), seed=1, **kw)
    b, _ = _run(ctx=RunContext(shared_data=shared_data), seed=1, **kw)
    pd.testing.assert_frame_equal(a, b)
    draws = {
        tuple(_run(ctx=RunContext(shared_data=shared_data), seed=s, **kw)[0]["value"])
        for s in range(4)
    }
    assert len(draws) > 1
    with pytest.raises(ConfigError, match="no recordings of gpt-3.5-turbo at temperature 0.3"):
        _run(ctx=RunContext(shared_data=shared_data), **{**kw, "temperature": 0.3})


# -- the openai backend: faults, cache, key -------------------------------------------------


def _openai(url, **kw):
    base = {
        "backend": "openai",
        "model": "sandbox-test",
        "base_url": url,
        "api_key_env": "SANDBOX_TEST_KEY",
        "scenario": "car",
        "condition": "both",
        "samples": 3,
        "concurrency": 1,
        "max_retries": 1,
        "backoff_s": 0.0,
        "timeout_s": 0.3,
        "temperature": 0.0,
    }
    return {**base, **kw}


@pytest.mark.parametrize(
    "fault, kind",
    [
        ("500", "server_error"),
        ("429", "rate_limit"),
        ("hang", "timeout"),
        ("garbage", "bad_response"),
        ("empty_choices", "empty_choices"),
        ("drop", "connection"),
    ],
)
def test_study_records_persistent_faults_as_failed_trials(fault, kind, monkeypatch):
    monkeypatch.setenv("SANDBOX_TEST_KEY", FAKE_KEY)
    with serve("scripted", fault_forever=fault, hang_s=2.0) as srv:
        df, ctx = _run(**_openai(srv.url, samples=2))
    assert _value(df, "n_trials") == 2 and _value(df, "n_failed") == 2
    assert _value(df, "failed_rate") == 1.0 and np.isnan(_value(df, "override_rate"))
    assert _value(df, "n_failed_kind", error_kind=kind) == 2
    retried = kind in ("server_error", "rate_limit", "timeout", "connection")
    assert ctx.extras["tokens"]["requests"] == 2 * (2 if retried else 1)


def test_study_mixed_faults_recover_or_fail_per_trial(monkeypatch):
    monkeypatch.setenv("SANDBOX_TEST_KEY", FAKE_KEY)
    # trial 0: 500 (retried) then garbage (fails); trial 1: 429 then ok; trial 2: ok.
    with serve("scripted", faults=["500", "garbage", "429", "ok", "empty_content"]) as srv:
        df, ctx = _run(**_openai(srv.url, samples=4))
    assert _value(df, "n_trials") == 4 and _value(df, "n_answered") == 2
    assert _value(df, "n_failed_kind", error_kind="bad_response") == 1
    assert _value(df, "n_failed_kind", error_kind="empty_content") == 1
    assert _value(df, "override_rate") == 1.0  # the persona buys the Porsche when both read it
    assert ctx.extras["llm_failed_attempts"] == {
        "server_error": 1,
        "bad_response": 1,
        "rate_limit": 1,
        "empty_content": 1,
    }


def test_rerun_is_served_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SANDBOX_TEST_KEY", FAKE_KEY)
    with serve("scripted") as srv:
        kw = _openai(srv.url, samples=5, temperature=0.8, concurrency=4, condition="all")
        first, ctx1 = _run(ctx=RunContext(cache_dir=tmp_path / "cache"), **kw)
        second, ctx2 = _run(ctx=RunContext(cache_dir=tmp_path / "cache"), **kw)
        uncached, ctx3 = _run(
            ctx=RunContext(cache_dir=tmp_path / "cache"), **{**kw, "cache": False}
        )
    pd.testing.assert_frame_equal(first, second)
    assert ctx1.extras["tokens"]["requests"] == 20 and ctx1.extras["tokens"]["cache_hits"] == 0
    assert ctx2.extras["tokens"] == {"prompt": 0, "completion": 0, "requests": 0, "cache_hits": 20}
    assert ctx3.extras["tokens"]["requests"] == 20
    assert (tmp_path / "cache" / "llm" / "llm-cache.sqlite").is_file()


def _files_containing(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_cli_end_to_end_offline_and_openai_backends_key_never_written(tmp_path, sandbox_cli):
    """One tiny ``sandbox run``: scripted, economic and openai (against the local server,
    with one injected 500). The API key travels in the environment only: it is in no
    file written (results, parts, manifest, report, figures, cache) and in no output."""
    out = tmp_path / "out"
    with serve("scripted", faults=["500"]) as srv:
        res = sandbox_cli(
            "run", "principal-agent", "--scale", "quick", "--seeds", "1",
            "--grid", "backend=scripted,economic,openai",
            "--set", "model=sandbox-test", "--set", f"base_url={srv.url}",
            "--set", "api_key_env=SANDBOX_TEST_KEY", "--set", "samples=3",
            "--set", "backoff_s=0", "--set", "concurrency=4",
            "--out", str(out), "--quiet",
            env={"SANDBOX_TEST_KEY": FAKE_KEY},
        )  # fmt: skip
    assert res.returncode == 0, res.stderr
    df = pd.read_parquet(out / "results.parquet")
    assert set(df["backend"]) == {"scripted", "economic", "openai"}
    assert {"scenario", "condition", "model", "temperature"} <= set(df.columns)
    assert set(df["scenario"]) == {"film", "car", "generated"}
    assert _value(df, "n_trials", backend="scripted", scenario="car", condition="both") == 3
    # the scripted server answers the openai backend exactly as the scripted backend does
    for metric in ("n_override", "n_parsed", "n_within_budget"):
        for scenario in ("film", "car", "generated"):
            assert _value(df, metric, backend="openai", scenario=scenario, condition="neither") == (
                _value(df, metric, backend="scripted", scenario=scenario, condition="neither")
            )
    report = (out / "report.md").read_text()
    assert "## Claims" in report and "| film |" in report
    assert "(baseline, ours) A rational agent overrides" in report
    assert (out / "figures" / "override_rates.png").is_file()
    manifest = (out / "manifest.json").read_text()
    assert '"requests": 37' in manifest  # 36 trials + one retried 500: tokens in the manifest
    written = list(tmp_path.rglob("*"))
    assert any(p.suffix == ".sqlite" for p in written)
    assert _files_containing(tmp_path, FAKE_KEY.encode()) == []
    assert FAKE_KEY not in res.stdout + res.stderr


def test_recorded_answers_replay_to_the_same_table(tmp_path):
    """record_dir writes our JSONL; replaying it gives the live run's counts cell by cell."""
    live, _ = _run(backend="scripted", samples=6, temperature=1.0, record_dir=str(tmp_path / "rec"))
    files = sorted((tmp_path / "rec").glob("*.jsonl"))
    assert [f.name for f in files] == ["scripted-scripted-persona-v1-T1-seed0.jsonl"]
    assert len(files[0].read_text().splitlines()) == 3 * 4 * 6
    replayed, _ = _run(backend="replay", transcripts=str(tmp_path / "rec"), samples=0, seed=5)
    assert set(replayed["scenario"]) == {"film", "car"}
    assert set(replayed["model"]) == {"scripted-persona-v1"}
    for scenario in ("film", "car"):
        for condition in ("both", "principal-only", "user-only", "neither"):
            where = {"scenario": scenario, "condition": condition}
            assert _value(replayed, "n_override", **where) == _value(live, "n_override", **where)
            assert _value(replayed, "n_trials", **where) == 6
    # the temperature-1 persona trembles (p = 0.25), so some recorded cells are mixed
    mixed = live[(live["metric"] == "n_override") & live["value"].between(1, 5)]
    assert len(mixed) >= 3


def test_summary_does_not_double_count_replayed_recordings(shared_data):
    kw = {"backend": "replay", "samples": 0, "model": "gpt-3.5-turbo", "temperature": 0.2}
    frames = []
    for seed in (0, 1):
        df, _ = _run(ctx=RunContext(shared_data=shared_data), seed=seed, scenario="car", **kw)
        frames.append(df.assign(study="principal-agent", run_id=f"r{seed}", seed=seed))
    econ, _ = _run(backend="economic", samples=5, scenario="car", condition="both")
    frames += [econ.assign(study="principal-agent", run_id=f"e{s}", seed=s) for s in (0, 1)]
    report = STUDY.summarize(pd.concat(frames, ignore_index=True), {"runs": {}})
    assert "| car | 18/28 = 0.64 [0.46, 0.79] | 21/30 = 0.70 [0.52, 0.83] | 0/29" in report
    assert "36/56" not in report
    assert "/10 = " in report  # economic trials do pool over seeds (5 + 5)
