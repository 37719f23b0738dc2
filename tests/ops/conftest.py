from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ops.reaper import Reaper


@pytest.fixture
def server_dir() -> Iterator[Path]:
    """A scratch directory for embedded PostgreSQL, outside pytest's tmp_path.

    Under root the server runs as another user, so the directory's parents are
    opened to others; pytest resets its own base directory to 0700 whenever a
    session starts, which would pull the floor from under a running server.
    """
    path = Path(tempfile.mkdtemp(prefix="safelight-ops-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def reaper() -> Iterator[Reaper]:
    """Start processes through this; teardown stops them and everything they started."""
    reaper = Reaper()
    try:
        yield reaper
    finally:
        reaper.stop()
