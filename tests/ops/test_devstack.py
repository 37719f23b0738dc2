"""The `safelight dev` supervisor: the lock, the lifecycle and restarts, with stand-in children.

Every test that starts processes starts them through the `reaper` fixture, which stops the whole
tree (embedded servers included) when the test fails half-way.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from safelight.devstack import AlreadyRunning, DevLock, http_ok, restart_delay, write_atomically
from safelight.embedded import EmbeddedPostgres, EmbeddedRedis
from safelight.procs import cmdline, free_port, port_is_open
from tests.ops.reaper import Output, Reaper

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


def _wait(condition: Callable[[], bool], what: str, timeout: float = 30.0, output: Output | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}" + (f":\n{output.text}" if output else ""))
        time.sleep(0.05)


def test_restart_delay_doubles_while_a_process_keeps_dying_and_is_capped() -> None:
    assert [restart_delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert restart_delay(20) == 30.0
    assert restart_delay(3, first=1.0, cap=3.0) == 3.0


def test_write_atomically_replaces_the_whole_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "worker-1.json"
    path.write_text("old")
    write_atomically(path, '{"new": true}', mode=0o600)
    assert json.loads(path.read_text()) == {"new": True}
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in tmp_path.iterdir()] == ["worker-1.json"]


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


def test_second_dev_refuses_and_touches_nothing(tmp_path: Path, reaper: Reaper) -> None:
    state = tmp_path / "state"
    with DevLock.acquire(state / "dev.lock"):
        before = {p.name: p.read_bytes() for p in state.iterdir()}
        result = subprocess.run(
            [sys.executable, "-m", "safelight.cli", "dev"],
            env=reaper.env(_safelight_env(state)),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        after = {p.name: p.read_bytes() for p in state.iterdir()}
    assert result.returncode == 1, result.stderr
    assert f"safelight dev is already running (pid {os.getpid()})" in result.stderr
    assert after == before  # no embedded data dirs, no token, lock file unchanged


def test_dev_refuses_busy_api_port_says_how_to_pick_another_and_releases_lock(tmp_path: Path, reaper: Reaper) -> None:
    state = tmp_path / "state"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "safelight.cli", "dev", "--port", str(port)],
            env=reaper.env(_safelight_env(state)),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use; choose another: `safelight dev --port " in result.stdout
    assert "` or `make dev PORT=" in result.stdout
    assert not (state / "postgres").exists()
    assert _lock_is_free(state / "dev.lock")


def test_dev_refuses_busy_fake_comfy_port_with_the_make_form_of_its_option(tmp_path: Path, reaper: Reaper) -> None:
    state = tmp_path / "state"
    unused = "postgresql://postgres@127.0.0.1:9/none"  # configured, so nothing embedded starts; never contacted
    env = _safelight_env(state, DATABASE_URL=unused, REDIS_URL="redis://127.0.0.1:9/0")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "safelight.cli", "dev", "--port", str(free_port()), "--fake-comfy-port", str(port)],
            env=reaper.env(env),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    line = next(line for line in result.stdout.splitlines() if "already in use" in line)
    assert (
        f"port {port} for the fake ComfyUI is already in use; choose another: `safelight dev --fake-comfy-port " in line
    )
    assert '` or `make dev DEV_ARGS="--fake-comfy-port ' in line


def _start_standin(state: Path, mode: str, reaper: Reaper) -> tuple[Output, dict[str, int]]:
    state.mkdir()
    proc = reaper.popen(
        [sys.executable, str(STANDIN), str(state), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = Output(proc)
    output.wait_for("READY", timeout=30)
    return output, json.loads((state / "pids.json").read_text())


def _assert_all_gone(pids: dict[str, int], state: Path) -> None:
    for name in ("web", "parent", "grandchild", "stubborn"):
        assert _gone(pids[name]), f"{name} (pid {pids[name]}) survived the supervisor"
    assert _lock_is_free(state / "dev.lock")
    assert (state / "dev.lock").read_text() == ""


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_every_child_and_releases_lock(tmp_path: Path, reaper: Reaper, sig: signal.Signals) -> None:
    state = tmp_path / "state"
    output, pids = _start_standin(state, "run", reaper)
    assert (state / "dev.lock").read_text().strip() == str(output.proc.pid)
    assert not _lock_is_free(state / "dev.lock")

    output.proc.send_signal(sig)
    out = output.finish(timeout=30)

    assert output.proc.returncode == 0, out
    assert f"{sig.name} received; stopping" in out
    assert "stubborn ignored SIGTERM" in out  # escalated to SIGKILL after stop_timeout
    _assert_all_gone(pids, state)


def _restarted_pid(line: str) -> int:
    return int(line.split("(pid ", 1)[1].split(",", 1)[0])


@pytest.mark.slow
def test_dead_child_is_restarted_with_backoff_and_the_rest_stay_up(tmp_path: Path, reaper: Reaper) -> None:
    state = tmp_path / "state"
    output, pids = _start_standin(state, "run", reaper)
    web_ok = http_ok(f"http://127.0.0.1:{pids['port']}/")

    os.kill(pids["web"], signal.SIGKILL)
    died = output.wait_for("web exited unexpectedly (killed by SIGKILL)")
    assert died.rstrip().endswith("restarting it in 0.5s")
    first = _restarted_pid(output.wait_for("safelight dev: web restarted (pid "))
    _wait(web_ok, "the restarted web child to answer", output=output)

    # Dying again soon after its start: the next wait is twice as long.
    os.kill(first, signal.SIGKILL)
    assert output.wait_for("web exited unexpectedly").rstrip().endswith("restarting it in 1.0s")
    line = output.wait_for("safelight dev: web restarted (pid ")
    assert line.rstrip().endswith("restart 2)")
    second = _restarted_pid(line)
    _wait(web_ok, "the twice restarted web child to answer", output=output)

    # The others were never touched, and the stack is still up.
    for name in ("parent", "grandchild", "stubborn"):
        assert cmdline(pids[name]) is not None, f"{name} died with web"
    assert output.proc.poll() is None

    output.proc.send_signal(signal.SIGTERM)
    out = output.finish(timeout=30)
    assert output.proc.returncode == 0, out
    _assert_all_gone({**pids, "web": second}, state)
    assert _gone(first)


@pytest.mark.slow
def test_death_while_starting_stops_everything(tmp_path: Path, reaper: Reaper) -> None:
    state = tmp_path / "state"
    state.mkdir()
    proc = reaper.popen(
        [sys.executable, str(STANDIN), str(state), "dies-starting"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, out
    assert "early exited unexpectedly (exit code 3); stopping everything" in out
    assert "restarting" not in out
    assert not (state / "pids.json").exists()
    assert _lock_is_free(state / "dev.lock")


@pytest.mark.slow
def test_failing_step_stops_startup(tmp_path: Path, reaper: Reaper) -> None:
    state = tmp_path / "state"
    state.mkdir()
    proc = reaper.popen(
        [sys.executable, str(STANDIN), str(state), "failing-step"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, out
    assert "migrate failed (exit code 4); stopping everything" in out
    assert not (state / "grandchild.pid").exists()  # nothing after the step was started
    assert not (state / "pids.json").exists()
    assert _lock_is_free(state / "dev.lock")


def _records(state: Path, name: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(state.glob(f"{name}-*.json"))]


def _record_pids(state: Path, name: str) -> list[int]:
    return [int(p.stem.rsplit("-", 1)[1]) for p in state.glob(f"{name}-*.json")]


def _start_dev(state: Path, tmp_path: Path, reaper: Reaper, *args: str, workers: int) -> Output:
    """`safelight dev` over stand-ins, up (banner printed) with `workers` workers started."""
    reaper.own(state)
    proc = reaper.popen(
        [sys.executable, str(STANDIN_DEV), *args],
        env=_safelight_env(state),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = Output(proc)
    output.wait_for("Press Ctrl-C to stop.", timeout=120)
    _wait(lambda: len(_records(state, "worker")) >= workers, f"{workers} workers", output=output)
    return output


def _stop_dev(output: Output) -> tuple[int, str]:
    output.proc.send_signal(signal.SIGTERM)
    out = output.finish(timeout=60)
    assert output.proc.returncode is not None
    return output.proc.returncode, out


@pytest.mark.slow
def test_dev_runs_embedded_stack_and_stops_cleanly(tmp_path: Path, server_dir: Path, reaper: Reaper) -> None:
    state = server_dir / "state"
    api_port, comfy_port, pg_port, redis_port = (free_port() for _ in range(4))
    args = (
        *("--port", str(api_port), "--fake-comfy-port", str(comfy_port), "--workers", "2"),
        *("--postgres-port", str(pg_port), "--redis-port", str(redis_port)),
    )

    code, out = _stop_dev(_start_dev(state, tmp_path, reaper, *args, workers=2))

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

    # Everything stopped: the embedded servers' ports are closed, the lock is free, nothing is left.
    for port in (api_port, comfy_port, pg_port, redis_port):
        assert not port_is_open("127.0.0.1", port), port
    assert _lock_is_free(state / "dev.lock")
    assert reaper.marked() == []

    # A second run finds the same data and the same token.
    for path in state.glob("*.json"):
        path.unlink()
    code, out = _stop_dev(_start_dev(state, tmp_path, reaper, *args, "--workers", "0", workers=0))
    assert code == 0, out
    assert f"dev token:   {token}" in out
    assert not _records(state, "worker")
    assert "embedded postgres ready" in out


@pytest.mark.slow
def test_dev_restarts_a_dead_fake_comfy_and_redis_and_keeps_the_api_up(
    tmp_path: Path, server_dir: Path, reaper: Reaper
) -> None:
    state = server_dir / "state"
    api_port, comfy_port, redis_port = free_port(), free_port(), free_port()
    args = ("--port", str(api_port), "--fake-comfy-port", str(comfy_port), "--redis-port", str(redis_port))
    args += ("--postgres-port", str(free_port()), "--workers", "1")
    output = _start_dev(state, tmp_path, reaper, *args, workers=1)
    healthz = http_ok(f"http://127.0.0.1:{api_port}/healthz")
    (api_pid,) = _record_pids(state, "api")
    (comfy_pid,) = _record_pids(state, "fake-comfy")

    os.kill(comfy_pid, signal.SIGKILL)
    output.wait_for("safelight dev: comfyui exited unexpectedly (killed by SIGKILL)")
    output.wait_for("safelight dev: comfyui restarted (pid ")
    _wait(lambda: len(_record_pids(state, "fake-comfy")) == 2, "a second fake ComfyUI", output=output)
    _wait(lambda: port_is_open("127.0.0.1", comfy_port), "the fake ComfyUI's port to open again", output=output)
    assert healthz() and _record_pids(state, "api") == [api_pid] and cmdline(api_pid) is not None

    valkey = int((state / "redis" / "valkey.pid").read_text())
    assert valkey in reaper.marked()
    os.kill(valkey, signal.SIGKILL)
    output.wait_for("safelight dev: embedded redis exited unexpectedly (killed by SIGKILL)")
    output.wait_for("safelight dev: embedded redis restarted (pid ")
    assert port_is_open("127.0.0.1", redis_port)  # the same port: the children's REDIS_URL stays right
    assert healthz() and _record_pids(state, "api") == [api_pid] and output.proc.poll() is None

    code, out = _stop_dev(output)
    assert code == 0, out
    for port in (api_port, comfy_port, redis_port):
        assert not port_is_open("127.0.0.1", port), port
    assert reaper.marked() == []


@pytest.mark.slow
def test_dev_uses_configured_services(tmp_path: Path, server_dir: Path, reaper: Reaper) -> None:
    """With the URLs set, nothing embedded and no fake ComfyUI is started."""
    state = tmp_path / "state"
    backend = f"http://127.0.0.1:{free_port()}"
    with EmbeddedPostgres(server_dir / "pg") as pg, EmbeddedRedis(server_dir / "redis") as rd:
        env = _safelight_env(state, DATABASE_URL=pg.url, REDIS_URL=rd.url, COMFYUI_URLS=backend)
        env["SAFELIGHT_DEV_TOKEN"] = "configured-token"
        proc = reaper.popen(
            [sys.executable, str(STANDIN_DEV), "--port", str(free_port()), "--workers", "1"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        output = Output(proc)
        output.wait_for("Press Ctrl-C to stop.", timeout=120)
        _wait(lambda: len(_records(state, "worker")) >= 1, "the worker", output=output)
        proc.send_signal(signal.SIGINT)
        out = output.finish(timeout=60)
    assert proc.returncode == 0, out
    assert not (state / "postgres").exists() and not (state / "redis").exists()
    assert not _records(state, "fake-comfy")
    assert not (state / "dev-token").exists()
    (worker,) = _records(state, "worker")
    assert worker["env"]["DATABASE_URL"] == pg.url
    assert worker["env"]["COMFYUI_URLS"] == backend
    assert worker["env"]["SAFELIGHT_DEV_TOKEN"] == "configured-token"
