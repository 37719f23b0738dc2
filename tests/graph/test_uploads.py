"""POST /inputs: an image in, an input id out; every bad upload a typed error, and nothing stored for it."""

from __future__ import annotations

import asyncio
import io
import json
import random
import struct
import uuid
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from comfy.fake.server import FakeHandle
from db.models import Generation, Input
from db.users import create_token, ensure_user
from jobs.service.inputs import MAX_FRAMES
from settings import Settings
from tests.stack import serve

MAX_BYTES = 200_000
MAX_PIXELS = 1024 * 1024
PER_HOUR = 50


def picture(kind: str = "PNG", size: tuple[int, int] = (32, 24), color: tuple[int, int, int] = (200, 80, 20)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format=kind)
    return out.getvalue()


def noise_png(side: int) -> bytes:
    """A PNG that does not compress: side*side*3 bytes and then some."""
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), random.Random(side).randbytes(side * side * 3)).save(out, format="PNG")
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A tiny file that claims width x height: the decompression bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@dataclass
class Uploader:
    http: httpx.AsyncClient
    token: str
    user_id: uuid.UUID

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def upload(self, data: bytes, *, filename: str = "in.png", **kwargs: Any) -> httpx.Response:
        return await self.http.post(
            "/inputs", files={"file": (filename, data, "application/octet-stream")}, headers=self.headers, **kwargs
        )


@dataclass
class UploadApi:
    url: str
    store: Path
    sessions: async_sessionmaker[AsyncSession]
    make: Callable[..., Awaitable[Uploader]]

    def stored_files(self) -> int:
        return sum(1 for p in self.store.rglob("*") if p.is_file()) if self.store.exists() else 0

    async def rows(self) -> int:
        async with self.sessions() as session:
            return int((await session.execute(select(func.count()).select_from(Input))).scalar_one())

    async def footprint(self) -> tuple[int, int]:
        return self.stored_files(), await self.rows()

    async def generations(self) -> int:
        async with self.sessions() as session:
            return int((await session.execute(select(func.count()).select_from(Generation))).scalar_one())


@pytest.fixture(scope="module")
async def api(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    tmp_path_factory: pytest.TempPathFactory,
    fake_comfy: FakeHandle,
) -> AsyncIterator[UploadApi]:
    """An API of its own: small limits, and a store nothing else writes to (its files are counted)."""
    from graph.app import create_app

    store = tmp_path_factory.mktemp("upload-store")
    own = settings.model_copy(
        update={
            "comfyui_urls": (fake_comfy.url,),
            "storage_dir": store,
            "max_input_bytes": MAX_BYTES,
            "max_input_pixels": MAX_PIXELS,
            "max_input_uploads_per_hour": PER_HOUR,
            "namespace": f"uploads-{uuid.uuid4().hex[:8]}",
        }
    )
    clients: list[httpx.AsyncClient] = []

    async with serve(create_app(own)) as url:

        async def make(*, admin: bool = False) -> Uploader:
            async with session_factory() as session:
                user = await ensure_user(session, name=f"up-{uuid.uuid4().hex[:8]}", is_admin=admin)
                token = await create_token(session, user_id=user.id, name="test")
                await session.commit()
            http = httpx.AsyncClient(base_url=url, timeout=30)
            clients.append(http)
            return Uploader(http, token, user.id)

        yield UploadApi(url, store, session_factory, make)
        for http in clients:
            await http.aclose()


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["code"] == code, response.text
    assert response.json()["error"]["message"]


