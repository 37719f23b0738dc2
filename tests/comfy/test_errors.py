"""comfy.errors: which failures are worth trying again, and the few words people see for each
(parsing ComfyUI's 400 answers into PromptValidationError is tests/comfy/test_prompt_errors.py)."""

from __future__ import annotations

import pytest

from comfy.errors import (
    ComfyError,
    ComfyProtocolError,
    ComfyResponseTooLarge,
    ComfyUnavailable,
    ComfyUnreachable,
    NodeError,
    PromptValidationError,
)


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (ComfyUnavailable("503"), True),
        (ComfyUnreachable("refused"), True),
        (ComfyProtocolError("not json"), False),
        (ComfyResponseTooLarge("too big"), False),
        (PromptValidationError("prompt_no_outputs", "no outputs", []), False),
    ],
)
def test_only_an_unavailable_backend_is_worth_trying_again(error: ComfyError, retryable: bool) -> None:
    assert error.retryable is retryable


def test_the_reason_people_see_names_no_url_and_no_long_text() -> None:
    url = "http://ops:s3cret@comfy.internal:8188"
    unreachable = ComfyUnreachable(f"connect to {url} refused", sent=False, why="connection refused")
    assert unreachable.reason == "unreachable (connection refused)"
    assert (unreachable.sent, ComfyUnreachable("reset").sent, ComfyUnreachable("reset").why) == (
        False,
        True,
        "no answer",
    )
    answered = ComfyUnavailable(f"{url}/prompt answered 502", status=502, path="/prompt")
    assert answered.reason == "HTTP 502 from /prompt"
    assert ComfyUnavailable("x", status=500).reason == "HTTP 500 from /"
    garbled = ComfyProtocolError("<html>" + "x" * 1000)
    assert (
        garbled.reason.startswith("unexpected answer: <html>")
        and len(garbled.reason) <= len("unexpected answer: ") + 200
    )
    assert ComfyError("y" * 1000).reason == "y" * 200
    assert "s3cret" not in unreachable.reason + answered.reason


def test_a_node_is_labelled_by_id_and_class_as_far_as_known() -> None:
    assert NodeError("2", "KSampler", "seed", "bad").node_label == "2 (KSampler)"
    assert NodeError("2", None, None, "bad").node_label == "2"
    assert NodeError(None, "NoSuchNode", None, "missing").node_label == "NoSuchNode"
    assert NodeError(None, None, None, "?").node_label is None
