"""The ChatModel interface: retries and backoff, concurrency, the SQLite cache, tokens."""

from __future__ import annotations

import random
import threading
import time

import pytest

from sandbox.llm import (
    ChatModel,
    ChatRequest,
    Completion,
    LLMError,
    RetryPolicy,
    TokenCounter,
    make_chat_model,
)
from sandbox.llm.cache import ResponseCache

MSGS = [{"role": "user", "content": "hello"}]


class FakeModel(ChatModel):
    """Fails with the queued error kinds, then answers 'ok <sample>'."""

    backend = "fake"

    def __init__(self, failures=(), delay=0.0, **kwargs):
        self.sleeps: list[float] = []
        super().__init__("fake-1", sleep=self.sleeps.append, **kwargs)
        self.failures = list(failures)
        self.calls = 0
        self.delay = delay
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()

    def _complete_once(self, messages, *, temperature, max_tokens, seed, sample, timeout_s):
        with self._lock:
            self.calls += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            failure = self.failures.pop(0) if self.failures else None
        try:
            if self.delay:
                time.sleep(self.delay)
            if failure is not None:
                kind, retry_after = failure if isinstance(failure, tuple) else (failure, None)
                raise LLMError(kind, "injected", retry_after=retry_after)
            return Completion(
                text=f"ok {sample}",
                finish_reason="stop",
                usage={"prompt_tokens": 7, "completion_tokens": 3},
                latency_s=0.0,
                backend=self.backend,
                model=self.model,
            )
        finally:
            with self._lock:
                self.in_flight -= 1


def test_backoff_is_capped_exponential_with_full_jitter():
    policy = RetryPolicy(base_delay_s=0.5, max_delay_s=3.0)
    rng = random.Random(0)
    for attempt, cap in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 3.0), (6, 3.0)]:
        draws = [policy.delay(attempt, None, rng) for _ in range(300)]
        assert min(draws) >= 0.0 and max(draws) <= cap
        assert max(draws) > 0.8 * cap  # jitter spans the interval, not a constant
    assert policy.delay(0, 2.5, rng) == 2.5  # Retry-After wins
    assert policy.delay(0, 99.0, rng) == 3.0  # but is capped


def test_retries_transient_errors_then_succeeds():
    model = FakeModel(
        failures=["server_error", ("rate_limit", 0.25), "timeout", "connection"],
        retry=RetryPolicy(max_retries=4, base_delay_s=0.01),
    )
    done = model.complete(MSGS, temperature=0.0)
    assert done.text == "ok 0" and done.attempts == 5 and model.calls == 5
    assert len(model.sleeps) == 4 and model.sleeps[1] == 0.25  # Retry-After honoured
    assert all(0 <= s <= 0.01 * 2**i for i, s in enumerate(model.sleeps) if i != 1)
    assert model.counter.as_dict() == {
        "prompt": 7,
        "completion": 3,
        "requests": 5,
        "cache_hits": 0,
    }
    assert model.counter.failures == {
        "server_error": 1,
        "rate_limit": 1,
        "timeout": 1,
        "connection": 1,
    }


def test_retries_are_bounded():
    model = FakeModel(failures=["server_error"] * 10, retry=RetryPolicy(max_retries=2))
    with pytest.raises(LLMError, match=r"\[server_error\]") as err:
        model.complete(MSGS, temperature=0.0)
    assert err.value.kind == "server_error" and model.calls == 3


@pytest.mark.parametrize("kind", ["bad_response", "empty_choices", "empty_content", "client_error"])
def test_malformed_answers_are_not_retried(kind):
    model = FakeModel(failures=[kind], retry=RetryPolicy(max_retries=5))
    with pytest.raises(LLMError) as err:
        model.complete(MSGS, temperature=0.0)
    assert err.value.kind == kind and model.calls == 1 and model.sleeps == []


def test_unknown_error_kind_is_rejected():
    with pytest.raises(ValueError, match="unknown LLM error kind 'oops'"):
        LLMError("oops", "x")


