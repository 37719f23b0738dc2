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
from typing import Any

import pytest

from safelight.devstack import AlreadyRunning, DevLock
from safelight.embedded import EmbeddedPostgres, EmbeddedRedis
from safelight.procs import cmdline, free_port, port_is_open

STANDIN = Path(__file__).with_name("standin_stack.py")
STANDIN_DEV = Path(__file__).with_name("standin_dev.py")


def _safelight_env(state_dir: Path, **extra: str) -> dict[str, str]:
    configured = ("SAFELIGHT_", "DATABASE_URL", "REDIS_URL", "COMFYUI_URLS")
    env = {k: v for k, v in os.environ.items() if not k.startswith(configured)}
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
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
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


def _records(state: Path, name: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(state.glob(f"{name}-*.json"))]


def _run_dev_once(state: Path, tmp_path: Path, *args: str, workers: int) -> tuple[int, str]:
    proc = subprocess.Popen(
        [sys.executable, str(STANDIN_DEV), *args],
        env=_safelight_env(state),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("Press Ctrl-C to stop."):
            break
    else:
        proc.wait(timeout=30)
        pytest.fail("safelight dev did not come up:\n" + "".join(lines))
    deadline = time.monotonic() + 30
    while len(_records(state, "worker")) < workers and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=60)
    return proc.returncode, "".join(lines) + rest


@pytest.mark.slow
def test_dev_runs_embedded_stack_and_stops_cleanly(tmp_path: Path, server_dir: Path) -> None:
    state = server_dir / "state"
    api_port, comfy_port, pg_port, redis_port = (free_port() for _ in range(4))
    args = (
        *("--port", str(api_port), "--fake-comfy-port", str(comfy_port), "--workers", "2"),
        *("--postgres-port", str(pg_port), "--redis-port", str(redis_port)),
    )

    code, out = _run_dev_once(state, tmp_path, *args, workers=2)

    assert code == 0, out
    assert f"app:         http://127.0.0.1:{api_port}/" in out
    assert f"GraphQL:     http://127.0.0.1:{api_port}/graphql" in out
    assert f"http://127.0.0.1:{comfy_port} (fake)" in out
    token = (state / "dev-token").read_text().strip()
    assert len(token) >= 40 and f"dev token:   {token}" in out
    assert oct((state / "dev-token").stat().st_mode & 0o777) == "0o600"

    (migrate,) = _records(state, "migrate")
    (api,) = _records(state, "api")
    workers = _records(state, "worker")
    assert len(workers) == 2 and len(_records(state, "fake-comfy")) == 1
    assert api["argv"] == ["api", "--host", "127.0.0.1", "--port", str(api_port)]
    for record in (migrate, api, *workers):
        env = record["env"]
        assert env["DATABASE_URL"] == f"postgresql://postgres@127.0.0.1:{pg_port}/safelight"
        assert env["REDIS_URL"] == f"redis://127.0.0.1:{redis_port}/0"
        assert env["COMFYUI_URLS"] == f"http://127.0.0.1:{comfy_port}"
        assert env["SAFELIGHT_DEV_MODE"] == "1"
        assert env["SAFELIGHT_DEV_TOKEN"] == token

    # Everything stopped: the embedded servers' ports are closed, the lock is free.
    for port in (api_port, comfy_port, pg_port, redis_port):
        assert not port_is_open("127.0.0.1", port), port
    assert _lock_is_free(state / "dev.lock")

    # A second run finds the same data and the same token.
    for path in state.glob("*.json"):
        path.unlink()
    code, out = _run_dev_once(state, tmp_path, *args, "--workers", "0", workers=0)
    assert code == 0, out
    assert f"dev token:   {token}" in out
    assert not _records(state, "worker")
    assert "embedded postgres ready" in out


@pytest.mark.slow
def test_dev_uses_configured_services(tmp_path: Path, server_dir: Path) -> None:
    """With the URLs set, nothing embedded and no fake ComfyUI is started."""
    state = tmp_path / "state"
    backend = f"http://127.0.0.1:{free_port()}"
    with EmbeddedPostgres(server_dir / "pg") as pg, EmbeddedRedis(server_dir / "redis") as rd:
        env = _safelight_env(state, DATABASE_URL=pg.url, REDIS_URL=rd.url, COMFYUI_URLS=backend)
        env["SAFELIGHT_DEV_TOKEN"] = "configured-token"
        proc = subprocess.Popen(
            [sys.executable, str(STANDIN_DEV), "--port", str(free_port()), "--workers", "1"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 60
        while len(_records(state, "worker")) < 1 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert not (state / "postgres").exists() and not (state / "redis").exists()
    assert not _records(state, "fake-comfy")
    assert not (state / "dev-token").exists()
    (worker,) = _records(state, "worker")
    assert worker["env"]["DATABASE_URL"] == pg.url
    assert worker["env"]["COMFYUI_URLS"] == backend
    assert worker["env"]["SAFELIGHT_DEV_TOKEN"] == "configured-token"
