"""The OpenAI-compatible server, the real ``openai`` client, and injected faults."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import openai
import pytest

from envs.shopping import CAR
from sandbox.llm import ChatRequest, RetryPolicy
from sandbox.llm.openai_backend import OpenAIChatModel, parse_chat_response
from sandbox.llm.server import FaultPlan, add_cli_arguments, serve, serve_from_args

PROMPT = [{"role": "user", "content": CAR.prompt("user-only")}]


def _model(url, *, retries=0, timeout=5.0, sleeps=None):
    return OpenAIChatModel(
        "anything",
        base_url=url,
        api_key_env="SANDBOX_TEST_NO_SUCH_KEY",
        retry=RetryPolicy(max_retries=retries, base_delay_s=0.001, timeout_s=timeout),
        sleep=(sleeps.append if sleeps is not None else time.sleep),
    )


def test_official_client_against_the_scripted_server():
    with serve("scripted") as srv:
        assert srv.url.startswith("http://127.0.0.1:")
        client = openai.OpenAI(base_url=srv.url, api_key="not-a-key", max_retries=0)
        assert [m.id for m in client.models.list().data] == ["scripted-persona-v1"]
        out = client.chat.completions.create(
            model="whatever", messages=PROMPT, temperature=0.0, max_tokens=100, n=2
        )
        assert len(out.choices) == 2
        assert out.choices[0].message.content.endswith("Choice: 1")
        assert out.usage.prompt_tokens > 0 and out.usage.completion_tokens > 0
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="x", messages=[])
        with pytest.raises(openai.NotFoundError):
            client.completions.create(model="x", prompt="legacy route")


def test_replay_server_serves_each_recording_once(shared_data):
    with serve("replay", transcripts=shared_data / "tinmen", seed=0) as srv:
        client = openai.OpenAI(base_url=srv.url, api_key="x", max_retries=0)
        assert [m.id for m in client.models.list().data] == ["gpt-3.5-turbo", "gpt-4"]
        texts = [
            client.chat.completions.create(model="gpt-4", messages=PROMPT, temperature=0.2)
            .choices[0]
            .message.content
            for _ in range(30)
        ]
        assert len(texts) == 30 and all("Choice" in t for t in texts)
        with pytest.raises(openai.NotFoundError, match="only 30 recordings"):
            client.chat.completions.create(model="gpt-4", messages=PROMPT, temperature=0.2)
        with pytest.raises(openai.NotFoundError, match="no recordings of model 'gpt-5'"):
            client.chat.completions.create(model="gpt-5", messages=PROMPT, temperature=0.2)


@pytest.mark.parametrize(
    "fault, kind",
    [
        ("500", "server_error"),
        ("429", "rate_limit"),
        ("garbage", "bad_response"),
        ("empty_choices", "empty_choices"),
        ("empty_content", "empty_content"),
        ("drop", "connection"),
    ],
)
def test_each_fault_becomes_its_error_kind(fault, kind):
    with serve("scripted", fault_forever=fault) as srv:
        model = _model(srv.url)
        done = model.complete_safe(ChatRequest(PROMPT))
        assert done.error == kind and not done.ok and done.text == ""


def test_hanging_response_times_out_and_is_retried():
    with serve("scripted", faults=["hang"], hang_s=5.0) as srv:
        model = _model(srv.url, retries=1, timeout=0.3)
        t0 = time.perf_counter()
        done = model.complete(PROMPT, temperature=0.0)
        assert time.perf_counter() - t0 < 3.0
        assert done.attempts == 2 and done.text.endswith("Choice: 1")
        assert model.counter.failures == {"timeout": 1}


def test_retry_after_is_honoured_and_transient_faults_recover():
    sleeps: list[float] = []
    with serve("scripted", faults=["500", "429", "drop"], retry_after_s=0.125) as srv:
        model = _model(srv.url, retries=3, sleeps=sleeps)
        done = model.complete(PROMPT, temperature=0.0)
        assert done.attempts == 4 and done.ok
        assert sleeps[1] == 0.125  # the 429's Retry-After
        assert srv.faults.served == ["500", "429", "drop", "ok"]
        assert model.counter.as_dict()["requests"] == 4


def test_garbage_is_not_retried():
    with serve("scripted", faults=["garbage"]) as srv:
        model = _model(srv.url, retries=5)
        with pytest.raises(Exception, match="bad_response"):
            model.complete(PROMPT, temperature=0.0)
        assert srv.faults.served == ["garbage"]


def test_parse_chat_response_validation():
    kw = {"backend": "openai", "model": "m", "latency": 0.0}
    ok = parse_chat_response(
        '{"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],'
        ' "usage": {"prompt_tokens": 3, "completion_tokens": 1}}',
        **kw,
    )
    assert ok.text == "hi" and ok.usage == {"prompt_tokens": 3, "completion_tokens": 1}
    for body, kind in [
        ("not json", "bad_response"),
        ("[1, 2]", "bad_response"),
        ('{"error": {"message": "x"}}', "bad_response"),
        ('{"choices": []}', "empty_choices"),
        ('{"choices": [{"message": {"content": "  "}}]}', "empty_content"),
        ('{"choices": [{"message": {"content": null}}]}', "empty_content"),
    ]:
        with pytest.raises(Exception, match=rf"\[{kind}\]"):
            parse_chat_response(body, **kw)


def test_fault_plan_rejects_unknown_faults():
    with pytest.raises(ValueError, match="unknown fault 'explode'"):
        FaultPlan(["explode"])


def test_cli_arguments_and_bad_configuration(capsys):
    parser = argparse.ArgumentParser()
    add_cli_arguments(parser)
    args = parser.parse_args(["--backend", "replay", "--port", "0"])
    assert args.host == "127.0.0.1" and args.transcripts is None
    assert serve_from_args(args) == 2
    assert "needs --transcripts" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["--host", "0.0.0.0"])


def test_serve_llm_command_end_to_end():
    """``sandbox serve-llm`` as a process: it prints its URL, the client talks to it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox.cli", "serve-llm", "--backend", "scripted", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1"), proc.stderr.read()
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0, timeout=10)
        out = client.chat.completions.create(model="m", messages=PROMPT, temperature=0.0)
        assert out.choices[0].message.content.endswith("Choice: 1")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_samples_get_distinct_wire_seeds():
    from sandbox.llm.openai_backend import wire_seed

    seeds = {wire_seed(0, i) for i in range(1000)}
    assert len(seeds) == 1000 and all(0 <= s < 2**31 for s in seeds)
    assert wire_seed(3, 7) == wire_seed(3, 7) != wire_seed(4, 7)
