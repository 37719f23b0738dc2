"""`safelight dev`: the whole stack on one machine, under one supervisor.

Embedded PostgreSQL / Redis and the fake ComfyUI are started only for what the
environment leaves unset, migrations run to completion, then the API and the
workers run as child processes until Ctrl-C / SIGTERM.

A process that dies while the stack starts stops everything (a broken
configuration or port should fail at once, naming it). Once the stack is up, a
process that dies (a child, or an embedded server) is restarted after a backoff
that doubles while it keeps dying soon after each start, and the rest stay up:
killing the fake ComfyUI is how one tries a backend outage.

`Supervisor.run()` takes plain child specs, so its lifecycle is tested with
stand-in commands; `run_dev()` only resolves settings into specs.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any, TextIO

from safelight.embedded import EmbeddedError, EmbeddedPostgres, EmbeddedRedis
from safelight.procs import free_port, kill_group, parent_death_hook, port_is_open, terminate
from settings import Settings

__all__ = [
    "AlreadyRunning",
    "ChildSpec",
    "DevLock",
    "Supervisor",
    "http_ok",
    "restart_delay",
    "run_dev",
    "write_atomically",
]

_POLL_S = 0.05
_BACKOFF_FIRST_S = 0.5
_BACKOFF_MAX_S = 30.0
_STABLE_AFTER_S = 30.0


def restart_delay(streak: int, *, first: float = _BACKOFF_FIRST_S, cap: float = _BACKOFF_MAX_S) -> float:
    """Seconds to wait before the `streak`-th restart in a row of a process that keeps dying young."""
    return float(min(cap, first * 2.0 ** max(0, streak - 1)))


def write_atomically(path: Path, text: str, *, mode: int = 0o644) -> None:
    """Write `text` to `path` so that a reader sees the old file or the whole new one, never a part.

    The temporary file is a dot file beside it (same filesystem, so `os.replace` is atomic) that no
    glob of the final names matches.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class AlreadyRunning(Exception):
    def __init__(self, pid: int | None) -> None:
        super().__init__(pid)
        self.pid = pid


