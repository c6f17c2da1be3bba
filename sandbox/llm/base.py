"""The chat-model interface every backend shares, and the reliability around it.

A backend implements one method, :meth:`ChatModel._complete_once` (a single attempt).
:meth:`ChatModel.complete` wraps it with what every caller needs and no caller should
write again: the on-disk response cache, bounded retries with exponential backoff and
jitter on transient failures (429, 5xx, timeouts, dropped connections), token accounting,
and a uniform error vocabulary (:class:`LLMError` with a ``kind``).
:meth:`ChatModel.complete_many` keeps up to ``concurrency`` requests in flight and turns
every failure into a failed :class:`Completion` (``error`` set) instead of raising, so a
study records it as a failed trial and carries on.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

# Error kinds: the values of LLMError.kind and Completion.error.
TIMEOUT = "timeout"
RATE_LIMIT = "rate_limit"
SERVER_ERROR = "server_error"
CONNECTION = "connection"
BAD_RESPONSE = "bad_response"  # the body is not the JSON a chat completion should be
EMPTY_CHOICES = "empty_choices"
EMPTY_CONTENT = "empty_content"
CLIENT_ERROR = "client_error"  # 4xx other than 429: our request or credentials are wrong
NO_RECORDING = "no_recording"  # replay: nothing recorded for this request
ERROR_KINDS = (
    TIMEOUT,
    RATE_LIMIT,
    SERVER_ERROR,
    CONNECTION,
    BAD_RESPONSE,
    EMPTY_CHOICES,
    EMPTY_CONTENT,
    CLIENT_ERROR,
    NO_RECORDING,
)
RETRYABLE = frozenset({TIMEOUT, RATE_LIMIT, SERVER_ERROR, CONNECTION})

Message = Mapping[str, str]


class LLMError(RuntimeError):
    """A failed request. ``kind`` is one of :data:`ERROR_KINDS`; ``retry_after`` (seconds)
    is the server's Retry-After hint when it sent one."""

    def __init__(self, kind: str, message: str, *, retry_after: float | None = None):
        if kind not in ERROR_KINDS:
            raise ValueError(f"unknown LLM error kind {kind!r}; valid: {', '.join(ERROR_KINDS)}")
        super().__init__(f"[{kind}] {message}")
        self.kind = kind
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE


@dataclass(frozen=True)
class Completion:
    """One answer (or one failure, when ``error`` is set).

    ``usage`` holds ``prompt_tokens`` and ``completion_tokens`` (estimated for the offline
    backends); ``cached`` says the answer came from the on-disk cache; ``attempts`` counts
    the requests sent, retries included.
    """

    text: str
    finish_reason: str
    usage: Mapping[str, int]
    latency_s: float
    backend: str
    model: str
    cached: bool = False
    attempts: int = 1
    error: str | None = None
    error_message: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "finish_reason": self.finish_reason,
            "usage": dict(self.usage),
            "latency_s": self.latency_s,
            "backend": self.backend,
            "model": self.model,
        }


