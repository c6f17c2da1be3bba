"""One chat interface for LLM agents, many backends, reliability built in.

    from sandbox.llm import make_chat_model
    model = make_chat_model("openai", model="gpt-4o-mini", cache_dir="~/.cache/x")
    done = model.complete([{"role": "user", "content": "hi"}], temperature=0.2)
    done.text, done.usage, done.latency_s

Backends: ``openai`` (any OpenAI-compatible endpoint, :mod:`.openai_backend`),
``replay`` (recorded transcripts, :mod:`.replay`), ``scripted`` (a deterministic offline
persona, :mod:`.scripted`). :mod:`.server` serves the offline backends over HTTP.
Retries, backoff, timeouts, concurrency, the SQLite cache (:mod:`.cache`) and token
accounting are in :class:`~sandbox.llm.base.ChatModel`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sandbox.llm.base import (
    ERROR_KINDS,
    RETRYABLE,
    ChatModel,
    ChatRequest,
    Completion,
    LLMError,
    RetryPolicy,
    TokenCounter,
)

BACKENDS = ("openai", "replay", "scripted")

__all__ = [
    "BACKENDS",
    "ERROR_KINDS",
    "RETRYABLE",
    "ChatModel",
    "ChatRequest",
    "Completion",
    "LLMError",
    "RetryPolicy",
    "TokenCounter",
    "make_chat_model",
]


def make_chat_model(
    backend: str,
    *,
    model: str | None = None,
    base_url: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    transcripts: str | Path | None = None,
    cache_dir: str | Path | None = None,
    retry: RetryPolicy | None = None,
    counter: TokenCounter | None = None,
) -> ChatModel:
    """Build a backend by name. ``cache_dir`` (a folder) turns the SQLite cache on."""
    kwargs: dict[str, Any] = {"retry": retry, "counter": counter}
    if cache_dir is not None:
        from sandbox.llm.cache import ResponseCache

        kwargs["cache"] = ResponseCache(Path(cache_dir).expanduser())
    if backend == "openai":
        from sandbox.llm.openai_backend import OpenAIChatModel

        if not model:
            raise ValueError("the openai backend needs a model name")
        return OpenAIChatModel(model, base_url=base_url, api_key_env=api_key_env, **kwargs)
    if backend == "replay":
        from sandbox.llm.replay import ReplayChatModel

        return ReplayChatModel(model or "auto", transcripts=transcripts, **kwargs)
    if backend == "scripted":
        from sandbox.llm.scripted import ScriptedChatModel

        return ScriptedChatModel(**kwargs)
    raise ValueError(f"unknown LLM backend {backend!r}; valid: {', '.join(BACKENDS)}")
