"""An on-disk response cache (SQLite) so a rerun is free and reproducible.

The key is a SHA-256 of the canonical JSON of everything that determines an answer:
backend, model, endpoint, messages, temperature, max_tokens, seed and sample index.
Nothing secret goes into it: the API key is never part of a key or a stored value.
Only successful completions are stored. Safe to share between threads (one connection
behind a lock) and between processes (SQLite's own locking, WAL journal).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sandbox.llm.base import Completion

CACHE_FILENAME = "llm-cache.sqlite"


class ResponseCache:
    """``get(key) -> Completion | None`` and ``put(key, completion)`` over one SQLite file."""

    def __init__(self, path: str | Path):
        path = Path(path)
        if path.suffix != ".sqlite":  # a folder was given
            path = path / CACHE_FILENAME
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=30.0)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS completions (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            self._db.commit()

    @staticmethod
    def key(payload: Mapping[str, Any]) -> str:
        canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM completions WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        data = json.loads(row[0])
        return Completion(
            text=data["text"],
            finish_reason=data["finish_reason"],
            usage=data["usage"],
            latency_s=float(data["latency_s"]),
            backend=data["backend"],
            model=data["model"],
        )

    def put(self, key: str, completion: Completion) -> None:
        if not completion.ok:
            return
        value = json.dumps(completion.to_dict(), ensure_ascii=False)
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO completions (key, value) VALUES (?, ?)", (key, value)
            )
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM completions").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
