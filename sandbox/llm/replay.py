"""The ``replay`` backend: answers from recorded transcripts.

Two formats are read:

* our JSONL, one object a line: ``{"messages": [{"role": ..., "content": ...}, ...],
  "completion": str, "model": str, "temperature": float, "scenario": str (optional),
  "condition": str (optional)}`` (write it with :func:`write_jsonl`);
* the Tin Men CSV format (Phelps & Ranson 2023, ``principal-agent.csv``): columns
  ``Condition``, ``Transcript`` (a Python-literal ``[prompt, completion]``), ``Model``,
  ``Temperature``. Rows whose completion the original code could not parse hold one
  string, ``Cannot determine choice from {<the assistant message as JSON>}``; the
  completion is recovered from that JSON (its prompt is the cell's prompt).

A request is matched to recordings by model, temperature and *cell*: first by its exact
prompt (whitespace-normalised), then by the principal-agent (scenario, condition) read
from the prompt (:func:`classify_prompt`). Within a cell, sample ``i`` under seed ``s``
is recording ``perm[i]`` of a permutation drawn from ``(s, cell)``: draws are without
replacement, reproducible, and independent of the order requests arrive in. A request
with no matching recording, or a sample index past the end, is an
:class:`~sandbox.llm.base.LLMError` of kind ``no_recording`` naming what is recorded.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sandbox.llm import base
from sandbox.llm.base import ChatModel, Completion, LLMError, Message, estimate_tokens

TINMEN_ERROR_PREFIX = "Cannot determine choice from "

# The two scenarios of the paper, recognised by their query results (original ids/order).
_SCENARIO_MARKERS = {
    "film": ("[Product id: 1]. Festliches", "[Product id: 2]. Four weddings"),
    "car": ("[Product id: 1].  Tesla", "[Product id: 2].  Porche Cayenne"),
}
# Words that identify the scenario of a completion recorded without its prompt.
_COMPLETION_WORDS = {
    "car": ("tesla", "porche", "porsche", "vehicle", "shell oil"),
    "film": ("film", "romcom", "nazi", "four weddings", "festliches"),
}
# Who is shown the Explanation, from the form's wording in the paper's prompts.
_CONDITION_PATTERNS = (
    ("both", re.compile(r"shared with both\b", re.I)),
    ("user-only", re.compile(r"shared only with the customer", re.I)),
    (
        "principal-only",
        re.compile(r"shared with only with|shared only with (?!the customer)", re.I),
    ),
    ("neither", re.compile(r"strictly confidential|not shared with (?:either|anyone)", re.I)),
)


@dataclass(frozen=True)
class Recording:
    """One recorded completion and what it answered."""

    completion: str
    model: str
    temperature: float | None
    prompt: str | None = None
    scenario: str | None = None
    condition: str | None = None
    source: str = ""


def _normalise(text: str) -> str:
    return " ".join(text.split())


def prompt_of(messages: Sequence[Message]) -> str:
    """The text a recording is matched on: every message's content, in order."""
    return "\n".join(str(m["content"]) for m in messages)


def classify_prompt(prompt: str) -> tuple[str, str] | None:
    """(scenario, condition) of a principal-agent prompt in the paper's wording, else None."""
    scenario = next(
        (name for name, marks in _SCENARIO_MARKERS.items() if all(m in prompt for m in marks)),
        None,
    )
    if scenario is None:
        return None
    form = re.search(r"Explanation:[^\n]*\(([^)]*)\)", prompt)
    if form is None:
        return None
    for condition, pattern in _CONDITION_PATTERNS:
        if pattern.search(form.group(1)):
            return scenario, condition
    return None


def _scenario_of_completion(text: str) -> str | None:
    low = text.lower()
    hits = {name: sum(w in low for w in words) for name, words in _COMPLETION_WORDS.items()}
    best = max(hits, key=hits.get)
    others = [v for k, v in hits.items() if k != best]
    return best if hits[best] > 0 and all(hits[best] > v for v in others) else None


