"""Request JSON, decoded strictly: what PostgreSQL or GraphQL would choke on later is refused here, clearly.

json.loads accepts NaN and Infinity, lone surrogates and NUL in strings, and fails with a RecursionError
(a 500) on deep nesting; a body that is not UTF-8 raised UnicodeDecodeError (another 500). Each of these
is a client's mistake and is answered as one (HTTP 400, or the websocket protocol's invalid-message close).
"""

from __future__ import annotations

import json
import math
from typing import Any

from graph.documents import string_problem

__all__ = ["BadRequestJson", "decode"]


class BadRequestJson(json.JSONDecodeError):
    """Invalid request JSON; a JSONDecodeError so strawberry's websocket handlers treat it as one."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "", 0)
        self.reason = message

    def __str__(self) -> str:
        return self.reason


def _constant(name: str) -> Any:
    raise BadRequestJson(f"{name} is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400: json.loads would make it Infinity
        raise BadRequestJson(f"the number {text[:40]} is out of range")
    return value


def decode(data: str | bytes, *, max_depth: int) -> object:
    if isinstance(data, bytes | bytearray):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequestJson("the request body is not valid UTF-8") from None
    try:
        value = json.loads(data, parse_constant=_constant, parse_float=_float)
    except RecursionError:
        raise BadRequestJson(f"the JSON is nested deeper than {max_depth} levels") from None
    except BadRequestJson:
        raise
    except json.JSONDecodeError as error:
        raise BadRequestJson(f"the request is not valid JSON: {error}") from None
    _check(value, max_depth)
    return value


def _check(value: object, max_depth: int) -> None:
    """Depth at most `max_depth`; no NUL and no lone surrogate in any string (keys included)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_string(item)
        elif isinstance(item, dict | list):
            if depth > max_depth:
                raise BadRequestJson(f"the JSON is nested deeper than {max_depth} levels (SAFELIGHT_MAX_JSON_DEPTH)")
            if isinstance(item, dict):
                for key, inner in item.items():
                    _check_string(key)
                    stack.append((inner, depth + 1))
            else:
                stack.extend((inner, depth + 1) for inner in item)


def _check_string(text: str) -> None:
    problem = string_problem(text)
    if problem is not None:
        raise BadRequestJson(problem)
