"""Everything a worker's jobs share, built once in arq's on_startup and torn down in on_shutdown."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from jobs.backends import BackendPool
from jobs.keys import Keys
from jobs.storage import ImageStore
from jobs.templates import TemplateRegistry
from settings import Settings

if TYPE_CHECKING:
    from jobs.worker.run import GenerationRun

__all__ = ["Runtime"]


@dataclass
class Runtime:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    redis: ArqRedis
    keys: Keys
    backends: BackendPool
    store: ImageStore
    templates: TemplateRegistry  # a generation's exact template version, by id
    worker_id: str
    # The generations this worker runs now, so a cancel request finds its job.
    running: dict[uuid.UUID, GenerationRun] = field(default_factory=dict)