def test_complete_many_keeps_n_in_flight_and_keeps_order():
    model = FakeModel(delay=0.05)
    requests = [ChatRequest(messages=MSGS, sample=i) for i in range(12)]
    t0 = time.perf_counter()
    out = model.complete_many(requests, concurrency=4)
    wall = time.perf_counter() - t0
    assert [c.text for c in out] == [f"ok {i}" for i in range(12)]
    assert model.max_in_flight == 4
    assert wall < 12 * 0.05 * 0.75  # clearly faster than one at a time


def test_complete_many_turns_failures_into_failed_completions():
    model = FakeModel(failures=["empty_choices"], retry=RetryPolicy(max_retries=0))
    out = model.complete_many([ChatRequest(messages=MSGS, sample=i) for i in range(3)], 1)
    assert [c.error for c in out] == ["empty_choices", None, None]
    assert not out[0].ok and out[0].text == "" and out[1].ok
    with pytest.raises(ValueError, match="concurrency must be >= 1"):
        model.complete_many([ChatRequest(messages=MSGS)], concurrency=0)


def test_cache_key_covers_every_parameter_and_roundtrips(tmp_path):
    base = {
        "backend": "openai",
        "model": "m",
        "base_url": "http://127.0.0.1:1/v1",
        "messages": MSGS,
        "temperature": 0.2,
        "max_tokens": 10,
        "seed": 1,
        "sample": 0,
    }
    key = ResponseCache.key(base)
    assert key == ResponseCache.key(dict(reversed(list(base.items()))))  # order-free
    for field, other in [
        ("backend", "replay"),
        ("model", "n"),
        ("base_url", "http://127.0.0.1:2/v1"),
        ("messages", [{"role": "user", "content": "bye"}]),
        ("temperature", 0.6),
        ("max_tokens", 11),
        ("seed", 2),
        ("sample", 1),
    ]:
        assert ResponseCache.key({**base, field: other}) != key, field
    cache = ResponseCache(tmp_path)
    done = Completion("hi", "stop", {"prompt_tokens": 1, "completion_tokens": 1}, 0.1, "b", "m")
    cache.put(key, done)
    cache.put("failed", Completion("", "error", {}, 0.0, "b", "m", error="timeout"))
    assert cache.get(key) == done and cache.get("failed") is None and len(cache) == 1
    cache.close()
    assert (tmp_path / "llm-cache.sqlite").is_file()


def test_rerun_is_served_from_the_cache(tmp_path):
    first = FakeModel(cache=ResponseCache(tmp_path))
    a = first.complete_many([ChatRequest(messages=MSGS, sample=i) for i in range(5)], 2)
    first.close()
    second = FakeModel(cache=ResponseCache(tmp_path))
    b = second.complete_many([ChatRequest(messages=MSGS, sample=i) for i in range(5)], 2)
    assert [c.text for c in a] == [c.text for c in b]
    assert second.calls == 0 and all(c.cached for c in b)
    assert second.counter.as_dict() == {
        "prompt": 0,
        "completion": 0,
        "requests": 0,
        "cache_hits": 5,
    }
    # a new sample index is a new request
    second.complete(MSGS, temperature=0.0, sample=5)
    assert second.calls == 1


def test_token_counter_is_thread_safe():
    counter = TokenCounter()

    def work():
        for _ in range(1000):
            counter.add(prompt=1, completion=2, requests=1)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counter.as_dict() == {
        "prompt": 4000,
        "completion": 8000,
        "requests": 4000,
        "cache_hits": 0,
    }


def test_make_chat_model_errors(monkeypatch):
    with pytest.raises(ValueError, match="unknown LLM backend 'gemini'; valid: openai, replay"):
        make_chat_model("gemini")
    monkeypatch.delenv("MY_KEY_VAR", raising=False)
    with pytest.raises(LLMError, match="set the environment variable MY_KEY_VAR"):
        make_chat_model("openai", model="gpt-4o-mini", api_key_env="MY_KEY_VAR")
    with pytest.raises(ValueError, match="needs a model name"):
        make_chat_model("openai")


@pytest.mark.parametrize("concurrency", [1, 3])
def test_complete_many_reports_progress(concurrency):
    seen: list[tuple[int, int]] = []
    model = FakeModel()
    model.complete_many(
        [ChatRequest(messages=MSGS, sample=i) for i in range(5)],
        concurrency,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen == [(i, 5) for i in range(1, 6)]