def read_tinmen_csv(path: str | Path) -> list[Recording]:
    """Recordings from one Tin Men ``principal-agent.csv`` file."""
    path = Path(path)
    out: list[Recording] = []
    with path.open(encoding="utf-8", newline="") as handle:
        for lineno, row in enumerate(csv.DictReader(handle), start=2):
            missing = {"Condition", "Transcript", "Model", "Temperature"} - set(row)
            if missing:
                raise ValueError(f"{path}: not a Tin Men CSV (no column {sorted(missing)[0]!r})")
            try:
                turns = ast.literal_eval(row["Transcript"])
            except (ValueError, SyntaxError) as err:
                raise ValueError(f"{path}:{lineno}: unreadable Transcript ({err})") from None
            prompt: str | None
            if len(turns) >= 2:
                prompt, completion = str(turns[0]), str(turns[1])
            elif len(turns) == 1 and str(turns[0]).startswith(TINMEN_ERROR_PREFIX):
                prompt = None
                try:
                    message = json.loads(str(turns[0])[len(TINMEN_ERROR_PREFIX) :])
                    completion = str(message.get("content") or "")
                except (json.JSONDecodeError, AttributeError):
                    continue
            else:
                continue  # a prompt with no completion at all: nothing to replay
            if not completion:
                continue
            cell = classify_prompt(prompt) if prompt else None
            scenario = cell[0] if cell else _scenario_of_completion(completion)
            out.append(
                Recording(
                    completion=completion,
                    model=row["Model"],
                    temperature=float(row["Temperature"]),
                    prompt=prompt,
                    scenario=scenario,
                    condition=row["Condition"].strip(),
                    source=f"{path.name}:{lineno}",
                )
            )
    return out


def read_jsonl(path: str | Path) -> list[Recording]:
    """Recordings from our JSONL format (see the module docstring)."""
    path = Path(path)
    out = []
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                messages = item.get("messages")
                prompt = prompt_of(messages) if messages else item.get("prompt")
                temperature = item.get("temperature")
                out.append(
                    Recording(
                        completion=str(item["completion"]),
                        model=str(item.get("model", "unknown")),
                        temperature=None if temperature is None else float(temperature),
                        prompt=prompt,
                        scenario=item.get("scenario"),
                        condition=item.get("condition"),
                        source=f"{path.name}:{lineno}",
                    )
                )
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise ValueError(f"{path}:{lineno}: not a transcript record ({err})") from None
    return out


def write_jsonl(path: str | Path, records: Iterable[Mapping[str, Any]]) -> Path:
    """Write records (``messages``, ``completion``, ``model``, ``temperature``, ...) as JSONL."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for rec in records:
            if "completion" not in rec:
                raise ValueError("every record needs a 'completion'")
            handle.write(json.dumps(dict(rec), ensure_ascii=False) + "\n")
    return path


def load_recordings(path: str | Path) -> list[Recording]:
    """Every recording under ``path`` (a .csv / .jsonl file, or a folder of them)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"transcripts not found: {path}")
    files = sorted(path.glob("*")) if path.is_dir() else [path]
    out: list[Recording] = []
    for f in files:
        if f.suffix == ".csv":
            out.extend(read_tinmen_csv(f))
        elif f.suffix == ".jsonl":
            out.extend(read_jsonl(f))
    if not out:
        raise FileNotFoundError(f"no .csv or .jsonl transcripts in {path}")
    return out


def _cell_of(rec: Recording) -> tuple[str, ...]:
    if rec.scenario and rec.condition:
        return ("cell", rec.scenario, rec.condition)
    if rec.prompt:
        cell = classify_prompt(rec.prompt)
        if cell:
            return ("cell", *cell)
        return ("prompt", _normalise(rec.prompt))
    return ("unmatched",)


