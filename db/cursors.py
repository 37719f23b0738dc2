"""Opaque page cursors over generations, newest first: a position `(created_at, id)`."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime

from db.models import Generation

__all__ = ["decode_cursor", "encode_cursor"]


def encode_cursor(generation: Generation) -> str:
    raw = f"{generation.created_at.isoformat()}|{generation.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """Raise ValueError for anything that is not a cursor we issued."""
    try:
        created, _, ident = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(created), uuid.UUID(ident)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"malformed cursor {cursor!r}") from exc
