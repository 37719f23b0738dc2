"""The reaper finds what a failed test left running, even outside its process group or environment."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from safelight.procs import cmdline
from tests.ops.reaper import Reaper

# A parent that ignores SIGTERM and starts two processes in sessions of their own: one keeps the
# environment (and so the mark), one gets an empty environment but works in the owned directory
# (as valkey-server, which writes its title over its environment).
TREE = """
import json, os, signal, subprocess, sys, time
marked = subprocess.Popen(["sleep", "600"], start_new_session=True)
unmarked = subprocess.Popen(["sleep", "600"], start_new_session=True, env={}, cwd=sys.argv[1])
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # after the children: they would inherit the ignore
with open(sys.argv[2] + ".tmp", "w") as fh:
    json.dump([os.getpid(), marked.pid, unmarked.pid], fh)
os.replace(sys.argv[2] + ".tmp", sys.argv[2])
time.sleep(600)
"""


def test_reaper_stops_a_tree_that_left_its_session_and_environment(tmp_path: Path) -> None:
    workdir = tmp_path / "server"
    workdir.mkdir()
    pids_file = tmp_path / "pids.json"
    reaper = Reaper()
    reaper.own(workdir)
    try:
        reaper.popen([sys.executable, "-c", TREE, str(workdir), str(pids_file)])
        deadline = time.monotonic() + 30
        while not pids_file.exists():
            assert time.monotonic() < deadline, "the tree did not start"
            time.sleep(0.05)
        pids = json.loads(pids_file.read_text())
        assert set(pids) <= set(reaper.marked())
    finally:
        leaked = reaper.stop(timeout=1.0)
    assert set(pids[1:]) <= set(leaked)  # found by mark and by directory, not through their parent
    assert [pid for pid in pids if cmdline(pid) is not None] == []
