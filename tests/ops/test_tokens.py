"""safelight.tokens: the --expires-in lifetimes the CLI takes (creating and revoking tokens through the CLI is
tested in tests/graph/test_tokens.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from safelight.tokens import parse_lifetime
from settings import ConfigError


@pytest.mark.parametrize(
    ("text", "lifetime"),
    [
        ("3600", timedelta(hours=1)),
        ("3600s", timedelta(hours=1)),
        ("90m", timedelta(minutes=90)),
        ("12h", timedelta(hours=12)),
        (" 30 d ", timedelta(days=30)),
    ],
)
def test_lifetimes_in_seconds_minutes_hours_and_days(text: str, lifetime: timedelta) -> None:
    assert parse_lifetime(text) == lifetime


@pytest.mark.parametrize("text", ["", "0", "0d", "-5m", "1.5h", "2w", "h", "12 hours", "1e3"])
def test_anything_else_is_refused_naming_the_option(text: str) -> None:
    with pytest.raises(ConfigError, match="--expires-in"):
        parse_lifetime(text)
