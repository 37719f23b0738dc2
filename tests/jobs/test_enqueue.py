"""Job ids: one per generation attempt, and the attempt read back from one."""

from __future__ import annotations

import uuid

from jobs.enqueue import attempt_of, job_id_for


def test_the_attempt_is_read_back_from_a_job_id() -> None:
    gid = uuid.uuid4()
    assert attempt_of(job_id_for(gid, 3)) == 3
    assert attempt_of(job_id_for(gid, 12, "r-0123456789")) == 12
    for other in ("", "gen", f"gen:{gid}", f"gen:{gid}:x", f"cron:{gid}:1", "4f2c9b"):
        assert attempt_of(other) is None
