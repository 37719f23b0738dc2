"""What the fake saw, for tests and benchmarks: counters and a timing log of arrivals and runs."""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

_MAX_EVENTS = 50_000
MAX_EXECUTIONS = 50_000
"""Prompt ids whose executions are counted; the oldest is forgotten (counts 0 again) beyond this."""


@dataclass(frozen=True)
class Instant:
    monotonic: float
    wall: float

    @classmethod
    def now(cls) -> Instant:
        return cls(time.monotonic(), time.time())


@dataclass
class Stats:
    executions: Counter[str] = field(default_factory=Counter)
    submits: int = 0
    interrupts: int = 0
    deletes: int = 0
    uploads: Counter[str] = field(default_factory=Counter)
    """`POST /upload/image` and `/upload/mask` requests per file name as sent, duplicates included."""
    upload_writes: Counter[str] = field(default_factory=Counter)
    """Uploads that wrote a file (not a duplicate of the same name and content), per stored name."""
    events: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=_MAX_EVENTS))

    def count_execution(self, prompt_id: str) -> None:
        self.executions[prompt_id] += 1
        if len(self.executions) > MAX_EXECUTIONS:
            del self.executions[next(iter(self.executions))]

    def record(self, event: str, at: Instant, **details: Any) -> None:
        """`at` is when the request arrived (or the run event happened), not when it was handled."""
        self.events.append({"event": event, "monotonic": at.monotonic, "wall": at.wall, **details})

    def as_dict(self) -> dict[str, Any]:
        return {
            "executions": dict(self.executions),
            "submits": self.submits,
            "interrupts": self.interrupts,
            "deletes": self.deletes,
            "uploads": dict(self.uploads),
            "upload_writes": dict(self.upload_writes),
            "events": list(self.events),
        }
