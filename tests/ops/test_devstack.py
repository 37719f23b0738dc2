"""The `safelight dev` supervisor: the lock, and the lifecycle with stand-in children."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from safelight.devstack import AlreadyRunning, DevLock
from safelight.procs import cmdline

STANDIN = Path(__file__).with_name("standin_stack.py")


def _safelight_env(state_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFELIGHT_")}
    env.update(SAFELIGHT_STATE_DIR=str(state_dir), **extra)
    return env


def _lock_is_free(path: Path) -> bool:
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def _gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while cmdline(pid) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_lock_is_exclusive_and_records_pid(tmp_path: Path) -> None:
    path = tmp_path / "state" / "dev.lock"
    with DevLock.acquire(path):
        assert path.read_text().strip() == str(os.getpid())
        with pytest.raises(AlreadyRunning) as info:
            DevLock.acquire(path)
        assert info.value.pid == os.getpid()
        assert path.read_text().strip() == str(os.getpid())
    assert _lock_is_free(path)
    DevLock.acquire(path).release()


def test_second_dev_refuses_and_touches_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with DevLock.acquire(state / "dev.lock"):
        before = {p.name: p.read_bytes() for p in state.iterdir()}
        result = subprocess.run(
            [sys.executable, "-m", "safelight.cli", "dev"],
            env=_safelight_env(state),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        after = {p.name: p.read_bytes() for p in state.iterdir()}
    assert result.returncode == 1, result.stderr
    assert f"safelight dev is already running (pid {os.getpid()})" in result.stderr
    assert after == before  # no embedded data dirs, no token, lock file unchanged


def test_dev_refuses_busy_api_port_and_releases_lock(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "safelight.cli", "dev", "--port", str(port)],
            env=_safelight_env(state),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.stdout
    assert not (state / "postgres").exists()
    assert _lock_is_free(state / "dev.lock")


def _start_standin(state: Path, mode: str) -> tuple[subprocess.Popen[str], dict[str, int]]:
    state.mkdir()
    proc = subprocess.Popen(
        [sys.executable, str(STANDIN), str(state), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 30
    pids_file = state / "pids.json"
    while not pids_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, _ = proc.communicate()
            pytest.fail(f"stand-in stack did not come up (exit {proc.returncode}):\n{out}")
        time.sleep(0.05)
    return proc, json.loads(pids_file.read_text())


def _assert_all_gone(pids: dict[str, int], state: Path) -> None:
    for name in ("web", "parent", "grandchild", "stubborn"):
        assert _gone(pids[name]), f"{name} (pid {pids[name]}) survived the supervisor"
    assert _lock_is_free(state / "dev.lock")
    assert (state / "dev.lock").read_text() == ""


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_every_child_and_releases_lock(tmp_path: Path, sig: signal.Signals) -> None:
    state = tmp_path / "state"
    proc, pids = _start_standin(state, "run")
    assert (state / "dev.lock").read_text().strip() == str(proc.pid)
    assert not _lock_is_free(state / "dev.lock")

    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=30)

    assert proc.returncode == 0, out
    assert f"{sig.name} received; stopping" in out
    assert "stubborn ignored SIGTERM" in out  # escalated to SIGKILL after stop_timeout
    _assert_all_gone(pids, state)


@pytest.mark.slow
def test_child_death_stops_the_rest_and_fails(tmp_path: Path) -> None:
    state = tmp_path / "state"
    proc, pids = _start_standin(state, "run")

    os.kill(pids["web"], signal.SIGKILL)
    out, _ = proc.communicate(timeout=30)

    assert proc.returncode == 1, out
    assert "web exited unexpectedly (killed by SIGKILL); stopping everything" in out
    _assert_all_gone(pids, state)


@pytest.mark.slow
def test_failing_step_stops_startup(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    result = subprocess.run(
        [sys.executable, str(STANDIN), str(state), "failing-step"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "migrate failed (exit code 4); stopping everything" in result.stdout
    assert not (state / "grandchild.pid").exists()  # nothing after the step was started
    assert not (state / "pids.json").exists()
    assert _lock_is_free(state / "dev.lock")
