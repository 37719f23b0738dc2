"""Uploaded inputs: bytes checked to be one image within the limits, kept content-addressed, one row per owner.

Order of the checks, cheapest first, so a hostile upload costs as little as possible: the owner's
hourly count (Redis), the bytes (bounded while they were read, graph/uploads.py), the image header
(format, dimensions: a decompression bomb is refused here, before any pixel is decoded), Pillow's
`verify()`, then one full decode (a truncated image fails here). Pillow's global
`Image.MAX_IMAGE_PIXELS` is not changed: our pixel limit is checked on the header, and the setting
is kept below Pillow's own threshold so Pillow never answers first with a decode.

Nothing is stored before every check passed: the file goes into the store, then the row.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import time
import unicodedata
import uuid
from dataclasses import dataclass
from typing import Any

from PIL import Image, UnidentifiedImageError
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from comfy.templates import Template, ValidatedParams, input_params
from db import models
from db.engine import single_statement
from db.inputs import add_input, input_by_hash, inputs_of_owner
from jobs.errors import FieldProblem
from jobs.keys import Keys
from jobs.storage import ImageStore

__all__ = [
    "ACCEPTED_FORMATS",
    "MAX_FRAMES",
    "CheckedImage",
    "InputRejected",
    "Intake",
    "check_image",
    "clean_filename",
    "unowned_inputs",
]

log = logging.getLogger(__name__)

# Pillow format → mime (jobs/worker/deliver.py names the file on ComfyUI by it). GIF and WEBP may be
# animated: ComfyUI's LoadImage reads every frame into a batch, so their frames are bounded too.
ACCEPTED_FORMATS: dict[str, str] = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
}
MAX_FRAMES = 100
_MAX_FILENAME = 200


class InputRejected(Exception):
    """An upload refused; `code` and `status` are what the client gets (see graph/uploads.py)."""

    def __init__(self, code: str, message: str, *, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def _not_an_image(message: str) -> InputRejected:
    return InputRejected("NOT_AN_IMAGE", message, status=400)


def _too_many_pixels(message: str) -> InputRejected:
    return InputRejected("TOO_MANY_PIXELS", message, status=422)


@dataclass(frozen=True, slots=True)
class CheckedImage:
    mime: str
    width: int
    height: int


def clean_filename(name: str | None) -> str:
    """The uploader's file name for display: no directories, no control characters, at most 200 characters."""
    if not name:
        return ""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C").strip()
    return base[:_MAX_FILENAME]


def check_image(data: bytes, *, max_pixels: int) -> CheckedImage:
    """One image of an accepted format within `max_pixels` (and `MAX_FRAMES`), fully decodable; else InputRejected.

    Blocking (Pillow): call it in a thread.
    """
    formats = list(ACCEPTED_FORMATS)
    try:
        with Image.open(io.BytesIO(data), formats=formats) as image:
            kind = image.format or ""
            width, height = image.size
            if width * height > max_pixels:
                raise _too_many_pixels(f"{width}x{height} is over the limit of {max_pixels:,} pixels")
            frames = int(getattr(image, "n_frames", 1))
            if frames > MAX_FRAMES:
                raise _too_many_pixels(f"{frames} frames; at most {MAX_FRAMES}")
            image.verify()
            # verify() leaves the image unusable: a second open decodes the (first) frame in full.
            with Image.open(io.BytesIO(data), formats=formats) as image:
                image.load()
    except InputRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Past Pillow's own threshold (above ours): an error, or a warning where warnings are errors
        # (the warnings filters are process-wide and not changed from this thread).
        raise _too_many_pixels(f"the image's dimensions are over the limit of {max_pixels:,} pixels") from None
    except UnidentifiedImageError:
        accepted = ", ".join(formats)
        raise _not_an_image(f"not an image of an accepted format ({accepted})") from None
    except MemoryError:
        raise
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, EOFError... on bad data
        raise _not_an_image(f"the image is truncated or corrupt ({type(exc).__name__})") from None
    if width < 1 or height < 1:
        raise _not_an_image("the image has no pixels")
    mime = ACCEPTED_FORMATS.get(kind, "")
    if not mime:
        raise _not_an_image(f"format {kind or 'unknown'} is not accepted")
    return CheckedImage(mime=mime, width=width, height=height)


