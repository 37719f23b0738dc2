"""Processes an ops test starts: stopped whatever the test's outcome (`reaper`), their output read as it comes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

# The environment variable that marks every process a test starts (see Reaper).
REAP_MARK = "SAFELIGHT_TEST_REAP"


class Reaper:
    """Stops every process a test started, and everything those started, whatever the test's outcome.

    The supervisor under test starts its children and embedded servers in sessions of their own,
    out of reach of a process-group kill, so each process gets a mark in its environment instead
    (`REAP_MARK=<token>`), which everything below it inherits: teardown stops the processes it
    launched (SIGTERM: the supervisor stops its tree in order), then finds any survivor by the mark.
    valkey-server writes its process title over its environment, so processes are also found by
    their working directory, inside a directory given to `own` (the embedded servers run in theirs).
    """

    def __init__(self) -> None:
        self.token = uuid.uuid4().hex
        self.procs: list[subprocess.Popen[Any]] = []
        self.dirs: list[Path] = []

    def own(self, directory: Path) -> None:
        """Processes working inside `directory` are the test's too."""
        self.dirs.append(directory.resolve())

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        return {**(os.environ if base is None else base), REAP_MARK: self.token}

    def popen(self, argv: list[str], *, env: Mapping[str, str] | None = None, **kwargs: Any) -> subprocess.Popen[Any]:
        proc: subprocess.Popen[Any] = subprocess.Popen(argv, env=self.env(env), **kwargs)
        self.procs.append(proc)
        return proc

    def marked(self) -> list[int]:
        """Live processes (not zombies) carrying this reaper's mark."""
        needle = f"{REAP_MARK}={self.token}".encode()
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                with open(f"/proc/{entry}/environ", "rb") as fh:
                    if needle not in fh.read().split(b"\0") and not self._works_in_own_dir(entry):
                        continue
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    if fh.read().rpartition(b")")[2].split()[0] == b"Z":
                        continue
            except OSError:
                continue
            found.append(int(entry))
        return found

    def _works_in_own_dir(self, pid: str) -> bool:
        if not self.dirs:
            return False
        try:
            cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
        except OSError:
            return False
        return any(cwd == d or d in cwd.parents for d in self.dirs)

    def stop(self, timeout: float = 30.0) -> list[int]:
        """Stop everything; return the pids that had to be found by their mark (leaks, for the report)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        leaked = self.marked()
        for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            for pid in self.marked():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + grace
            while self.marked() and time.monotonic() < deadline:
                time.sleep(0.05)
        return leaked


class Output:
    """A process's combined output, read by a thread as it comes, so a test can wait for a line."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        self.proc = proc
        self.lines: list[str] = []
        self._seen = 0
        self._done = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        with contextlib.suppress(ValueError, OSError):  # the reaper closes the pipe after a failure
            for line in stream:
                with self._cond:
                    self.lines.append(line)
                    self._cond.notify_all()
        with self._cond:
            self._done = True
            self._cond.notify_all()

    @property
    def text(self) -> str:
        with self._cond:
            return "".join(self.lines)

    def wait_for(self, text: str, timeout: float = 60.0) -> str:
        """The next line (after the last one waited for) that contains `text`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for index in range(self._seen, len(self.lines)):
                    if text in self.lines[index]:
                        self._seen = index + 1
                        return self.lines[index]
                remaining = deadline - time.monotonic()
                if self._done or remaining <= 0:
                    why = "the process exited" if self._done else f"{timeout:.0f}s passed"
                    pytest.fail(f"{why} before a line with {text!r}:\n{''.join(self.lines)}")
                self._cond.wait(remaining)

    def finish(self, timeout: float = 60.0) -> str:
        self.proc.wait(timeout=timeout)
        self._thread.join(timeout=timeout)
        return self.text
