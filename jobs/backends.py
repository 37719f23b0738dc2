"""The ComfyUI backends a worker uses: one HTTP client and one websocket each, health, and choice.

A backend that fails `failure_threshold` calls in a row is skipped (circuit
open) for `cooldown_s`, then tried again; so is one whose websocket closed and
has not reconnected yet, and a reconnect closes the circuit at once. Jobs
waiting for a backend (`wait_for_change`) wake up when any websocket opens.
The URL list is data: `reconcile()` adds and removes backends while jobs run,
without a restart.

Every prompt a worker submits goes out under its websocket's client id, the
only socket ComfyUI sends that prompt's execution messages to. A job that takes
over a prompt submitted by another (dead) worker follows it on a socket of its
own with that worker's client id (`Backend.follow`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from comfy.client import ComfyClient, without_credentials
from comfy.socket import ComfySocket

__all__ = ["Backend", "BackendPool", "NoBackend"]

log = logging.getLogger(__name__)


class NoBackend(Exception):
    """No configured backend is healthy right now (a transient condition)."""


@dataclass
class Backend:
    url: str
    client: ComfyClient
    socket: ComfySocket
    in_flight: int = 0
    failures: int = 0
    open_until: float = 0.0
    last_checkpoint: str | None = None
    removed: bool = False
    jobs: set[str] = field(default_factory=set)

    @property
    def name(self) -> str:
        """The backend for people to read: host, port and path, without scheme or credentials."""
        parts = urlsplit(without_credentials(self.url))
        return f"{parts.netloc}{parts.path}" or self.url

    @property
    def healthy(self) -> bool:
        return not self.removed and not self.socket.down and time.monotonic() >= self.open_until

    def follow(self, *, client_id: str, prompt_id: str) -> ComfySocket:
        """A socket of its own (not started) that follows `prompt_id`, submitted under `client_id`."""
        return ComfySocket(self.url, client_id=client_id, follows=prompt_id)

    def succeeded(self) -> None:
        self.failures = 0
        self.open_until = 0.0

    def failed(self, *, threshold: int, cooldown_s: float) -> None:
        self.failures += 1
        if self.failures >= threshold:
            self.open_until = time.monotonic() + cooldown_s
        if self.failures == threshold:
            log.warning(
                "backend %s unhealthy after %d failures; skipped for %.0fs", self.name, self.failures, cooldown_s
            )


class BackendPool:
    def __init__(
        self,
        *,
        client_id: str,
        timeout_s: float,
        failure_threshold: int = 3,
        cooldown_s: float = 10.0,
    ) -> None:
        self._client_id = client_id
        self._timeout_s = timeout_s
        self._threshold = failure_threshold
        self._cooldown_s = cooldown_s
        self._backends: dict[str, Backend] = {}
        self._changed: asyncio.Event | None = None

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(self._backends)

    def __iter__(self) -> Iterable[Backend]:
        return iter(list(self._backends.values()))

    def get(self, url: str) -> Backend | None:
        return self._backends.get(url)

    async def reconcile(self, urls: Sequence[str]) -> None:
        """Make the pool hold exactly `urls`; removed backends close once their jobs end."""
        wanted = [u.rstrip("/") for u in urls]
        for url in wanted:
            if url not in self._backends:
                socket = ComfySocket(url, client_id=self._client_id)
                backend = Backend(url, ComfyClient(url, timeout=self._timeout_s), socket)
                socket.on_connection = functools.partial(self._on_connection, backend)
                self._backends[url] = backend
                await socket.start()
                self._signal()
        for url in list(self._backends):
            if url not in wanted:
                backend = self._backends.pop(url)
                backend.removed = True
                if backend.in_flight == 0:
                    await _close(backend)

    def choose(self, *, checkpoint: str | None) -> Backend:
        """A healthy backend: the one with the checkpoint loaded among the least busy, else least busy."""
        by_checkpoint, default = self.choices()
        return by_checkpoint.get(checkpoint or "", default)

    def choices(self) -> tuple[dict[str, Backend], Backend]:
        """`choose()` for every checkpoint at once: the least busy backend that has it loaded, keyed by
        checkpoint ("" for none loaded), and the one any other checkpoint goes to. This is what lets a
        claim record its backend before the generation's checkpoint is known (db.transitions.Placement).
        """
        candidates = [b for b in self._backends.values() if b.healthy]
        if not candidates:
            if not self._backends:
                raise NoBackend("No ComfyUI backend is configured")
            names = ", ".join(b.name for b in self._backends.values())
            raise NoBackend(
                f"Backend {names} is unreachable" if len(self._backends) == 1 else f"Backends {names} are unreachable"
            )
        least = min(b.in_flight for b in candidates)
        idle = [b for b in candidates if b.in_flight == least]
        by_checkpoint: dict[str, Backend] = {}
        for backend in idle:
            by_checkpoint.setdefault(backend.last_checkpoint or "", backend)
        return by_checkpoint, idle[0]

    def _on_connection(self, backend: Backend, up: bool) -> None:
        if up:
            backend.succeeded()
            self._signal()

    def _signal(self) -> None:
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()

    async def wait_for_change(self, timeout: float) -> None:  # noqa: ASYNC109
        """Return when a backend's websocket opens (or one is added), or after `timeout` seconds."""
        if self._changed is None:
            self._changed = asyncio.Event()
        changed = self._changed
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await changed.wait()

    def record(self, backend: Backend, *, ok: bool) -> None:
        if ok:
            backend.succeeded()
        else:
            backend.failed(threshold=self._threshold, cooldown_s=self._cooldown_s)

    async def release(self, backend: Backend) -> None:
        backend.in_flight -= 1
        if backend.removed and backend.in_flight == 0:
            await _close(backend)

    async def close(self) -> None:
        backends, self._backends = list(self._backends.values()), {}
        await asyncio.gather(*(_close(b) for b in backends), return_exceptions=True)


async def _close(backend: Backend) -> None:
    await backend.socket.close()
    await backend.client.aclose()
