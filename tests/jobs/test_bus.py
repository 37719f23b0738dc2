"""BusEvent's wire form: compact JSON that decodes to the same event."""

from __future__ import annotations

import json
import uuid

from db.events import EventKind
from jobs.bus import BusEvent


def test_encode_is_compact_json_and_round_trips() -> None:
    event = BusEvent(uuid.uuid4(), uuid.uuid4(), 7, EventKind.PROGRESS, {"percent": 12.5, "node": "ü"}, 1.5)
    raw = event.encode()
    assert raw == json.dumps(
        {
            "g": str(event.generation_id),
            "o": str(event.owner_id),
            "s": 7,
            "k": EventKind.PROGRESS.value,
            "p": {"percent": 12.5, "node": "ü"},
            "t": 1.5,
        },
        separators=(",", ":"),
    )
    assert " " not in raw and "\\u00fc" in raw
    assert BusEvent.decode(raw) == event