@dataclass(frozen=True)
class ChatRequest:
    """One request for :meth:`ChatModel.complete_many`. ``sample`` numbers repeated draws
    of the same prompt (it is part of the cache key and picks the replayed recording)."""

    messages: tuple[Message, ...]
    temperature: float = 0.0
    max_tokens: int = 512
    seed: int | None = None
    sample: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "messages", tuple(dict(m) for m in self.messages))


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with capped exponential backoff and full jitter.

    Attempt ``k`` (0-based) failing with a retryable kind waits
    ``uniform(0, min(max_delay_s, base_delay_s * 2**k))`` seconds, or the server's
    Retry-After when it sent one (capped by ``max_delay_s``), then tries again, at most
    ``max_retries`` times. ``timeout_s`` bounds each single attempt.
    """

    max_retries: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    timeout_s: float = 60.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        if retry_after is not None and retry_after >= 0:
            return min(self.max_delay_s, retry_after)
        cap = min(self.max_delay_s, self.base_delay_s * (2**attempt))
        return rng.uniform(0.0, cap)


@dataclass
class TokenCounter:
    """Thread-safe totals for the manifest: ``ctx.extras["tokens"] = counter.as_dict()``.

    ``requests`` counts requests sent to the backend (retries included); ``cache_hits``
    counts answers served from the cache (which cost no tokens and send no request).
    """

    prompt: int = 0
    completion: int = 0
    requests: int = 0
    cache_hits: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, *, prompt: int = 0, completion: int = 0, requests: int = 0, cache_hits: int = 0):
        with self._lock:
            self.prompt += int(prompt)
            self.completion += int(completion)
            self.requests += int(requests)
            self.cache_hits += int(cache_hits)

    def add_failure(self, kind: str) -> None:
        with self._lock:
            self.failures[kind] = self.failures.get(kind, 0) + 1

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return {
                "prompt": self.prompt,
                "completion": self.completion,
                "requests": self.requests,
                "cache_hits": self.cache_hits,
            }


def estimate_tokens(text: str) -> int:
    """A rough token count for the offline backends (about 4 characters a token)."""
    return max(1, (len(text) + 3) // 4) if text else 0


class ChatModel:
    """One chat interface over many providers.

    Subclasses set ``backend`` and implement :meth:`_complete_once` (one attempt; raise
    :class:`LLMError` on failure). Everything else lives here.
    """

    backend: ClassVar[str] = "base"

    def __init__(
        self,
        model: str,
        *,
        retry: RetryPolicy | None = None,
        cache: Any | None = None,
        counter: TokenCounter | None = None,
        sleep: Any = time.sleep,
    ):
        self.model = model
        self.retry = retry or RetryPolicy()
        self.cache = cache
        self.counter = counter or TokenCounter()
        self._sleep = sleep
        self._jitter = random.Random()  # backoff jitter only: never touches results

    # -- what a backend provides -------------------------------------------------------
    def _complete_once(
        self,
        messages: Sequence[Message],
        *,
        temperature: float,
        max_tokens: int,
        seed: int | None,
        sample: int,
        timeout_s: float,
    ) -> Completion:
        raise NotImplementedError

    def identity(self) -> dict[str, Any]:
        """What distinguishes this backend's answers in the cache key (never secrets)."""
        return {"backend": self.backend, "model": self.model}

    # -- the interface -----------------------------------------------------------------
    def complete(
        self,
        messages: Sequence[Message],
        *,
        temperature: float,
        max_tokens: int = 512,
        seed: int | None = None,
        sample: int = 0,
    ) -> Completion:
        """One completion; raises :class:`LLMError` once retries are exhausted."""
        msgs = [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]
        key = None
        if self.cache is not None:
            key = self.cache.key(
                {
                    **self.identity(),
                    "messages": msgs,
                    "temperature": float(temperature),
                    "max_tokens": int(max_tokens),
                    "seed": seed,
                    "sample": int(sample),
                }
            )
            hit = self.cache.get(key)
            if hit is not None:
                self.counter.add(cache_hits=1)
                return replace(hit, cached=True, attempts=0)
        attempt = 0
        while True:
            self.counter.add(requests=1)
            try:
                done = self._complete_once(
                    msgs,
                    temperature=float(temperature),
                    max_tokens=int(max_tokens),
                    seed=seed,
                    sample=int(sample),
                    timeout_s=self.retry.timeout_s,
                )
            except LLMError as err:
                self.counter.add_failure(err.kind)
                if not err.retryable or attempt >= self.retry.max_retries:
                    raise
                self._sleep(self.retry.delay(attempt, err.retry_after, self._jitter))
                attempt += 1
                continue
            done = replace(done, attempts=attempt + 1)
            self.counter.add(
                prompt=done.usage.get("prompt_tokens", 0),
                completion=done.usage.get("completion_tokens", 0),
            )
            if self.cache is not None and key is not None:
                self.cache.put(key, done)
            return done

    def complete_safe(self, request: ChatRequest) -> Completion:
        """Like :meth:`complete`, but a failure is returned as a failed Completion."""
        t0 = time.perf_counter()
        try:
            return self.complete(
                request.messages,
                temperature=request.temperature,
                max_tokens=request.max_tokens,
                seed=request.seed,
                sample=request.sample,
            )
        except LLMError as err:
            return self._failed(err.kind, str(err), time.perf_counter() - t0)
        except Exception as err:  # a backend bug must not take a whole study down
            return self._failed(BAD_RESPONSE, f"{type(err).__name__}: {err}", 0.0)

    def _failed(self, kind: str, message: str, latency: float) -> Completion:
        return Completion(
            text="",
            finish_reason="error",
            usage={"prompt_tokens": 0, "completion_tokens": 0},
            latency_s=latency,
            backend=self.backend,
            model=self.model,
            error=kind,
            error_message=message,
        )

    async def acomplete_many(
        self,
        requests: Sequence[ChatRequest],
        concurrency: int = 8,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[Completion]:
        """Complete every request keeping up to ``concurrency`` in flight; results are in
        request order and failures are failed Completions (never raised).
        ``progress(done, total)`` is called as each request finishes."""
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(concurrency)
        finished = 0
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="llm") as pool:

            async def one(req: ChatRequest) -> Completion:
                nonlocal finished
                async with gate:
                    done = await loop.run_in_executor(pool, self.complete_safe, req)
                finished += 1
                if progress is not None:
                    progress(finished, len(requests))
                return done

            return list(await asyncio.gather(*(one(r) for r in requests)))

    def complete_many(
        self,
        requests: Sequence[ChatRequest],
        concurrency: int = 8,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[Completion]:
        """Synchronous front of :meth:`acomplete_many` (runs its own event loop)."""
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if concurrency == 1:
            out = []
            for i, r in enumerate(requests):
                out.append(self.complete_safe(r))
                if progress is not None:
                    progress(i + 1, len(requests))
            return out
        run = self.acomplete_many(requests, concurrency, progress)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(run)
        # Called from inside a running loop (a notebook): run the loop in a helper thread.
        box: list[list[Completion]] = []
        worker = threading.Thread(target=lambda: box.append(asyncio.run(run)))
        worker.start()
        worker.join()
        return box[0]

    def close(self) -> None:
        """Release connections and the cache."""
        if self.cache is not None:
            self.cache.close()