class DevLock:
    """An exclusive `flock` on `<state_dir>/dev.lock`; the file holds the owner's pid.

    The lock dies with its process, so a crashed supervisor never blocks the
    next start, and the file is opened without truncation so a refused second
    start leaves it as it was.
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, path: Path) -> DevLock:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise AlreadyRunning(holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.ftruncate(fd, 0)
            os.close(fd)  # closing the last descriptor drops the flock

    def __enter__(self) -> DevLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip())
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class ChildSpec:
    """One process of the stack.

    `once` steps (migrations) must exit 0 before the next spec starts; a
    `ready` probe is polled after start, and the next spec waits for it.
    A `restart` process that dies once the stack is up is started again.
    """

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    ready: Callable[[], bool] | None = None
    ready_timeout: float = 60.0
    once: bool = False
    once_timeout: float = 600.0
    restart: bool = True


@dataclass
class _Restarts:
    """Restart bookkeeping of one supervised process."""

    started_at: float
    count: int = 0  # restarts so far
    streak: int = 0  # deaths in a row, each within `_STABLE_AFTER_S` of its start
    due: float | None = None  # when the pending restart happens (None: running)


@dataclass
class _Child:
    spec: ChildSpec
    proc: subprocess.Popen[bytes]
    pump: threading.Thread | None = field(default=None)
    restarts: _Restarts = field(default_factory=lambda: _Restarts(time.monotonic()))

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass
class _Server:
    """An embedded server, started by `run_dev` before the children; supervised like one."""

    server: EmbeddedPostgres | EmbeddedRedis
    restarts: _Restarts = field(default_factory=lambda: _Restarts(time.monotonic()))

    @property
    def name(self) -> str:
        return f"embedded {self.server.name}"


class _Stop(Exception):
    """Unwinds startup: `code` is the exit status, `message` why (None for a requested stop)."""

    def __init__(self, code: int, message: str | None = None) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message


class Supervisor:
    """Starts child process groups in order, watches them, stops them all.

    Use it as a context manager: SIGINT, SIGTERM and SIGHUP only set a flag
    while it is active (children run in their own sessions, so a terminal's
    Ctrl-C reaches only us and the shutdown happens in order).
    """

    def __init__(
        self,
        *,
        stop_timeout: float = 10.0,
        out: TextIO | None = None,
        prefix_output: bool = True,
        backoff_first: float = _BACKOFF_FIRST_S,
        backoff_max: float = _BACKOFF_MAX_S,
        stable_after: float = _STABLE_AFTER_S,
    ) -> None:
        self.stop_timeout = stop_timeout
        self.out = out or sys.stdout
        self.prefix_output = prefix_output
        self.backoff_first = backoff_first
        self.backoff_max = backoff_max
        self.stable_after = stable_after
        self.children: list[_Child] = []
        self.servers: list[_Server] = []
        self.up = False  # every spec started and ready: deaths are restarted from now on
        self.stop_requested: int | None = None
        self._previous: dict[int, Any] = {}
        self._out_lock = threading.Lock()

    # Signals.

    def __enter__(self) -> Supervisor:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stop_requested is None:
            self.stop_requested = signum

    def check(self) -> None:
        """Raise `_Stop` when a stop was requested or a process died while starting; restart the dead.

        Restarts happen here, one poll at a time: a dead process is given its backoff, and the
        next call after it has passed starts the process again.
        """
        if self.stop_requested is not None:
            raise _Stop(0)
        for child in self.children:
            if child.spec.once:
                continue
            if child.restarts.due is not None:
                self._restart_when_due(child)
                continue
            code = child.proc.poll()
            if code is None:
                continue
            if not self.up or not child.spec.restart:
                raise _Stop(1, f"{child.name} exited unexpectedly ({_describe(code)})")
            kill_group(child.proc, signal.SIGKILL)  # what the leader left behind in its group
            self._schedule_restart(child, f"exited unexpectedly ({_describe(code)})")
        for server in self.servers:
            if server.restarts.due is not None:
                self._restart_when_due(server)
                continue
            code = server.server.returncode
            if code is None:
                continue
            if not self.up:
                raise _Stop(1, f"{server.name} exited unexpectedly ({_describe(code)}); see {server.server.log_path}")
            self._schedule_restart(server, f"exited unexpectedly ({_describe(code)}); see {server.server.log_path}")

    def watch(self, server: EmbeddedPostgres | EmbeddedRedis) -> None:
        """Supervise a started embedded server: restarted (same port and data) if it dies."""
        self.servers.append(_Server(server))

    def _schedule_restart(self, unit: _Child | _Server, why: str) -> None:
        now = time.monotonic()
        restarts = unit.restarts
        lived = now - restarts.started_at
        restarts.streak = restarts.streak + 1 if lived < self.stable_after else 1
        delay = restart_delay(restarts.streak, first=self.backoff_first, cap=self.backoff_max)
        restarts.due = now + delay
        self.say(f"safelight dev: {unit.name} {why} after {lived:.1f}s; restarting it in {delay:.1f}s")

    def _restart_when_due(self, unit: _Child | _Server) -> None:
        restarts = unit.restarts
        assert restarts.due is not None
        if time.monotonic() < restarts.due:
            return
        restarts.due = None
        restarts.started_at = time.monotonic()
        try:
            if isinstance(unit, _Child):
                self._respawn(unit)
                pid = unit.proc.pid
            else:
                unit.server.start()
                pid = unit.server.pid or 0
        except (OSError, EmbeddedError) as exc:
            self._schedule_restart(unit, f"could not be restarted ({exc})")
            return
        restarts.count += 1
        self.say(f"safelight dev: {unit.name} restarted (pid {pid}, restart {restarts.count})")

    # Lifecycle.

    def run(self, specs: Sequence[ChildSpec], *, on_ready: Callable[[], None] | None = None) -> int:
        """Start `specs` in order, then supervise until a signal (→ 0) or a death (→ 1).

        Every child is stopped before this returns.
        """
        try:
            for spec in specs:
                self.check()
                if spec.once:
                    self.say(f"safelight dev: running {spec.name} ...")
                    self._run_once(spec)
                    continue
                self.start(spec)
                if spec.ready is not None:
                    self.wait_until(spec.ready, what=f"{spec.name} to become ready", timeout=spec.ready_timeout)
            self.up = True
            if on_ready is not None:
                on_ready()
            while True:
                self.check()
                time.sleep(_POLL_S)
        except _Stop as stop:
            return self.report(stop)
        finally:
            self.stop_all()

    def report(self, stop: _Stop) -> int:
        """Say why the stack is stopping; return the exit status."""
        if stop.message:
            self.say(f"safelight dev: {stop.message}; stopping everything")
        elif self.stop_requested is not None:
            self.say(f"safelight dev: {signal.Signals(self.stop_requested).name} received; stopping")
        return stop.code

    def start(self, spec: ChildSpec) -> subprocess.Popen[bytes]:
        child = _Child(spec, self._spawn(spec))
        self._start_pump(child)
        self.children.append(child)
        return child.proc

    def _spawn(self, spec: ChildSpec) -> subprocess.Popen[bytes]:
        piped = self.prefix_output
        return subprocess.Popen(
            list(spec.argv),
            env=dict(spec.env) if spec.env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if piped else None,
            stderr=subprocess.STDOUT if piped else None,
            start_new_session=True,
            preexec_fn=parent_death_hook(signal.SIGTERM),
        )

    def _start_pump(self, child: _Child) -> None:
        if child.proc.stdout is None:
            return
        child.pump = threading.Thread(
            target=self._pump, args=(child.name, child.proc.stdout), name=f"output-{child.name}", daemon=True
        )
        child.pump.start()

    def _respawn(self, child: _Child) -> None:
        """Start a dead child again in its place (the stop order stays that of the specs)."""
        self._close_output(child)
        child.proc = self._spawn(child.spec)
        self._start_pump(child)

    @staticmethod
    def _close_output(child: _Child) -> None:
        if child.pump is not None:
            child.pump.join(timeout=1.0)
            child.pump = None
        if child.proc.stdout is not None:
            child.proc.stdout.close()

    def _run_once(self, spec: ChildSpec) -> None:
        proc = self.start(spec)
        deadline = time.monotonic() + spec.once_timeout
        while proc.poll() is None:
            self.check()
            if time.monotonic() > deadline:
                raise _Stop(1, f"{spec.name} did not finish within {spec.once_timeout:.0f}s")
            time.sleep(_POLL_S)
        if proc.returncode != 0:
            raise _Stop(1, f"{spec.name} failed ({_describe(proc.returncode)})")

    def wait_until(self, probe: Callable[[], bool], *, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not probe():
            self.check()
            if time.monotonic() > deadline:
                raise _Stop(1, f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(_POLL_S)

    def stop_all(self) -> None:
        """SIGTERM every child group (newest first), SIGKILL what outlives `stop_timeout`."""
        children, self.children = self.children, []
        if not children:
            return
        procs = [child.proc for child in reversed(children)]
        for proc in terminate(procs, timeout=self.stop_timeout):
            name = next(c.spec.name for c in children if c.proc is proc)
            self.say(f"safelight dev: {name} ignored SIGTERM for {self.stop_timeout:.0f}s; killed it")
        for child in children:
            self._close_output(child)

    # Output.

    def say(self, line: str) -> None:
        with self._out_lock:
            self.out.write(line + "\n")
            self.out.flush()

    def _pump(self, name: str, stream: IO[bytes]) -> None:
        prefix = f"{name:>9} | "
        with contextlib.suppress(ValueError, OSError):  # the pipe is closed under us at stop
            for raw in iter(stream.readline, b""):
                self.say(prefix + raw.decode(errors="replace").rstrip("\n"))


def _describe(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def http_ok(url: str, timeout: float = 1.0) -> Callable[[], bool]:
    """A readiness probe: `GET url` answers 200."""

    def probe() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return int(response.status) == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    return probe


def _tcp_open(host: str, port: int) -> Callable[[], bool]:
    return lambda: port_is_open(host, port)


# `safelight dev`.


def run_dev(settings: Settings, args: argparse.Namespace) -> int:
    state_dir = settings.state_dir.absolute()
    try:
        lock = DevLock.acquire(state_dir / "dev.lock")
    except AlreadyRunning as exc:
        pid = exc.pid if exc.pid is not None else "unknown"
        print(
            f"safelight dev is already running (pid {pid}); stop it with Ctrl-C in its terminal or `kill {pid}` first",
            file=sys.stderr,
        )
        return 1
    with lock, Supervisor() as supervisor, contextlib.ExitStack() as servers:
        try:
            return _run_stack(settings, args, state_dir, supervisor, servers)
        except _Stop as stop:
            return supervisor.report(stop)
        finally:
            supervisor.stop_all()  # children first, then the servers they use


def _run_stack(
    settings: Settings,
    args: argparse.Namespace,
    state_dir: Path,
    supervisor: Supervisor,
    servers: contextlib.ExitStack,
) -> int:
    host = args.host or settings.host
    port = args.port or settings.port
    probe_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    fake_port = int(args.fake_comfy_port)
    workers = max(0, int(args.workers))
    if port_is_open(probe_host, port):
        raise _Stop(1, _port_in_use(f"port {port} on {probe_host}", "--port", port, make_var="PORT"))

    notes: dict[str, str] = {}
    database_url = settings.database_url
    if database_url is None:
        _check_free(int(args.postgres_port), "embedded PostgreSQL", "--postgres-port")
        database_url = _start_embedded(
            EmbeddedPostgres(state_dir / "postgres", port=args.postgres_port), supervisor, servers
        )
        notes["database"] = f"{database_url} (embedded, data in {state_dir / 'postgres'})"
    else:
        notes["database"] = str(settings.redacted()["DATABASE_URL"])
    redis_url = settings.redis_url
    if redis_url is None:
        _check_free(int(args.redis_port), "embedded Redis", "--redis-port")
        redis_url = _start_embedded(EmbeddedRedis(state_dir / "redis", port=args.redis_port), supervisor, servers)
        notes["redis"] = f"{redis_url} (embedded, data in {state_dir / 'redis'})"
    else:
        notes["redis"] = str(settings.redacted()["REDIS_URL"])

    specs: list[ChildSpec] = []
    base_env = dict(os.environ)
    if settings.comfyui_urls:
        comfyui_urls = ",".join(settings.comfyui_urls)
        notes["comfyui"] = comfyui_urls
    else:
        _check_free(fake_port, "the fake ComfyUI", "--fake-comfy-port")
        comfyui_urls = f"http://127.0.0.1:{fake_port}"
        notes["comfyui"] = f"{comfyui_urls} (fake)"
        specs.append(
            ChildSpec(
                "comfyui",
                _safelight("fake-comfy", "--port", str(fake_port)),
                env=base_env,
                ready=_tcp_open("127.0.0.1", fake_port),
            )
        )

    token = settings.dev_token.get_secret_value() if settings.dev_token else _dev_token(state_dir)
    env = {
        **base_env,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "COMFYUI_URLS": comfyui_urls,
        "SAFELIGHT_STATE_DIR": str(state_dir),
        "SAFELIGHT_DEV_MODE": "1",
        "SAFELIGHT_DEV_TOKEN": token,
        "PYTHONUNBUFFERED": "1",
    }
    app_url = f"http://{probe_host}:{port}"
    specs.append(ChildSpec("migrate", _safelight("migrate"), env=env, once=True))
    specs.append(
        ChildSpec(
            "api",
            _safelight("api", "--host", host, "--port", str(port)),
            env=env,
            ready=http_ok(f"{app_url}/healthz"),
            ready_timeout=120.0,
        )
    )
    specs.extend(ChildSpec(f"worker-{n}", _safelight("worker"), env=env) for n in range(1, workers + 1))

    def announce() -> None:
        supervisor.say(
            "\n".join(
                [
                    "",
                    "Safelight is running:",
                    f"  app:         {app_url}/",
                    f"  GraphQL:     {app_url}/graphql  (GraphiQL playground in a browser)",
                    f"  ComfyUI:     {notes['comfyui']}",
                    f"  PostgreSQL:  {notes['database']}",
                    f"  Redis:       {notes['redis']}",
                    f"  workers:     {workers}",
                    f"  dev token:   {token}",
                    "Press Ctrl-C to stop.",
                    "",
                ]
            )
        )

    return supervisor.run(specs, on_ready=announce)


def _start_embedded(
    server: EmbeddedPostgres | EmbeddedRedis, supervisor: Supervisor, servers: contextlib.ExitStack
) -> str:
    supervisor.check()
    supervisor.say(f"safelight dev: starting embedded {server.name} ...")
    started = time.monotonic()
    try:
        url = server.start()
    except EmbeddedError as exc:
        raise _Stop(1, str(exc)) from None
    servers.callback(server.stop)
    supervisor.watch(server)
    supervisor.say(f"safelight dev: embedded {server.name} ready in {time.monotonic() - started:.2f}s")
    supervisor.check()
    return url


def _dev_token(state_dir: Path) -> str:
    """The dev user's token: generated once, kept in `<state_dir>/dev-token` (mode 0600)."""
    path = state_dir / "dev-token"
    with contextlib.suppress(FileNotFoundError):
        token = path.read_text().strip()
        if token:
            return token
    token = secrets.token_urlsafe(32)
    write_atomically(path, token + "\n", mode=0o600)
    return token


def _check_free(port: int, what: str, option: str) -> None:
    if port_is_open("127.0.0.1", port):
        raise _Stop(1, _port_in_use(f"port {port} for {what}", option, port))


def _port_in_use(what: str, option: str, port: int, *, make_var: str | None = None) -> str:
    """The "port in use" message, with both ways to pick another port (`safelight dev` and `make dev`)."""
    other = _next_free_port(port)
    make = f"make dev {make_var}={other}" if make_var else f'make dev DEV_ARGS="{option} {other}"'
    return f"{what} is already in use; choose another: `safelight dev {option} {other}` or `{make}`"


def _next_free_port(port: int) -> int:
    for candidate in range(port + 1, min(port + 100, 65536)):
        if not port_is_open("127.0.0.1", candidate):
            return candidate
    return free_port()


def _safelight(*argv: str) -> list[str]:
    return [sys.executable, "-m", "safelight.cli", *argv]
