"""Subscriptions: a generation's events (snapshot or replay, then live) and all of a viewer's.

The handoff from stored state to live events loses and duplicates nothing:
1. register with the in-process hub first, so every event published from now
   on is buffered in the listener's inbox;
2. read the snapshot (or the durable events after `after`) from PostgreSQL;
3. drain the inbox, dropping durable events already covered by what was read
   (seq <= last) and ephemeral ones older than it; a durable event beyond
   last+1 means one was missed (a lost message), so the gap is read back from
   the log before going on.
A `GAP` from the hub (Redis reconnected) and `QUIET` (nothing heard for a while)
both trigger a catch-up from the log, so the terminal event always arrives; a
quiet one first asks the shared `last_seq` read (graph/lastseq.py).

PostgreSQL unreachable (restarting, a network blip): every read a subscription makes is tried
again with backoff (`patiently`) for up to `DB_OUTAGE_S`, instead of ending the subscription.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import random
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import strawberry

from db import generation_reads
from db.events import EventKind as DbEventKind
from db.events import EventPosition, database_now, events_after, owner_events_after
from db.models import Generation as GenerationRow
from db.models import GenerationEvent as EventRow
from db.models import User
from db.payloads import ImagePayload, PreviewPayload, ProgressPayload, StatusPayload
from db.reachability import database_unreachable
from graph.context import BadRequest, Context
from graph.execution import share_results
from graph.fanout import QUIET
from graph.queries import parse_id
from graph.status import SystemStatusType, watch_system_status
from graph.types import EventKind, Generation, GenerationError, GenerationEvent, Image, Progress
from jobs.bus import BusEvent

__all__ = ["Subscription", "to_event"]

QUIET_CHECK_S = 15.0
# A feed's check of the log after silence (a publish that never reached the bus while it stayed up; a
# bus reconnect is a GAP, read back at once): each is a read of its own, not shared, so less often.
FEED_QUIET_CHECK_S = 60.0
DB_OUTAGE_S = 300.0  # how long a subscription waits for PostgreSQL to come back before it errors
_DB_RETRY_FIRST_S = 0.1
_DB_RETRY_MAX_S = 2.0
_T = TypeVar("_T")


async def patiently(read: Callable[[], Awaitable[_T]], *, outage_s: float = DB_OUTAGE_S) -> _T:
    """`read()`, tried again with backoff (jittered, up to 2 s apart) while the database is unreachable."""
    delay = _DB_RETRY_FIRST_S
    deadline = time.monotonic() + outage_s
    while True:
        try:
            return await read()
        except Exception as exc:
            if not database_unreachable(exc) or time.monotonic() + delay > deadline:
                raise
        await asyncio.sleep(delay * random.uniform(0.5, 1.0))
        delay = min(delay * 2, _DB_RETRY_MAX_S)


class GenerationNotFoundError(Exception):
    pass


def to_event(event: BusEvent, *, base_url: str) -> GenerationEvent:
    """The GraphQL form of a bus event: one object per event and base URL, shared by every local subscriber.

    Each subscriber with the same operation then receives one shared execution result
    (graph/execution.py), so nothing here may depend on who is watching: it carries no `generation`
    (whose fields read the viewer's loaders), only the event's own values.
    """
    views = event.views
    out = views.get(base_url)
    if out is None:
        out = views[base_url] = share_results(_convert(event, base_url=base_url))
    return out


def _convert(event: BusEvent, *, base_url: str) -> GenerationEvent:
    payload = event.payload
    out = GenerationEvent(
        generation_id=strawberry.ID(str(event.generation_id)),
        seq=event.seq,
        kind=EventKind.DELETED,
        at=event.at,
        terminal=False,
    )
    out.cursor = encode_event_cursor(event)
    kind = event.kind
    if kind is DbEventKind.STATUS:
        status = StatusPayload.decode(payload)
        out.kind = EventKind.STATUS
        out.terminal = status.status.is_terminal
        out.status = status.status
        out.attempt = status.attempt
        out.error = GenerationError.from_payload(status.error)
    elif kind is DbEventKind.PROGRESS:
        out.kind = EventKind.PROGRESS
        out.progress = Progress.from_payload(ProgressPayload.decode(payload))
    elif kind is DbEventKind.IMAGE:
        out.kind = EventKind.IMAGE
        image = ImagePayload.decode(payload)
        out.image = Image.from_payload(image, base_url=base_url, generation_id=event.generation_id)
    elif kind is DbEventKind.PREVIEW:
        out.kind = EventKind.PREVIEW
        out.preview_url = f"{base_url}/previews/{PreviewPayload.decode(payload).token}"
    else:
        out.terminal = True  # DELETED
    return out


def _snapshot(row: Generation, *, at: float) -> GenerationEvent:
    return GenerationEvent(
        generation_id=row.id,
        seq=row.last_seq,
        kind=EventKind.SNAPSHOT,
        at=at,
        terminal=row.status.is_terminal,
        status=row.status,
        attempt=row.attempt,
        error=row.error,
        progress=row.progress,
        generation=row,
    )


class _Stream:
    """The ordered, deduplicated event stream of one generation for one subscriber."""

    def __init__(self, info: strawberry.Info[Context, None], gid: uuid.UUID, owner: uuid.UUID) -> None:
        self.context = info.context
        self.gid = gid
        self.owner = owner
        self.last = 0
        self.done = False

    def _emit(self, event: BusEvent) -> GenerationEvent:
        out = to_event(event, base_url=self.context.base_url)
        if event.durable:
            self.last = event.seq
        self.done = out.terminal
        return out

    async def catch_up(self, *, quiet: bool = False) -> list[GenerationEvent]:
        if quiet:
            # Only a check: one read shared by every quiet subscriber of this generation. Anything new
            # (or the generation gone) is then read afresh below.
            last_seq = await patiently(lambda: self.context.state.last_seqs.get(self.gid))
            if last_seq is not None and last_seq <= self.last:
                return []
        last_seq, rows = await patiently(self._read)
        if last_seq is None:
            self.done = True
            return [
                GenerationEvent(
                    generation_id=strawberry.ID(str(self.gid)), seq=self.last, kind=EventKind.DELETED,
                    at=time.time(), terminal=True,
                )
            ]  # fmt: skip
        return [self._emit(self._from_row(row)) for row in rows]

    async def _read(self) -> tuple[int | None, Sequence[EventRow]]:
        async with self.context.state.sessions() as session:
            # The row's last sequence number first: a quiet check (the common catch-up) finds
            # nothing new with this one small query and reads no event.
            last_seq = await generation_reads.last_seq(session, generation_id=self.gid)
            rows: Sequence[EventRow] = ()
            if last_seq is not None and last_seq > self.last:
                rows = await events_after(session, generation_id=self.gid, after_seq=self.last)
        return last_seq, rows

    def _from_row(self, row: EventRow) -> BusEvent:
        return BusEvent.from_row(row, owner_id=self.owner)

    async def accept(self, item: BusEvent | object) -> list[GenerationEvent]:
        if not isinstance(item, BusEvent):  # GAP or QUIET
            return await self.catch_up(quiet=item is QUIET)
        if item.kind is DbEventKind.DELETED:
            self.done = True
            return [to_event(item, base_url=self.context.base_url)]
        if not item.durable:
            return [] if item.seq < self.last else [self._emit(item)]
        if item.seq <= self.last:
            return []
        if item.seq > self.last + 1:
            return await self.catch_up()
        return [self._emit(item)]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Event times come from PostgreSQL's clock at each statement's start, so an event may commit a little
# after a later-stamped one: a catch-up reads again this far behind what it has seen (deduplicated).
FEED_OVERLAP = timedelta(seconds=10)
_FEED_PAGE = 1000
_FEED_SEEN_MAX = 10_000  # generations whose last delivered seq a feed remembers


def encode_event_cursor(event: BusEvent) -> str | None:
    """The opaque cursor of a durable event: its place (time, generation, seq) in the event log."""
    if not event.durable:
        return None
    micros = round(event.at * 1_000_000)  # exact: `at` is the stored microsecond time as a float
    raw = f"{micros}|{event.generation_id}|{event.seq}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_event_cursor(cursor: str) -> EventPosition:
    """Raise BadRequest for anything that is not a cursor we issued."""
    try:
        if len(cursor) > 200:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        micros, gid, seq = raw.split("|")
        return _EPOCH + timedelta(microseconds=int(micros)), uuid.UUID(gid), int(seq)
    except (ValueError, UnicodeDecodeError, OverflowError) as exc:
        raise BadRequest(f"malformed cursor {cursor[:80]!r}") from exc


class _Feed:
    """The ordered, deduplicated events of all of one owner's generations (None: everyone's).

    It remembers the last durable seq it delivered per generation: a durable event at or below it is
    a duplicate, one beyond the next is a gap (read back from the log), and an ephemeral one older than
    it is stale. A generation first seen with seq > 1 after the feed's start has its earlier events
    read back too. `GAP` and `QUIET` read everything after the feed's position (less `FEED_OVERLAP`).
    """

    def __init__(self, context: Context, owner: uuid.UUID | None) -> None:
        self.context = context
        self.owner = owner
        self.namespace = context.state.settings.namespace
        self.floor: EventPosition | None = None  # nothing at or before it is delivered
        self.position: datetime | None = None  # the latest delivered (or read) event time
        self.seen: OrderedDict[uuid.UUID, int] = OrderedDict()

    async def open(self, after: EventPosition | None) -> list[GenerationEvent]:
        if after is None:
            # From now on, by the database's clock (the one event times come from).
            now = await patiently(self._now)
            self.floor = (now, _MAX_UUID, 0)
            self.position = now
            return []
        self.floor = after
        self.position = after[0]
        return await self._read_from(after)

    async def _now(self) -> datetime:
        async with self.context.state.sessions() as session:
            return await database_now(session)

    async def accept(self, item: BusEvent | object) -> list[GenerationEvent]:
        if not isinstance(item, BusEvent):  # GAP or QUIET: read what the bus may have lost
            return await self.catch_up()
        if not item.durable:
            if item.kind is not DbEventKind.DELETED and item.seq < self.seen.get(item.generation_id, 0):
                return []  # older than what was delivered (a late progress)
            if item.kind is DbEventKind.DELETED:
                self.seen.pop(item.generation_id, None)
            return [to_event(item, base_url=self.context.base_url)]
        last = self.seen.get(item.generation_id)
        if last is not None and item.seq <= last:
            return []
        if (last is not None and item.seq > last + 1) or (last is None and item.seq > 1):
            # A durable event went missing (or may have, for a generation first seen here).
            return await self._read_generation(item)
        return self._deliver([item], live=item)

    async def catch_up(self) -> list[GenerationEvent]:
        assert self.floor is not None and self.position is not None
        since = self.position - FEED_OVERLAP
        return await self._read_from((since, _MIN_UUID, 0))

    async def _read_from(self, start: EventPosition) -> list[GenerationEvent]:
        out: list[GenerationEvent] = []
        while True:
            read_at, rows = await patiently(functools.partial(self._page, start))
            out += self._deliver([BusEvent.from_row(row, owner_id=owner) for row, owner in rows])
            if len(rows) < _FEED_PAGE:
                # Everything stamped before this read began is read now (but for a statement still
                # committing: the overlap): the next catch-up need not go back further, however long
                # the viewer has been idle.
                if self.position is None or read_at > self.position:
                    self.position = read_at
                return out
            last = rows[-1][0]
            start = (last.created_at, last.generation_id, last.seq)

    async def _page(self, start: EventPosition) -> tuple[datetime, list[tuple[EventRow, uuid.UUID]]]:
        """The database's time at the start of the read (its transaction's), and the page of events."""
        async with self.context.state.sessions() as session:
            read_at = await database_now(session)
            rows = await owner_events_after(
                session, namespace=self.namespace, owner_id=self.owner, after=start, limit=_FEED_PAGE
            )
            return read_at, rows

    async def _read_generation(self, item: BusEvent) -> list[GenerationEvent]:
        """The durable events of `item`'s generation after the last delivered one, up to and with `item`."""
        gid = item.generation_id
        after_seq = self.seen.get(gid, 0)

        async def read() -> Sequence[EventRow]:
            async with self.context.state.sessions() as session:
                return await events_after(session, generation_id=gid, after_seq=after_seq, limit=_FEED_PAGE)

        rows = await patiently(read)
        events = [BusEvent.from_row(row, owner_id=item.owner_id) for row in rows if row.seq <= item.seq]
        if not any(event.seq == item.seq for event in events):
            events.append(item)  # not readable (deleted meanwhile): as it came
        return self._deliver(events, live=item)

    def _deliver(self, events: list[BusEvent], *, live: BusEvent | None = None) -> list[GenerationEvent]:
        """Deliver what is new of `events`. Those read from the log must also be after the feed's
        floor; a live one is new whatever its time (stamped before the feed began, committed after)."""
        out = []
        floor = self.floor
        for event in events:
            gid = event.generation_id
            last = self.seen.get(gid, 0)
            if event.seq <= last:
                continue
            at = _EPOCH + timedelta(microseconds=round(event.at * 1_000_000))
            is_live = live is not None and gid == live.generation_id and event.seq == live.seq
            if not is_live and floor is not None and (at, gid, event.seq) <= floor:
                continue  # before this feed began (or at the client's cursor)
            self.seen[gid] = event.seq
            self.seen.move_to_end(gid)
            if len(self.seen) > _FEED_SEEN_MAX:
                self.seen.popitem(last=False)
            if self.position is None or at > self.position:
                self.position = at
            out.append(to_event(event, base_url=self.context.base_url))
        return out


