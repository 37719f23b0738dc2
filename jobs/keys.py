"""Every Redis key and channel name Safelight uses, under one namespace."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Keys"]


@dataclass(frozen=True, slots=True)
class Keys:
    namespace: str

    @property
    def queue(self) -> str:
        """The arq queue (a sorted set)."""
        return f"{self.namespace}:queue"

    @property
    def events(self) -> str:
        """Pub/sub channel carrying every generation event to every API process."""
        return f"{self.namespace}:events"

    @property
    def control(self) -> str:
        """Pub/sub channel from the API to workers: cancel requests and wake-ups."""
        return f"{self.namespace}:control"

    @property
    def backends(self) -> str:
        """JSON list of ComfyUI URLs; overrides COMFYUI_URLS while set (jobs/backend_list.py)."""
        return f"{self.namespace}:backends"

    @property
    def workers(self) -> str:
        """Sorted set of worker ids by last heartbeat (for system status)."""
        return f"{self.namespace}:workers"

    def worker(self, worker_id: str) -> str:
        """A worker's heartbeat record; it expires when the worker stops beating."""
        return f"{self.namespace}:worker:{worker_id}"

    def worker_jobs(self, worker_id: str) -> str:
        """The arq job ids a worker runs, by lease: outlives its heartbeat (for as long as arq's in-progress
        key can), so that recovery can clean up the jobs of a worker killed without a goodbye."""
        return f"{self.namespace}:worker-jobs:{worker_id}"

    def preview(self, token: str) -> str:
        """A short-lived preview image."""
        return f"{self.namespace}:preview:{token}"

    def rate(self, user_id: str, minute: int) -> str:
        return f"{self.namespace}:rate:{user_id}:{minute}"

    @property
    def templates_epoch(self) -> str:
        """A counter incremented by each template save: an API process whose cache was loaded at another
        value reloads the templates (jobs/templates.py)."""
        return f"{self.namespace}:templates-epoch"

    def catalog(self, backend_url: str) -> str:
        return f"{self.namespace}:catalog:{backend_url}"