def _stable_int(parts: Sequence[Any]) -> int:
    digest = hashlib.sha256(json.dumps(list(parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little")


class ReplayChatModel(ChatModel):
    """Serve recorded completions; see the module docstring for the matching rule."""

    backend = "replay"

    def __init__(
        self,
        model: str = "auto",
        *,
        transcripts: str | Path | None = None,
        recordings: Sequence[Recording] | None = None,
        **kwargs: Any,
    ):
        super().__init__(model, **kwargs)
        if recordings is None:
            if transcripts is None:
                raise ValueError("replay needs transcripts (a path) or recordings")
            recordings = load_recordings(transcripts)
        self.transcripts = None if transcripts is None else str(transcripts)
        self.recordings = list(recordings)
        self._index: dict[tuple, list[Recording]] = {}
        for rec in recordings:
            key = (rec.model, rec.temperature, _cell_of(rec))
            self._index.setdefault(key, []).append(rec)
        self.models = sorted({rec.model for rec in recordings})

    def for_model(self, model: str) -> ReplayChatModel:
        """The same recordings, reliability settings and counter, serving ``model``."""
        self.resolve_model(model)
        return ReplayChatModel(
            model,
            recordings=self.recordings,
            transcripts=self.transcripts,
            retry=self.retry,
            cache=self.cache,
            counter=self.counter,
        )

    # -- what is recorded --------------------------------------------------------------
    def resolve_model(self, model: str | None = None) -> str:
        model = self.model if model is None else model
        if model not in ("auto", "", None):
            if model not in self.models:
                raise LLMError(
                    base.NO_RECORDING,
                    f"no recordings of model {model!r}; recorded: {', '.join(self.models)}",
                )
            return model
        if len(self.models) == 1:
            return self.models[0]
        raise LLMError(
            base.NO_RECORDING,
            f"several models are recorded ({', '.join(self.models)}); name one",
        )

    def cells(self) -> list[dict[str, Any]]:
        """One row per recorded (model, temperature, scenario, condition) with its count."""
        rows = []
        for (model, temp, cell), recs in sorted(self._index.items(), key=lambda kv: str(kv[0])):
            if cell[0] == "cell":
                rows.append(
                    {
                        "model": model,
                        "temperature": temp,
                        "scenario": cell[1],
                        "condition": cell[2],
                        "n": len(recs),
                    }
                )
        return rows

    def count(self, model: str, temperature: float, scenario: str, condition: str) -> int:
        return len(self._group(model, temperature, ("cell", scenario, condition)))

    def temperatures(self, model: str) -> list[float]:
        return sorted({t for (m, t, _), _r in self._index.items() if m == model and t is not None})

    def _group(self, model: str, temperature: float | None, cell: tuple) -> list[Recording]:
        for (m, t, c), recs in self._index.items():
            if m != model or c != cell:
                continue
            if t is None or temperature is None or abs(t - temperature) < 1e-9:
                return recs
        return []

    def lookup(
        self, messages: Sequence[Message], *, temperature: float, seed: int | None, sample: int
    ) -> Recording:
        model = self.resolve_model()
        prompt = prompt_of(messages)
        candidates = [("prompt", _normalise(prompt))]
        cell = classify_prompt(prompt)
        if cell is not None:
            candidates.insert(0, ("cell", *cell))
        for key in candidates:
            recs = self._group(model, temperature, key)
            if not recs:
                continue
            if sample < 0 or sample >= len(recs):
                raise LLMError(
                    base.NO_RECORDING,
                    f"only {len(recs)} recordings of model={model} temperature={temperature:g} "
                    f"for {self._describe(key)}; sample {sample} was requested",
                )
            rng = np.random.default_rng([0 if seed is None else int(seed), _stable_int(key)])
            return recs[int(rng.permutation(len(recs))[sample])]
        recorded = ", ".join(
            f"{r['model']}@{r['temperature']:g}/{r['scenario']}/{r['condition']}"
            for r in self.cells()
        )
        what = self._describe(candidates[0]) if cell else "this prompt"
        raise LLMError(
            base.NO_RECORDING,
            f"no recording of model={model} temperature={temperature:g} for {what}; "
            f"recorded cells: {recorded or '(none: only exact-prompt recordings)'}",
        )

    @staticmethod
    def _describe(key: tuple) -> str:
        if key[0] == "cell":
            return f"scenario={key[1]} condition={key[2]}"
        return "this exact prompt"

    def identity(self) -> dict[str, Any]:
        return {"backend": self.backend, "model": self.model, "transcripts": self.transcripts}

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
        t0 = time.perf_counter()
        rec = self.lookup(messages, temperature=temperature, seed=seed, sample=sample)
        return Completion(
            text=rec.completion,
            finish_reason="stop",
            usage={
                "prompt_tokens": estimate_tokens(prompt_of(messages)),
                "completion_tokens": estimate_tokens(rec.completion),
            },
            latency_s=time.perf_counter() - t0,
            backend=self.backend,
            model=rec.model,
        )