async def test_a_png_and_a_jpeg_become_inputs_and_the_same_bytes_the_same_input(api: UploadApi) -> None:
    alice = await api.make()
    png, jpeg = picture("PNG"), picture("JPEG", (40, 30))
    first = await alice.upload(png, filename="C:\\photos\\cat.png")
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["mime"] == "image/png" and (body["width"], body["height"]) == (32, 24)
    assert body["sizeBytes"] == len(png) and len(body["contentHash"]) == 64
    assert body["filename"] == "cat.png"
    uuid.UUID(body["id"])
    files, rows = await api.footprint()

    again = await alice.upload(png, filename="other-name.png")
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    assert await api.footprint() == (files, rows), "the same bytes again stored something"

    photo = await alice.upload(jpeg, filename="photo.jpg")
    assert photo.status_code == 200, photo.text
    assert photo.json()["mime"] == "image/jpeg" and photo.json()["id"] != body["id"]

    # Another owner's upload of the same bytes is an input of theirs; the stored file is shared.
    bob = await api.make()
    his = await bob.upload(png)
    assert his.status_code == 200 and his.json()["id"] != body["id"]
    assert his.json()["contentHash"] == body["contentHash"]


@pytest.mark.parametrize(("kind", "mime"), [("WEBP", "image/webp"), ("GIF", "image/gif"), ("BMP", "image/bmp")])
async def test_webp_gif_and_bmp_are_accepted(api: UploadApi, kind: str, mime: str) -> None:
    alice = await api.make()
    response = await alice.upload(picture(kind, (20, 10)))
    assert response.status_code == 200, response.text
    assert (response.json()["mime"], response.json()["width"], response.json()["height"]) == (mime, 20, 10)


async def test_an_animation_of_too_many_frames_is_refused(api: UploadApi) -> None:
    """ComfyUI's LoadImage reads every frame into one batch: frames are bounded like pixels."""
    frames = [Image.new("RGB", (8, 8), (i, 255 - i, i // 2)) for i in range(MAX_FRAMES + 1)]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:])
    alice = await api.make()
    before = await api.footprint()
    assert_error(await alice.upload(out.getvalue()), 422, "TOO_MANY_PIXELS")
    assert await api.footprint() == before


async def test_an_input_is_served_to_its_owner_and_admins_only(api: UploadApi) -> None:
    alice, bob, admin = await api.make(), await api.make(), await api.make(admin=True)
    data = picture("PNG", (600, 300))
    input_id = (await alice.upload(data)).json()["id"]

    mine = await alice.http.get(f"/inputs/{input_id}", headers=alice.headers)
    assert mine.status_code == 200 and mine.content == data
    assert mine.headers["content-type"] == "image/png"
    assert mine.headers["x-content-type-options"] == "nosniff"
    assert "private" in mine.headers["cache-control"]
    thumb = await alice.http.get(f"/inputs/{input_id}/thumb", headers=alice.headers)
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(thumb.content)) as image:
        assert max(image.size) == 256

    assert (await admin.http.get(f"/inputs/{input_id}", headers=admin.headers)).status_code == 200
    for path in (f"/inputs/{input_id}", f"/inputs/{input_id}/thumb"):
        assert_error(await bob.http.get(path, headers=bob.headers), 404, "NOT_FOUND")
        assert_error(await bob.http.get(path), 401, "UNAUTHENTICATED")
    assert_error(await alice.http.get("/inputs/not-a-uuid", headers=alice.headers), 404, "NOT_FOUND")
    assert_error(await alice.http.get(f"/inputs/{uuid.uuid4()}", headers=alice.headers), 404, "NOT_FOUND")


async def test_unauthenticated_and_foreign_origin_uploads_are_refused(api: UploadApi) -> None:
    alice = await api.make()
    before = await api.footprint()
    files = {"file": ("a.png", picture(), "image/png")}
    assert_error(await alice.http.post("/inputs", files=files), 401, "UNAUTHENTICATED")
    assert_error(
        await alice.http.post("/inputs", files=files, headers={"Authorization": "Bearer nope"}), 401, "UNAUTHENTICATED"
    )
    foreign = {**alice.headers, "Origin": "https://evil.example"}
    assert_error(await alice.http.post("/inputs", files=files, headers=foreign), 403, "FORBIDDEN")
    assert await api.footprint() == before


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("text", 400, "NOT_AN_IMAGE"),
        ("tiff", 400, "NOT_AN_IMAGE"),
        ("truncated-png", 400, "NOT_AN_IMAGE"),
        ("truncated-jpeg", 400, "NOT_AN_IMAGE"),
        ("empty", 400, "NOT_AN_IMAGE"),
        ("bomb", 422, "TOO_MANY_PIXELS"),
        ("huge-bomb", 422, "TOO_MANY_PIXELS"),
        ("over-pixels", 422, "TOO_MANY_PIXELS"),
        ("over-bytes", 413, "TOO_LARGE"),
    ],
)
async def test_a_bad_upload_is_a_typed_error_and_stores_nothing(
    api: UploadApi, case: str, status: int, code: str
) -> None:
    data = {
        "text": b"hello, I am not an image\n" * 10,
        "tiff": _tiff(),
        "truncated-png": noise_png(64)[:-200],
        "truncated-jpeg": picture("JPEG", (300, 300))[:600],
        "empty": b"",
        # 1e8 pixels claimed in ~100 bytes: past Pillow's own warning threshold (a warning is an error here).
        "bomb": png_header_only(10_000, 10_000),
        "huge-bomb": png_header_only(60_000, 60_000),
        "over-pixels": png_header_only(2048, 1024),
        "over-bytes": noise_png(300),
    }[case]
    if case == "over-bytes":
        assert len(data) > MAX_BYTES
    if case in ("bomb", "huge-bomb", "over-pixels"):
        assert len(data) < 200
    alice = await api.make()
    before = await api.footprint()
    assert_error(await alice.upload(data), status, code)
    assert await api.footprint() == before


