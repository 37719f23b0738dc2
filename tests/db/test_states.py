from __future__ import annotations

import pytest

from db.states import TERMINAL, Status, allowed_sources, can_transition


@pytest.mark.parametrize(
    ("current", "target", "allowed"),
    [
        (Status.QUEUED, Status.RUNNING, True),
        (Status.QUEUED, Status.CANCELLED, True),
        (Status.QUEUED, Status.SUCCEEDED, False),
        (Status.RUNNING, Status.SUCCEEDED, True),
        (Status.RUNNING, Status.QUEUED, True),
        (Status.CANCELLING, Status.CANCELLED, True),
        (Status.CANCELLING, Status.SUCCEEDED, False),
        (Status.CANCELLED, Status.RUNNING, False),
        (Status.SUCCEEDED, Status.QUEUED, False),
        (Status.FAILED, Status.QUEUED, True),
    ],
)
def test_transitions(current: Status, target: Status, allowed: bool) -> None:
    assert can_transition(current, target) is allowed


def test_nothing_leaves_succeeded() -> None:
    assert all(not can_transition(Status.SUCCEEDED, target) for target in Status)


def test_allowed_sources_is_the_inverse() -> None:
    for target in Status:
        for source in Status:
            assert (source in allowed_sources(target)) == can_transition(source, target)
    assert {Status.SUCCEEDED, Status.FAILED, Status.CANCELLED} == TERMINAL