def uploads_key(keys: Keys, owner_id: uuid.UUID, hour: int) -> str:
    return f"{keys.namespace}:input-uploads:{owner_id}:{hour}"


class Intake:
    """Takes uploads into inputs for one API process: the per-owner hourly count and bounded decoding.

    `decodes` bounds the full decodes running at once (each holds up to `max_pixels` x 4 bytes).
    """

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        redis: Any,
        keys: Keys,
        store: ImageStore,
        max_pixels: int,
        uploads_per_hour: int,
        decodes: int = 2,
    ) -> None:
        self.sessions = sessions
        self.redis = redis
        self.keys = keys
        self.store = store
        self.max_pixels = max_pixels
        self.uploads_per_hour = uploads_per_hour
        self._decodes = asyncio.Semaphore(decodes)
        self._warned_at = -10.0

    async def count_upload(self, owner_id: uuid.UUID) -> None:
        """Count one upload of the owner in this hour; InputRejected(RATE_LIMITED) past the limit.

        Counted before the body is read, refusals and duplicates included: what it bounds is the work
        uploads cost. Redis away: not counted (as the generation rate is not), with a warning.
        """
        key = uploads_key(self.keys, owner_id, int(time.time() // 3600))
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, 3700)
                count, _ = await pipe.execute()
        except (RedisError, OSError) as error:
            now = time.monotonic()
            if now - self._warned_at > 10.0:
                self._warned_at = now
                log.warning("uploads cannot be counted in Redis (%s); allowed", type(error).__name__)
            return
        if int(count) > self.uploads_per_hour:
            raise InputRejected(
                "RATE_LIMITED",
                f"at most {self.uploads_per_hour} uploads per hour (SAFELIGHT_MAX_INPUT_UPLOADS_PER_HOUR)",
                status=429,
            )

    async def take(self, *, owner_id: uuid.UUID, data: bytes, filename: str) -> models.Input:
        """The owner's input for these bytes: the existing one for the same content, else checked and stored."""
        content_hash = await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
        async with self.sessions() as session:
            existing = await input_by_hash(session, owner_id=owner_id, content_hash=content_hash)
        if existing is not None and await asyncio.to_thread(self.store.path_for(content_hash).is_file):
            return existing  # the same bytes passed every check before
        async with self._decodes:
            checked = await asyncio.to_thread(check_image, data, max_pixels=self.max_pixels)
        stored = await self.store.put(data)
        if stored.content_hash != content_hash:
            raise RuntimeError("the store named the bytes differently")
        async with self.sessions() as session:
            row, _ = await add_input(
                session,
                owner_id=owner_id,
                content_hash=content_hash,
                mime=checked.mime,
                width=checked.width,
                height=checked.height,
                size_bytes=len(data),
                filename=clean_filename(filename),
            )
            await session.commit()
        return row


async def unowned_inputs(
    sessions: async_sessionmaker[AsyncSession], *, owner: models.User, template: Template, params: ValidatedParams
) -> list[FieldProblem]:
    """A problem for each image/mask parameter that names no input the requester may use: their own,
    or, for an admin, anyone's (an admin reads every input already: GET /inputs/<id>, Query.input)."""
    wanted = input_params(template, params)
    if not wanted:
        return []
    async with single_statement(sessions) as session:
        found = await inputs_of_owner(
            session, owner_id=None if owner.is_admin else owner.id, ids={uuid.UUID(v) for v in wanted.values()}
        )
    return [FieldProblem(name, "no such input") for name, value in wanted.items() if uuid.UUID(value) not in found]
