"""What the API asks of the job system: create, cancel, retry and delete generations.

Each operation commits its database change first and then publishes it, so a
subscriber that reads the database after seeing an event always finds it.
Expected failures raise the typed errors of jobs.errors.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from arq.connections import ArqRedis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from comfy.catalog import Catalog
from comfy.templates import (
    RAW_TEMPLATE,
    Limits,
    ParamValidationError,
    build_workflow,
    check_built_workflow,
    check_raw_workflow,
    check_template,
    validate_params,
)
from db import generation_reads, images, quotas, transitions
from db.engine import single_statement
from db.events import EventKind
from db.inputs import input_hashes_in
from db.models import Generation, User
from db.states import ACTIVE, IllegalTransition, Phase, Status
from jobs.bus import BusEvent, publish, publish_change
from jobs.enqueue import (
    RateLimit,
    RateLimited,
    count_rate,
    enqueue_generation,
    give_back_rate,
    request_cancel,
    take_rate,
)
from jobs.errors import BackendUnavailable, FieldProblem, InvalidState, NotAllowed, NotFound, QuotaExceeded, Rejected
from jobs.keys import Keys
from jobs.service.catalogs import CatalogCache
from jobs.service.inputs import unowned_inputs
from jobs.storage import ImageStore
from jobs.templates import RuntimeTemplate, TemplateRegistry
from settings import Settings

__all__ = ["JobService"]

log = logging.getLogger(__name__)

_MAX_IDEMPOTENCY_KEY = 200
_MAX_REMEMBERED = 10_000  # owners remembered over their rate limit (the map is cleared beyond this)


@dataclass(frozen=True, slots=True)
class Created:
    generation: Generation
    created: bool  # False when an idempotency key returned an existing generation


class JobService:
    def __init__(
        self,
        *,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        redis: ArqRedis,
        templates: TemplateRegistry,
        catalogs: CatalogCache,
        store: ImageStore,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.redis = redis
        self.keys = Keys(settings.namespace)
        self.templates = templates
        self.catalogs = catalogs
        self.store = store
        self.limits = Limits.from_settings(settings)
        self._over_rate: dict[uuid.UUID, str] = {}  # owner → the rate key (minute) it went over in
        # The catalogue and template versions last checked against each other.
        self._checked: tuple[Catalog, frozenset[uuid.UUID]] | None = None
        self._template_problems: dict[str, tuple[str, ...]] = {}

    async def create(
        self,
        *,
        owner: User,
        template: str,
        params: Mapping[str, Any],
        idempotency_key: str | None = None,
    ) -> Created:
        existing = await self._created_before(owner.id, idempotency_key)
        if existing is not None:
            return Created(existing, created=False)
        current = await self.templates.current()
        runtime = current.get(template)
        if runtime is None:
            raise Rejected([FieldProblem("template", f"unknown template {template!r}")])
        spec = runtime.template
        catalog = await self.catalogs.get()
        if catalog is None:
            raise BackendUnavailable("no ComfyUI backend is reachable to check models against")
        try:
            validated = validate_params(spec, params, catalog=catalog, limits=self.limits)
        except ParamValidationError as exc:
            raise Rejected([FieldProblem(e.field, e.message) for e in exc.errors]) from None
        unowned = await unowned_inputs(self.sessions, owner=owner, template=spec, params=validated)
        if unowned:
            raise Rejected(unowned)
        if catalog.object_info:
            self._report_templates(catalog, current)
            # The workflow the worker will submit, checked against what the backends offer now.
            built = build_workflow(spec, validated, filename_prefix="safelight")
            problems = check_built_workflow(spec, built, catalog.object_info)
            if problems:
                raise Rejected([FieldProblem(e.field, e.message) for e in problems])
        values = dict(validated.values)
        prompt = values.get("prompt")  # templates need not have one (an upscaler, a blur)
        return await self._insert(
            owner=owner,
            template=spec.name,
            values=values,
            prompt=prompt if isinstance(prompt, str) else "",
            seed=validated.seed if validated.seed is not None else 0,
            idempotency_key=idempotency_key,
            template_version_id=runtime.version_id,
        )

    def _report_templates(self, catalog: Catalog, current: Mapping[str, RuntimeTemplate]) -> None:
        """Log, once per change, every template that does not fit what the backends now offer (the
        operator's early warning: requests for it are refused, each naming the node and input)."""
        versions = frozenset(t.version_id for t in current.values())
        if self._checked is not None and self._checked[0] is catalog and self._checked[1] == versions:
            return
        self._checked = (catalog, versions)
        problems = {
            name: tuple(f"{e.field}: {e.message}" for e in check_template(t.template, catalog.object_info))
            for name, t in current.items()
        }
        problems = {name: found for name, found in problems.items() if found}
        if problems != self._template_problems:
            for name, found in problems.items():
                log.warning("template %r does not fit the backends: %s", name, "; ".join(found[:10]))
            self._template_problems = problems

    async def create_raw(self, *, owner: User, workflow: Any, idempotency_key: str | None = None) -> Created:
        """An admin's own API-format workflow, held to the node-class allowlist (SPEC §4)."""
        if not owner.is_admin:
            raise NotAllowed("raw workflows are for admins; use a template")
        existing = await self._created_before(owner.id, idempotency_key)
        if existing is not None:
            return Created(existing, created=False)
        catalog = await self.catalogs.get()
        if catalog is None:
            raise BackendUnavailable("no ComfyUI backend is reachable to check the workflow against")
        try:
            checked = check_raw_workflow(
                workflow, allowed_classes=self.settings.raw_node_classes, object_info=catalog.object_info
            )
        except ParamValidationError as exc:
            raise Rejected([FieldProblem(e.field, e.message) for e in exc.errors]) from None
        texts = [str(n["inputs"].get("text", "")) for n in checked.values() if n["class_type"] == "CLIPTextEncode"]
        seeds = [n["inputs"].get("seed") for n in checked.values() if isinstance(n["inputs"].get("seed"), int)]
        return await self._insert(
            owner=owner,
            template=RAW_TEMPLATE,
            values={"workflow": checked},
            prompt=" | ".join(t for t in texts if t)[: self.settings.max_prompt_length],
            seed=int(seeds[0]) if seeds else 0,
            idempotency_key=idempotency_key,
        )

    async def _insert(
        self,
        *,
        owner: User,
        template: str,
        values: dict[str, Any],
        prompt: str,
        seed: int,
        idempotency_key: str | None,
        template_version_id: uuid.UUID | None = None,
    ) -> Created:
        rate = self._rate_limit(owner.id)
        limit = self.settings.max_active_per_user
        # The owner's rate is counted while the row is inserted: two round trips side by side, where one
        # after the other put a Redis round trip between the request and the job's pickup.
        counting = asyncio.create_task(self._count_rate(rate, owner.id))
        try:
            async with single_statement(self.sessions) as session:
                change, created = await transitions.create_generation(
                    session,
                    owner_id=owner.id,
                    template=template,
                    params=values,
                    prompt=prompt,
                    seed=seed,
                    idempotency_key=idempotency_key,
                    max_active=limit,
                    namespace=self.keys.namespace,
                    template_version_id=template_version_id,
                )
        except transitions.ActiveLimitReached:
            await self._give_back_rate(rate, counting)  # nothing was made: not counted
            raise self._active_exceeded() from None
        except Exception:
            await self._give_back_rate(rate, counting)  # nothing was made (the database unreachable, say)
            raise
        except BaseException:
            counting.add_done_callback(_retrieved)
            raise
        if not created:
            await self._give_back_rate(rate, counting)  # the idempotency key's generation: nothing new
            return Created(change.generation, created=False)
        if await counting is False:
            # Over the rate: the generation was never announced nor queued; it is deleted again.
            async with single_statement(self.sessions) as session:
                await transitions.delete_generation(session, generation_id=change.generation.id)
            self._over_rate[owner.id] = rate.key
            raise self._rate_exceeded()
        # Committed (one autocommit statement): the job, then the QUEUED event with the wake-up.
        await self._enqueue(change.generation.id, 1, event=BusEvent.from_row(change.event, owner_id=owner.id))
        return Created(change.generation, created=True)

    async def _count_rate(self, rate: RateLimit, owner_id: uuid.UUID) -> bool | None:
        """One create counted in the owner's rate: within it or not; None when Redis is down (then an
        outage does not refuse work the database has taken: the create is allowed, not counted)."""
        try:
            return await count_rate(self.redis, rate)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            log.warning("could not count the rate of %s (%s); allowed", owner_id, exc)
            return None

    async def _give_back_rate(self, rate: RateLimit, counting: asyncio.Task[bool | None]) -> None:
        if await counting is None:
            return
        try:
            await give_back_rate(self.redis, rate)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            log.warning("could not give back a count of %s (%s)", rate.key, exc)

    def _rate_limit(self, owner_id: uuid.UUID) -> RateLimit:
        """This minute's counter of the owner's new generations (counted beside the INSERT, `_count_rate`).

        An owner this process saw over the limit in this minute is refused at once: a refused request
        costs no INSERT (and DELETE) then, only the check that the counter can no longer pass.
        """
        key = self.keys.rate(str(owner_id), int(time.time() // 60))
        if self._over_rate.get(owner_id) == key:
            raise self._rate_exceeded()
        if len(self._over_rate) > _MAX_REMEMBERED:
            self._over_rate.clear()
        return RateLimit(key, self.settings.rate_limit_per_minute)

    async def _take_rate(self, rate: RateLimit, owner_id: uuid.UUID) -> None:
        """Count one unit of work that is not a create in the owner's rate (Redis down: not counted)."""
        try:
            await take_rate(self.redis, rate)
        except RateLimited:
            self._over_rate[owner_id] = rate.key
            raise self._rate_exceeded() from None
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            log.warning("could not count the rate of %s (%s); allowed", owner_id, exc)

    def _active_exceeded(self) -> QuotaExceeded:
        limit = self.settings.max_active_per_user
        return QuotaExceeded(f"at most {limit} queued or running generations per user", limit=limit)

    def _rate_exceeded(self) -> QuotaExceeded:
        limit = self.settings.rate_limit_per_minute
        return QuotaExceeded(f"at most {limit} generations per minute", limit=limit)

    async def _enqueue(self, generation_id: uuid.UUID, attempt: int, *, event: BusEvent | None = None) -> None:
        """Enqueue (then publish `event` with the wake-up); if Redis is down the generation stays QUEUED
        and a worker's recovery enqueues it."""
        try:
            await enqueue_generation(
                self.redis,
                self.keys,
                generation_id=generation_id,
                attempt=attempt,
                event="" if event is None else event.encode(),
            )
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            log.warning("could not enqueue %s (%s); recovery will pick it up", generation_id, exc)

    async def _created_before(self, owner_id: uuid.UUID, idempotency_key: str | None) -> Generation | None:
        """What an earlier request of the owner with this key created (None: none, or no key); the key is bounded."""
        if idempotency_key is None:
            return None
        if not 1 <= len(idempotency_key) <= _MAX_IDEMPOTENCY_KEY:
            raise Rejected([FieldProblem("idempotencyKey", f"must be 1 to {_MAX_IDEMPOTENCY_KEY} characters")])
        async with single_statement(self.sessions) as session:
            return await generation_reads.by_idempotency_key(
                session, owner_id=owner_id, idempotency_key=idempotency_key
            )

    async def _get(self, session: AsyncSession, generation_id: uuid.UUID, viewer: User) -> Generation:
        generation = await generation_reads.get_generation(
            session, generation_id=generation_id, owner_id=None if viewer.is_admin else viewer.id
        )
        if generation is None:
            raise NotFound(f"no generation {generation_id}")
        return generation

    async def cancel(self, *, generation_id: uuid.UUID, viewer: User) -> Generation:
        """QUEUED ends CANCELLED at once; RUNNING goes CANCELLING and its worker is told.

        Each attempt is one guarded UPDATE (with its event) and no read first: a RUNNING generation
        is tried first (the worker then has to act), a refusal says what the generation is instead.
        """
        owner_id = None if viewer.is_admin else viewer.id
        target, source = Status.CANCELLING, Status.RUNNING
        for _ in range(10):
            async with single_statement(self.sessions) as session:
                try:
                    change = await transitions.transition(
                        session, generation_id=generation_id, to=target, owner_id=owner_id, sources=(source,)
                    )
                except transitions.GenerationNotFound:
                    raise NotFound(f"no generation {generation_id}") from None
                except IllegalTransition as exc:
                    current = exc.current
                    if current is Status.CANCELLING:
                        return await self._get(session, generation_id, viewer)
                    if current.is_terminal:
                        raise InvalidState(f"generation is already {current.value}", status=current) from None
                    # QUEUED, or RUNNING again after a worker's retry: try that one.
                    target = Status.CANCELLED if current is Status.QUEUED else Status.CANCELLING
                    source = current
                    continue
            event = BusEvent.from_row(change.event, owner_id=change.generation.owner_id)
            if target is Status.CANCELLING:
                await request_cancel(self.redis, self.keys, generation_id=generation_id, event=event)
            else:
                await publish(self.redis, self.keys, event)
            return change.generation
        raise InvalidState("generation keeps changing state; try again", status=source)

    async def retry(self, *, generation_id: uuid.UUID, viewer: User) -> Generation:
        """A new attempt of a FAILED or CANCELLED generation, on the same record.

        Held to the owner's active limit (counted under the owner's lock, held until the QUEUED
        status commits, as a create is) and counted in the owner's rate, as a create is.
        """
        async with self.sessions() as session:
            generation = await self._get(session, generation_id, viewer)
            if generation.status not in (Status.FAILED, Status.CANCELLED):
                raise InvalidState(
                    f"only FAILED or CANCELLED generations can be retried, not {generation.status.value}",
                    status=generation.status,
                )
            owner_id = generation.owner_id
            limit = self.settings.max_active_per_user
            if await quotas.lock_and_count_active(session, owner_id=owner_id) >= limit:
                raise self._active_exceeded()
            await self._take_rate(self._rate_limit(owner_id), owner_id)
            try:
                change = await transitions.transition(
                    session,
                    generation_id=generation_id,
                    to=Status.QUEUED,
                    values=_fresh_attempt(generation.attempt + 1),
                )
            except IllegalTransition as exc:
                raise InvalidState(str(exc), status=exc.current) from None
            await session.commit()
        await publish_change(self.redis, self.keys, change)
        await self._enqueue(generation_id, change.generation.attempt)
        return change.generation

    async def delete(self, *, generation_id: uuid.UUID, viewer: User) -> None:
        """Delete a generation with its images; a running one is cancelled on its backend first."""
        async with self.sessions() as session:
            generation = await self._get(session, generation_id, viewer)
            owner_id, was_active = generation.owner_id, generation.status in ACTIVE
            hashes = await transitions.delete_generation(session, generation_id=generation_id)
            await session.commit()
            still_used = await images.content_hashes_in_use(session, content_hashes=hashes)
            still_used |= await input_hashes_in(session, content_hashes=hashes)  # an output used as an input
        if was_active:
            await request_cancel(self.redis, self.keys, generation_id=generation_id)
        await self.store.delete_unreferenced(hashes, still_used)
        await publish(
            self.redis,
            self.keys,
            BusEvent(
                generation_id=generation_id,
                owner_id=owner_id,
                seq=generation.last_seq,
                kind=EventKind.DELETED,
                payload={},
                at=time.time(),
            ),
        )


def _retrieved(task: asyncio.Task[bool | None]) -> None:
    """A count whose create failed: its outcome is not needed (read so that asyncio does not report it)."""
    if not task.cancelled():
        task.exception()


def _fresh_attempt(attempt: int) -> dict[str, Any]:
    return {
        "attempt": attempt,
        "phase": Phase.WAITING,
        "percent": 0.0,
        "step": None,
        "max_steps": None,
        "current_node": None,
        "queue_position": None,
        "lease": None,
        "backend_url": None,
        "prompt_id": None,
        "error_code": None,
        "error_message": None,
        "error_retryable": None,
        "error_node": None,
        "error_input": None,
        "started_at": None,
        "finished_at": None,
    }
