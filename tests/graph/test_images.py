"""Image URLs name a generation's image, not its content; what users see of a backend is its name."""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Awaitable, Callable

import httpx
import pytest
from PIL import Image as PILImage
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.images import add_image
from db.models import Generation
from db.states import Status
from db.transitions import create_generation
from jobs.logs import configure_logging
from jobs.storage import ImageStore
from settings import Settings
from tests.stack import GraphQLClient

MakeClient = Callable[..., Awaitable[GraphQLClient]]
ONE = "query($id: ID!) { generation(id: $id) { backend error { message } images { url thumbnailUrl mime } } }"


def _picture(kind: str) -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", (16, 16), (200, 80, 20)).save(out, format=kind)
    return out.getvalue()


async def _generation_with(
    client: GraphQLClient,
    sessions: async_sessionmaker[AsyncSession],
    store: ImageStore,
    data: bytes,
    *,
    backend_url: str | None = None,
    error_message: str | None = None,
) -> str:
    viewer = uuid.UUID((await client.query("{ viewer { id } }"))["viewer"]["id"])
    stored = await store.put(data)
    async with sessions() as session:
        change, _ = await create_generation(
            session, owner_id=viewer, template="txt2img", params={"prompt": "p"}, prompt="p", seed=1,
            namespace=f"images-{uuid.uuid4().hex[:8]}",
        )  # fmt: skip
        gid = change.generation.id
        await add_image(
            session, generation_id=gid, index=0, content_hash=stored.content_hash, mime=stored.mime,
            width=stored.width, height=stored.height, seed=1, size_bytes=stored.size_bytes, node_id="9",
        )  # fmt: skip
        await session.execute(
            update(Generation)
            .where(Generation.id == gid)
            .values(status=Status.SUCCEEDED, backend_url=backend_url, error_code="X" if error_message else None,
                    error_message=error_message)
        )  # fmt: skip
        await session.commit()
    return str(gid)


async def test_image_urls_are_per_generation_and_end_with_it(
    make_client: MakeClient, session_factory: async_sessionmaker[AsyncSession], stack_settings: Settings
) -> None:
    """Before: /images/<sha256> served the same URL to every user who made the image, for ever."""
    store = ImageStore(stack_settings.images_dir)
    alice, bob = await make_client(), await make_client()
    picture = _picture("JPEG")
    first = await _generation_with(alice, session_factory, store, picture)
    second = await _generation_with(bob, session_factory, store, picture)
    a = (await alice.query(ONE, {"id": first}))["generation"]["images"][0]
    b = (await bob.query(ONE, {"id": second}))["generation"]["images"][0]
    assert a["url"] != b["url"], "the same image made by two users must not share a URL"
    content_hash = (await alice.query("query($id: ID!) { generation(id: $id) { images { contentHash } } }",
                                      {"id": first}))["generation"]["images"][0]["contentHash"]  # fmt: skip
    assert content_hash not in a["url"] and content_hash not in a["thumbnailUrl"]
    async with httpx.AsyncClient() as http:
        full = await http.get(a["url"])
        assert full.status_code == 200 and full.content == picture
        assert full.headers["content-type"] == "image/jpeg" and a["mime"] == "image/jpeg"
        assert full.headers["x-content-type-options"] == "nosniff"
        assert full.headers["cache-control"].startswith("private")
        thumb = await http.get(a["thumbnailUrl"])
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/png"
        assert (await http.get(a["url"].replace(first, str(uuid.uuid4())))).status_code == 404
        deleted = await alice.query("mutation($id: ID!) { deleteGeneration(id: $id) { __typename } }", {"id": first})
        assert deleted["deleteGeneration"]["__typename"] != "NotFoundError", deleted
        assert (await http.get(a["url"])).status_code == 404, "a deleted generation's image is still served"
        assert (await http.get(a["thumbnailUrl"])).status_code == 404
        assert (await http.get(b["url"])).status_code == 200, "the other user's generation keeps its image"


async def test_users_see_a_backend_name_never_its_url_or_credentials(
    make_client: MakeClient, session_factory: async_sessionmaker[AsyncSession], stack_settings: Settings
) -> None:
    client = await make_client()
    url = "http://admin:s3cret@10.0.0.5:8188/comfy"
    gid = await _generation_with(
        client, session_factory, ImageStore(stack_settings.images_dir), _picture("PNG"),
        backend_url=url, error_message=f"Backend {url} refused: ConnectError('{url}/prompt')",
    )  # fmt: skip
    seen = (await client.query(ONE, {"id": gid}))["generation"]
    assert seen["backend"] == "10.0.0.5:8188"
    assert seen["error"]["message"] == "Backend 10.0.0.5:8188 refused: ConnectError('10.0.0.5:8188')"


@pytest.mark.parametrize("json_lines", [False, True], ids=["text", "json"])
def test_logs_redact_credentials_in_urls(capsys: pytest.CaptureFixture[str], json_lines: bool) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("INFO", json_lines=json_lines)
        log = logging.getLogger("tests.redaction")
        log.warning("backend %s failed", "http://admin:s3cret@10.0.0.5:8188")
        try:
            raise ConnectionError("cannot reach https://u:p4ss@host:1/x")
        except ConnectionError:
            log.exception("and with a traceback")
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    err = capsys.readouterr().err
    assert "s3cret" not in err and "p4ss" not in err
    assert "http://***@10.0.0.5:8188" in err and "https://***@host:1/x" in err


async def test_malformed_image_paths_are_404(api_url: str) -> None:
    gid = str(uuid.uuid4())
    async with httpx.AsyncClient(base_url=api_url) as http:
        for path in (f"/images/{gid}", f"/images/{gid}/-1", f"/images/{gid}/99999999999", "/images/nope/0",
                     f"/thumbs/999/{gid}/0", f"/thumbs/256/{gid}/x", f"/images/{gid}/0/..%2f..%2fx",
                     "/images/" + "a" * 64):  # fmt: skip
            response = await http.get(path)
            assert response.status_code == 404, path
            assert response.headers["x-content-type-options"] == "nosniff"
