from __future__ import annotations

import asyncio
import json
import logging

import pytest

from jobs.logs import configure_logging, generation_context


@pytest.fixture
def restore_logging():  # type: ignore[no-untyped-def]
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
async def test_every_line_of_a_job_names_its_generation(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", json_lines=True)
    log = logging.getLogger("jobs.test")

    async def job(gid: str) -> None:
        generation_context(gid)
        await asyncio.sleep(0)
        log.info("working on it")

    await asyncio.gather(asyncio.create_task(job("g-1")), asyncio.create_task(job("g-2")))
    log.info("outside any job")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert sorted((line["generation_id"], line["message"]) for line in lines) == [
        ("-", "outside any job"),
        ("g-1", "working on it"),
        ("g-2", "working on it"),
    ]
