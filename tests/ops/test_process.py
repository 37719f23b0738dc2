"""What `safelight api` and `safelight worker` do to their process before serving."""

from __future__ import annotations

import subprocess
import sys


def test_server_processes_freeze_their_startup_heap_and_collect_young_objects_rarely() -> None:
    # In a child process: freezing the heap of the test process itself would change every other test.
    code = (
        "import gc; from safelight.cli import _GC_YOUNG_THRESHOLD, _freeze_startup_heap; "
        "before = gc.get_threshold(); _freeze_startup_heap(); after = gc.get_threshold(); "
        "print(gc.get_freeze_count() > 1000, after[0] == _GC_YOUNG_THRESHOLD > before[0], after[1:] == before[1:])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "True", "True"], out