def _tiff() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, format="TIFF")
    return out.getvalue()


async def _raw_answer(url: str, head: str, chunks: list[bytes]) -> tuple[int, dict[str, Any]]:
    """Send a request's head and these body bytes, never the rest, and read the answer: a server that
    waits for the whole body before answering times out here."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head.encode())
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
        async with asyncio.timeout(10):
            status_line = await reader.readline()
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers["content-length"]))
    finally:
        writer.close()
    return int(status_line.split()[1]), json.loads(body)


async def test_over_the_byte_limit_without_content_length_is_refused_while_streaming(api: UploadApi) -> None:
    """Chunked: no Content-Length to refuse by, so the count of bytes read refuses it, mid-body."""
    alice = await api.make()
    before = await api.footprint()
    boundary = "safelightboundary"
    part = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + b"\x89PNG"
        + b"\0" * (2 * MAX_BYTES)
    )
    head = (
        f"POST /inputs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {alice.token}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunks = [f"{len(piece):x}\r\n".encode() + piece + b"\r\n" for piece in _pieces(part, 16 * 1024)]
    status, body = await _raw_answer(api.url, head, chunks)  # the body's end never comes
    assert (status, body["error"]["code"]) == (413, "TOO_LARGE"), body
    assert await api.footprint() == before


def _pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


async def test_content_length_over_the_limit_is_refused_before_the_body(api: UploadApi) -> None:
    alice = await api.make()
    head = (
        f"POST /inputs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {alice.token}\r\n"
        "Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 900000000\r\n\r\n"
    )
    status, body = await _raw_answer(api.url, head, [b"--x\r\n"])  # the declared length is all it needs
    assert (status, body["error"]["code"]) == (413, "TOO_LARGE"), body


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'{"file": "x"}'),
        ("multipart/form-data", b"no boundary"),
        ("multipart/form-data; boundary=b", b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\nx\r\n--b--\r\n'),
        ("multipart/form-data; boundary=b", b'--b\r\nContent-Disposition: form-data; name="file"\r\n\r\nabc'),
    ],
)
async def test_a_malformed_request_is_a_bad_request(api: UploadApi, content_type: str, body: bytes) -> None:
    alice = await api.make()
    before = await api.footprint()
    response = await alice.http.post("/inputs", content=body, headers={**alice.headers, "Content-Type": content_type})
    assert_error(response, 400, "BAD_REQUEST")
    assert await api.footprint() == before


async def test_two_files_in_one_upload_are_refused(api: UploadApi) -> None:
    alice = await api.make()
    before = await api.footprint()
    files = [("file", ("a.png", picture(), "image/png")), ("file", ("b.png", picture(color=(1, 2, 3)), "image/png"))]
    assert_error(await alice.http.post("/inputs", files=files, headers=alice.headers), 400, "BAD_REQUEST")
    assert await api.footprint() == before


async def test_uploads_per_owner_per_hour_are_limited(api: UploadApi) -> None:
    alice, bob = await api.make(), await api.make()
    answers = [(await alice.upload(picture(color=(i, 0, 0)))).status_code for i in range(PER_HOUR + 2)]
    assert answers[:PER_HOUR] == [200] * PER_HOUR
    files, rows = await api.footprint()
    refused = await alice.upload(picture(color=(255, 255, 255)))
    assert_error(refused, 429, "RATE_LIMITED")
    assert await api.footprint() == (files, rows)
    assert (await bob.upload(picture(color=(255, 255, 255)))).status_code == 200, "one owner's limit is not another's"


INPUT = "query($id: ID!) { input(id: $id) { id url thumbnailUrl width height mime sizeBytes filename } }"


async def test_the_input_query_answers_owner_and_admins(api: UploadApi) -> None:
    alice, bob, admin = await api.make(), await api.make(), await api.make(admin=True)
    input_id = (await alice.upload(picture("JPEG", (50, 40)), filename="dog.jpg")).json()["id"]

    async def ask(who: Uploader, value: str) -> dict[str, Any]:
        request = {"query": INPUT, "variables": {"id": value}}
        response = await who.http.post("/graphql", json=request, headers=who.headers)
        assert response.status_code == 200 and not response.json().get("errors"), response.text
        result: dict[str, Any] = response.json()["data"]
        return result

    found = (await ask(alice, input_id))["input"]
    assert found == {
        "id": input_id,
        "url": f"{api.url}/inputs/{input_id}",
        "thumbnailUrl": f"{api.url}/inputs/{input_id}/thumb",
        "width": 50,
        "height": 40,
        "mime": "image/jpeg",
        "sizeBytes": found["sizeBytes"],
        "filename": "dog.jpg",
    }
    assert (await alice.http.get(found["url"], headers=alice.headers)).status_code == 200
    assert (await ask(admin, input_id))["input"]["id"] == input_id
    assert (await ask(bob, input_id))["input"] is None
    assert (await ask(alice, "not-an-id"))["input"] is None


CREATE = """
mutation($input: GenerationInput!) {
  createGeneration(input: $input) {
    __typename
    ... on ValidationError { errors { field message } }
  }
}
"""


async def test_someone_elses_input_in_a_generation_is_no_such_input_and_stores_nothing(api: UploadApi) -> None:
    alice, bob = await api.make(), await api.make()
    hers = (await alice.upload(picture(color=(9, 9, 9)))).json()["id"]
    before = (await api.footprint(), await api.generations())

    async def create(who: Uploader, image: str) -> dict[str, Any]:
        variables = {"input": {"template": "img2img", "prompt": "x", "extra": {"image": image}}}
        response = await who.http.post("/graphql", json={"query": CREATE, "variables": variables}, headers=who.headers)
        assert response.status_code == 200 and not response.json().get("errors"), response.text
        result: dict[str, Any] = response.json()["data"]["createGeneration"]
        return result

    for image in (hers, str(uuid.uuid4())):
        refused = await create(bob, image)
        assert refused == {"__typename": "ValidationError", "errors": [{"field": "image", "message": "no such input"}]}
    assert (await api.footprint(), await api.generations()) == before
