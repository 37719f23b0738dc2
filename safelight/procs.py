"""Process helpers shared by the embedded servers and the dev supervisor.

Every long-lived process we start gets its own session (so a Ctrl-C in the
terminal reaches only the supervisor, which then stops children in order) and,
on Linux, a parent-death signal (so a supervisor killed with SIGKILL does not
leave servers behind).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "cmdline",
    "free_port",
    "kill_group",
    "parent_death_hook",
    "port_is_open",
    "process_cwd",
    "stop_pid",
    "terminate",
]

_PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port the OS reports free right now (racy by nature; good enough locally)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def parent_death_hook(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A `preexec_fn` that makes the child receive `sig` when its parent dies.

    Linux ties the parent-death signal to the creating *thread*, so the hook is
    only used from the main thread; elsewhere the child simply outlives us.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    parent = os.getpid()

    def hook() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), sig)

    return hook


def kill_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Signal the process group led by `proc` (started with `start_new_session=True`)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def terminate(
    procs: list[subprocess.Popen[bytes]],
    *,
    timeout: float,
    sig: int = signal.SIGTERM,
) -> list[subprocess.Popen[bytes]]:
    """Send `sig` to every group, wait up to `timeout`, SIGKILL the rest.

    Returns the processes that had to be killed.
    """
    for proc in procs:
        if proc.poll() is None:
            kill_group(proc, sig)
    deadline = time.monotonic() + timeout
    killed: list[subprocess.Popen[bytes]] = []
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            killed.append(proc)
    for proc in killed:
        kill_group(proc, signal.SIGKILL)
        proc.wait()
    for proc in procs:
        # The leader is gone; sweep anything left in its group.
        kill_group(proc, signal.SIGKILL)
    return killed


def cmdline(pid: int) -> list[str] | None:
    """The argv of a live process (None when it is gone or a zombie)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            if fh.read().rpartition(b")")[2].split()[0] == b"Z":
                return None
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        return None
    except OSError:
        return _ps_cmdline(pid)
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part] or None


def process_cwd(pid: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


def _ps_cmdline(pid: int) -> list[str] | None:
    result = subprocess.run(["ps", "-o", "args=", "-p", str(pid)], capture_output=True, check=False)
    text = result.stdout.decode(errors="replace").strip()
    return text.split() if result.returncode == 0 and text else None


def stop_pid(pid: int, sig: int, *, timeout: float) -> None:
    """Signal a process that is not our child and wait for it to go (SIGKILL after `timeout`)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while cmdline(pid) is not None:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + timeout
            time.sleep(0.05)
