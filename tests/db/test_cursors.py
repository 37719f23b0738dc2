"""db.cursors: a cursor names a position; anything else is a clear ValueError."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from db.cursors import decode_cursor, encode_cursor
from db.models import Generation


def test_a_cursor_names_the_position_of_its_generation() -> None:
    generation = Generation(id=uuid.uuid4(), created_at=datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC))
    assert decode_cursor(encode_cursor(generation)) == (generation.created_at, generation.id)


@pytest.mark.parametrize("cursor", ["not-a-cursor", "", "!!!", "MjAyNnxub3QtYS11dWlk"])
def test_anything_else_is_a_malformed_cursor(cursor: str) -> None:
    with pytest.raises(ValueError, match="malformed cursor"):
        decode_cursor(cursor)
