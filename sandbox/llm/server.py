"""An OpenAI-compatible HTTP server over the offline backends, on 127.0.0.1 only.

``sandbox serve-llm --backend scripted|replay [--transcripts PATH] [--port P]`` serves
``POST /v1/chat/completions`` and ``GET /v1/models`` with the standard library's
:class:`~http.server.ThreadingHTTPServer`, so the official ``openai`` client (or any
OpenAI-compatible tool) can talk to the scripted persona or to recorded transcripts:

    sandbox serve-llm --backend replay --transcripts ../shared/data/tinmen --port 8000
    OPENAI_BASE_URL=http://127.0.0.1:8000/v1 python my_agent.py   # model="gpt-4"

The request's ``model`` picks the replayed model; repeated identical requests get the
next unused recording (sampling without replacement in arrival order under the
server's seed), and ``n`` > 1 returns that many. Requests are never logged with their
headers, so an ``Authorization`` key sent by a client is never written anywhere.

For tests of client reliability, ``faults`` makes the server misbehave on purpose, one
fault per request in order: ``500``, ``429`` (with ``Retry-After``), ``hang`` (answer
only after ``hang_s``), ``garbage`` (a 200 whose body is not JSON), ``empty_choices``,
``empty_content``, ``drop`` (close the connection without an answer), ``ok`` (answer
normally). After the list the server answers normally, or keeps repeating
``fault_forever`` when that is set. ``latency_s`` delays every answer, to stand in for a
remote model's think time (benchmarks of concurrency).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sandbox.llm.base import ChatModel, LLMError

HOST = "127.0.0.1"
FAULTS = ("ok", "500", "429", "hang", "garbage", "empty_choices", "empty_content", "drop")


class FaultPlan:
    """Faults to inject, one per chat request, in order (thread-safe)."""

    def __init__(self, faults: Sequence[str] = (), *, forever: str | None = None):
        for name in [*faults, *([forever] if forever else [])]:
            if name not in FAULTS:
                raise ValueError(f"unknown fault {name!r}; valid: {', '.join(FAULTS)}")
        self._queue = list(faults)
        self._forever = forever
        self._lock = threading.Lock()
        self.served: list[str] = []

    def next(self) -> str:
        with self._lock:
            fault = self._queue.pop(0) if self._queue else (self._forever or "ok")
            self.served.append(fault)
            return fault


class LLMServer(ThreadingHTTPServer):
    """The server object: ``url`` is the OpenAI ``base_url`` (ending in ``/v1``)."""

    daemon_threads = True
    block_on_close = False

    def __init__(
        self,
        model_factory: Callable[[str], ChatModel],
        *,
        port: int = 0,
        model_names: Sequence[str] = (),
        faults: FaultPlan | None = None,
        retry_after_s: float = 0.0,
        hang_s: float = 30.0,
        latency_s: float = 0.0,
        seed: int = 0,
        verbose: bool = False,
    ):
        super().__init__((HOST, port), _Handler)
        self.latency_s = latency_s
        self.model_factory = model_factory
        self.model_names = list(model_names)
        self.faults = faults or FaultPlan()
        self.retry_after_s = retry_after_s
        self.hang_s = hang_s
        self.seed = seed
        self.verbose = verbose
        self.stopping = threading.Event()
        self._models: dict[str, ChatModel] = {}
        self._counters: dict[str, int] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}/v1"

    def model(self, name: str) -> ChatModel:
        with self._lock:
            if name not in self._models:
                self._models[name] = self.model_factory(name)
            return self._models[name]

    def next_sample(self, key: str) -> int:
        with self._lock:
            index = self._counters.get(key, 0)
            self._counters[key] = index + 1
            return index

    # -- running it --------------------------------------------------------------------
    def start(self) -> LLMServer:
        """Serve on a background thread (for tests and benchmarks)."""
        self._thread = threading.Thread(target=self.serve_forever, daemon=True, name="llm-server")
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> LLMServer:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def handle_error(self, request: Any, client_address: Any) -> None:
        if self.verbose:
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: LLMServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # one small answer per request: no 40 ms ACK stalls

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        if self.server.verbose:  # the request line only: never headers (no keys in logs)
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload, ensure_ascii=False).encode("utf-8"), headers)

    def _error(self, status: int, message: str, code: str, kind: str = "invalid_request_error"):
        self._json(status, {"error": {"message": message, "type": kind, "code": code}})

    def do_GET(self) -> None:  # noqa: N802
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            names = self.server.model_names or ["default"]
            self._json(
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": n, "object": "model", "created": 0, "owned_by": "sandbox"}
                        for n in names
                    ],
                },
            )
        else:
            self._error(404, f"no route {self.path}", "not_found")

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._error(404, f"no route {self.path}", "not_found")
            return
        fault = self.server.faults.next()
        if fault == "500":
            self._error(500, "injected server error", "server_error", "server_error")
            return
        if fault == "429":
            self._json(
                429,
                {"error": {"message": "injected rate limit", "type": "rate_limit", "code": "429"}},
                {"Retry-After": f"{self.server.retry_after_s:g}"},
            )
            return
        if fault == "drop":
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if fault == "hang":
            self.server.stopping.wait(self.server.hang_s)
        if self.server.latency_s > 0:  # a remote model's think time, for benchmarks
            self.server.stopping.wait(self.server.latency_s)
        if fault == "garbage":
            self._send(200, b'{"id": "chatcmpl-x", "choices": [ this is not json')
            return
        try:
            body = json.loads(raw or b"{}")
            messages = body["messages"]
            if not isinstance(messages, list) or not messages:
                raise ValueError("messages must be a non-empty list")
            messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]
        except (ValueError, KeyError, TypeError) as err:
            self._error(400, f"bad request: {err}", "bad_request")
            return
        name = str(body.get("model") or "default")
        temperature = float(body.get("temperature", 1.0))
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 512)
        n = max(1, int(body.get("n") or 1))
        try:
            model = self.server.model(name)
            key = json.dumps([name, temperature, messages])
            choices, prompt_tokens, completion_tokens = [], 0, 0
            for i in range(n):
                done = model.complete(
                    messages,
                    temperature=temperature,
                    max_tokens=max_tokens,
                    seed=self.server.seed,  # the server's draws; a client's seed is a hint
                    sample=self.server.next_sample(key),
                )
                text = "" if fault == "empty_content" else done.text
                choices.append(
                    {
                        "index": i,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": done.finish_reason,
                    }
                )
                prompt_tokens = done.usage.get("prompt_tokens", 0)
                completion_tokens += done.usage.get("completion_tokens", 0)
        except LLMError as err:
            self._error(404 if err.kind == "no_recording" else 400, str(err), err.kind)
            return
        except ValueError as err:
            self._error(400, str(err), "bad_request")
            return
        self._json(
            200,
            {
                "id": f"chatcmpl-sandbox-{time.monotonic_ns()}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": done.model,
                "choices": [] if fault == "empty_choices" else choices,
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
        )


def model_factory(
    backend: str, transcripts: str | Path | None = None
) -> tuple[Callable[[str], ChatModel], list[str]]:
    """``(name -> ChatModel, model names)`` for the server. Scripted ignores the name;
    replay serves the recordings of the named model (``default``/``auto``: the only one)."""
    if backend == "scripted":
        from sandbox.llm.scripted import PERSONA_MODEL, ScriptedChatModel

        return (lambda name: ScriptedChatModel()), [PERSONA_MODEL]
    if backend == "replay":
        from sandbox.llm.replay import ReplayChatModel, load_recordings

        if transcripts is None:
            raise ValueError("--backend replay needs --transcripts PATH")
        recordings = load_recordings(transcripts)

        def make(name: str) -> ChatModel:
            model = "auto" if name in ("default", "auto", "") else name
            return ReplayChatModel(model, recordings=recordings, transcripts=transcripts)

        return make, sorted({r.model for r in recordings})
    raise ValueError(f"unknown backend {backend!r}; valid: scripted, replay")


def serve(
    backend: str = "scripted",
    *,
    transcripts: str | Path | None = None,
    port: int = 0,
    faults: Sequence[str] = (),
    fault_forever: str | None = None,
    retry_after_s: float = 0.0,
    hang_s: float = 30.0,
    latency_s: float = 0.0,
    seed: int = 0,
    verbose: bool = False,
) -> LLMServer:
    """Build (not start) a server; ``with serve(...) as srv:`` runs it on a thread."""
    factory, names = model_factory(backend, transcripts)
    return LLMServer(
        factory,
        port=port,
        model_names=names,
        faults=FaultPlan(faults, forever=fault_forever),
        retry_after_s=retry_after_s,
        hang_s=hang_s,
        latency_s=latency_s,
        seed=seed,
        verbose=verbose,
    )


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``sandbox serve-llm``."""
    parser.add_argument(
        "--backend", choices=["scripted", "replay"], default="scripted", help="what answers"
    )
    parser.add_argument(
        "--transcripts", default=None, help="recorded transcripts (.csv/.jsonl or a folder)"
    )
    parser.add_argument("--host", choices=[HOST], default=HOST, help="bind address (loopback only)")
    parser.add_argument("--port", type=int, default=8000, help="port (0 = any free port)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the replayed draws")
    parser.add_argument(
        "--faults",
        default="",
        help=f"comma-separated faults for the first requests, for testing clients ({', '.join(FAULTS)})",
    )
    parser.add_argument(
        "--fault-forever", default=None, choices=FAULTS, help="fault repeated after --faults"
    )
    parser.add_argument("--retry-after", type=float, default=1.0, help="Retry-After of a 429 (s)")
    parser.add_argument("--hang-s", type=float, default=30.0, help="how long 'hang' waits (s)")
    parser.add_argument(
        "--latency", type=float, default=0.0, help="simulated think time per request (s)"
    )
    parser.add_argument("--verbose", action="store_true", help="log request lines to stderr")


def serve_from_args(args: argparse.Namespace) -> int:
    """Run ``sandbox serve-llm``: print the base URL on one line, serve until interrupted."""
    faults = [f.strip() for f in (args.faults or "").split(",") if f.strip()]
    try:
        server = serve(
            args.backend,
            transcripts=args.transcripts,
            port=args.port,
            faults=faults,
            fault_forever=args.fault_forever,
            retry_after_s=args.retry_after,
            hang_s=args.hang_s,
            latency_s=args.latency,
            seed=args.seed,
            verbose=args.verbose,
        )
    except (ValueError, FileNotFoundError, OSError) as err:
        print(f"sandbox serve-llm: {err}", file=sys.stderr)
        return 2
    print(server.url, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stopping.set()
        server.server_close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sandbox.llm.server`` (the same as ``sandbox serve-llm``)."""
    parser = argparse.ArgumentParser(prog="sandbox serve-llm", description=__doc__.split("\n")[0])
    add_cli_arguments(parser)
    return serve_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
