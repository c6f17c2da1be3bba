"""The ``openai`` backend: the official client against any OpenAI-compatible endpoint.

Works with OpenAI itself and with vLLM, Ollama, llama.cpp's server or ``sandbox
serve-llm``: it sends only the chat-completions fields every such server accepts
(``model``, ``messages``, ``temperature``, ``max_tokens``, and ``seed`` when one is
given: a per-sample seed derived from the run's seed and the sample index, so samples
differ yet a rerun asks for the same ones). The client's own retries are switched off (``max_retries=0``); retries, backoff,
timeouts and the cache are :class:`~sandbox.llm.base.ChatModel`'s.

The API key is read from the environment variable named by ``api_key_env`` (default
``OPENAI_API_KEY``) when the model is built, kept in memory only, and never written to
the cache, results, manifest or logs. A local endpoint (``base_url`` given) with no key
set gets the placeholder ``"EMPTY"`` (what vLLM and llama.cpp expect).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from typing import Any

from sandbox.llm import base
from sandbox.llm.base import ChatModel, Completion, LLMError, Message


def _retry_after(headers: Any) -> float | None:
    if headers is None:
        return None
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def wire_seed(seed: int, sample: int) -> int:
    """The ``seed`` sent for sample ``sample`` of a run seeded ``seed``: distinct per sample
    (the same seed for every sample would make a seeded server repeat one answer)."""
    digest = hashlib.sha256(f"{int(seed)}:{int(sample)}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def parse_chat_response(body: str, *, backend: str, model: str, latency: float) -> Completion:
    """Validate a chat-completions JSON body into a Completion, or raise LLMError."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, TypeError) as err:
        raise LLMError(base.BAD_RESPONSE, f"response is not JSON ({err}): {body[:120]!r}") from None
    if not isinstance(data, dict):
        raise LLMError(base.BAD_RESPONSE, f"response is not a JSON object: {body[:120]!r}")
    if "error" in data and "choices" not in data:
        raise LLMError(base.BAD_RESPONSE, f"error object in a 200 response: {data['error']!r}")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise LLMError(base.EMPTY_CHOICES, "the response has no choices")
    first = choices[0] if isinstance(choices[0], dict) else {}
    message = first.get("message") or {}
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str) or not content.strip():
        raise LLMError(base.EMPTY_CONTENT, "the first choice has no text content")
    usage = data.get("usage") or {}
    return Completion(
        text=content,
        finish_reason=str(first.get("finish_reason") or "unknown"),
        usage={
            "prompt_tokens": int(usage.get("prompt_tokens") or 0),
            "completion_tokens": int(usage.get("completion_tokens") or 0),
        },
        latency_s=latency,
        backend=backend,
        model=str(data.get("model") or model),
    )


class OpenAIChatModel(ChatModel):
    """Chat completions over HTTP with the official ``openai`` client."""

    backend = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        **kwargs: Any,
    ):
        super().__init__(model, **kwargs)
        from openai import OpenAI

        key = os.environ.get(api_key_env, "")
        if not key:
            if base_url is None:
                raise LLMError(
                    base.CLIENT_ERROR,
                    f"no API key: set the environment variable {api_key_env} "
                    "(or give base_url for a local OpenAI-compatible server)",
                )
            key = "EMPTY"
        self.base_url = base_url
        self._client = OpenAI(
            api_key=key, base_url=base_url, timeout=self.retry.timeout_s, max_retries=0
        )

    def identity(self) -> dict[str, Any]:
        return {"backend": self.backend, "model": self.model, "base_url": self.base_url}

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
        import openai

        extra: dict[str, Any] = {} if seed is None else {"seed": wire_seed(seed, sample)}
        t0 = time.perf_counter()
        try:
            raw = self._client.chat.completions.with_raw_response.create(
                model=self.model,
                messages=list(messages),
                temperature=temperature,
                max_tokens=max_tokens,
                timeout=timeout_s,
                **extra,
            )
            body = raw.text
        except openai.APITimeoutError:
            raise LLMError(base.TIMEOUT, f"no answer within {timeout_s:g} s") from None
        except openai.APIConnectionError as err:
            raise LLMError(base.CONNECTION, f"connection failed: {err}") from None
        except openai.APIStatusError as err:
            status = err.status_code
            if status == 429:
                raise LLMError(
                    base.RATE_LIMIT,
                    "rate limited (HTTP 429)",
                    retry_after=_retry_after(err.response.headers),
                ) from None
            if status >= 500:
                raise LLMError(
                    base.SERVER_ERROR,
                    f"server error (HTTP {status})",
                    retry_after=_retry_after(err.response.headers),
                ) from None
            if status == 408:
                raise LLMError(base.TIMEOUT, "request timeout (HTTP 408)") from None
            raise LLMError(base.CLIENT_ERROR, f"HTTP {status}: {err.message}") from None
        except openai.OpenAIError as err:
            raise LLMError(base.BAD_RESPONSE, f"{type(err).__name__}: {err}") from None
        return parse_chat_response(
            body, backend=self.backend, model=self.model, latency=time.perf_counter() - t0
        )

    def close(self) -> None:
        self._client.close()
        super().close()