_MIN_UUID = uuid.UUID(int=0)
_MAX_UUID = uuid.UUID(int=(1 << 128) - 1)


async def _open(
    info: strawberry.Info[Context, None], viewer: User, id: strawberry.ID, gid: uuid.UUID, after: int | None
) -> tuple[_Stream, list[GenerationEvent]]:
    """The stream and its first events (the SNAPSHOT, or the replay after `after`).

    A function of its own so that the row and the snapshot are not locals of the subscription's
    generator, which would keep them for as long as the subscription lives.
    """

    async def read() -> GenerationRow | None:
        async with info.context.state.sessions() as session:
            owner = None if viewer.is_admin else viewer.id
            return await generation_reads.get_generation(session, generation_id=gid, owner_id=owner)

    row = await patiently(read)
    if row is None:
        raise GenerationNotFoundError(f"no generation {id}")
    stream = _Stream(info, gid, row.owner_id)
    if after is None:
        stream.last = row.last_seq
        stream.done = row.status.is_terminal
        return stream, [_snapshot(Generation.from_row(row), at=row.updated_at.timestamp())]
    stream.last = max(0, after)
    return stream, await stream.catch_up()


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description=(
            "A generation's events: a SNAPSHOT first (or, with `after`, every durable event after that "
            "sequence number), then live events until the terminal one; then the subscription completes."
        )
    )
    async def generation_events(
        self, info: strawberry.Info[Context, None], id: strawberry.ID, after: int | None = None
    ) -> AsyncGenerator[GenerationEvent, None]:
        viewer = info.context.viewer
        gid = parse_id(id)
        if gid is None:
            raise GenerationNotFoundError(f"no generation {id}")
        info.context.loaders.retry_reads(patiently)  # the SNAPSHOT's fields wait out an outage too
        # Registered before reading, so nothing published from now on is lost. A quiet listener gets
        # QUIET and checks the log; jittered, so subscriptions opened together don't check together.
        listener = info.context.listen(gid, quiet_after_s=QUIET_CHECK_S * random.uniform(0.75, 1.25))
        try:
            stream, events = await _open(info, viewer, id, gid, after)
            while events:
                yield events.pop(0)  # popped, not iterated: an idle subscription keeps no event alive
            while not stream.done:
                events = await stream.accept(await listener.get())
                while events:
                    yield events.pop(0)
        finally:
            info.context.release(listener)

    @strawberry.subscription(
        description=(
            "Live events of all the viewer's generations (admins: everyone's). Never completes. With `after` "
            "(the `cursor` of a durable event received before), every durable event after it is replayed "
            "first: a client that reconnects misses nothing. Durable events lost on the way (the event bus "
            "restarted, a publish failed) are read back from the log."
        )
    )
    async def my_generation_events(
        self, info: strawberry.Info[Context, None], after: str | None = None
    ) -> AsyncGenerator[GenerationEvent, None]:
        viewer = info.context.viewer
        owner = None if viewer.is_admin else viewer.id
        start = None if after is None else decode_event_cursor(after)
        info.context.loaders.retry_reads(patiently)
        listener = info.context.listen(owner, quiet_after_s=FEED_QUIET_CHECK_S * random.uniform(0.75, 1.25))
        try:
            feed = _Feed(info.context, owner)
            events = await feed.open(start)
            while events:
                yield events.pop(0)
            while True:
                events = await feed.accept(await listener.get())
                while events:
                    yield events.pop(0)  # popped: an idle subscription keeps no event alive
        finally:
            info.context.release(listener)

    system_status: AsyncGenerator[SystemStatusType, None] = strawberry.subscription(
        resolver=watch_system_status, description="System status whenever it changes (admins only)."
    )
