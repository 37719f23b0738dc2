"""Downloads: an output's downloadUrl answers as an attachment with a readable, safe file name, every kind
with its real Content-Type and nosniff, byte for byte (a PNG keeps ComfyUI's prompt and workflow), and
Range requests for seeking in videos and sounds."""

from __future__ import annotations

import io
import re
import uuid
import wave
from collections.abc import Awaitable, Callable

import httpx
import pytest
from PIL import Image, PngImagePlugin
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.images import add_image
from db.transitions import create_generation
from graph.app import download_name
from jobs.media import OutputKind
from jobs.storage import ImageStore
from settings import Settings
from tests.stack import GraphQLClient

MakeClient = Callable[..., Awaitable[GraphQLClient]]
OUTPUTS = """query($id: ID!) { generation(id: $id) { images {
  index kind mime url downloadUrl thumbnailUrl width height durationSeconds text seedValue } } }"""
PROMPT = '{"3": {"class_type": "KSampler", "inputs": {"seed": 7}}}'
WORKFLOW = '{"last_node_id": 9, "nodes": [{"id": 9, "type": "SaveImage"}], "links": []}'
SEED = 1234567890123
# RFC 6266 / RFC 2616 token characters, without quotes, slashes or anything a browser would rewrite.
SAFE_NAME = re.compile(r'^attachment; filename="([A-Za-z0-9._-]+)"$')


def _comfy_png() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", PROMPT)
    info.add_text("workflow", WORKFLOW)
    out = io.BytesIO()
    Image.new("RGB", (24, 16), (10, 120, 200)).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def _wav() -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(8000)
        sound.writeframes(bytes(range(256)) * 125)  # 32,000 bytes: 16,000 frames, 2 s
    return out.getvalue()


def _mp4() -> bytes:
    return b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + bytes(range(256)) * 8


async def _generation(
    client: GraphQLClient,
    sessions: async_sessionmaker[AsyncSession],
    store: ImageStore,
    template: str,
    outputs: list[tuple[bytes, OutputKind]],
) -> str:
    viewer = uuid.UUID((await client.query("{ viewer { id } }"))["viewer"]["id"])
    async with sessions() as session:
        change, _ = await create_generation(
            session, owner_id=viewer, template=template, params={"prompt": "p"}, prompt="p", seed=SEED,
            namespace=f"downloads-{uuid.uuid4().hex[:8]}",
        )  # fmt: skip
        gid = change.generation.id
        for index, (data, declared) in enumerate(outputs):
            stored = await store.put_output(data, declared_kind=declared, max_bytes=1 << 20)
            await add_image(
                session, generation_id=gid, index=index, content_hash=stored.content_hash, mime=stored.mime,
                width=stored.width, height=stored.height, seed=SEED, size_bytes=stored.size_bytes, node_id="9",
                kind=stored.kind.value, batch_index=index, frames=stored.frames, duration_s=stored.duration_s,
                filename=f"out_{index:05}_",
            )  # fmt: skip
        await session.commit()
    return str(gid)


async def test_downloads_name_the_file_and_keep_every_byte(
    make_client: MakeClient, session_factory: async_sessionmaker[AsyncSession], stack_settings: Settings
) -> None:
    client = await make_client()
    png, wav, mp4 = _comfy_png(), _wav(), _mp4()
    text = "a lighthouse at dusk, 8k\n"
    outputs = [(png, OutputKind.IMAGE), (wav, OutputKind.AUDIO), (mp4, OutputKind.VIDEO),
               (text.encode(), OutputKind.TEXT)]  # fmt: skip
    store = ImageStore(stack_settings.images_dir)
    gid = await _generation(client, session_factory, store, "txt2img", outputs)
    listed = (await client.query(OUTPUTS, {"id": gid}))["generation"]["images"]
    assert [(o["kind"], o["mime"]) for o in listed] == [
        ("IMAGE", "image/png"), ("AUDIO", "audio/wav"), ("VIDEO", "video/mp4"), ("TEXT", "text/plain"),
    ]  # fmt: skip
    assert listed[1]["durationSeconds"] == 2.0 and listed[1]["width"] is None
    assert listed[3]["text"] == text and listed[0]["text"] is None
    assert [o["thumbnailUrl"] is not None for o in listed] == [True, False, False, False]
    extensions = ["png", "wav", "mp4", "txt"]
    async with httpx.AsyncClient() as http:
        for output, (data, _), ext in zip(listed, outputs, extensions, strict=True):
            assert output["downloadUrl"] == output["url"] + "?download=1"
            got = await http.get(output["downloadUrl"])
            assert got.status_code == 200 and got.content == data
            assert got.headers["content-type"].split(";")[0] == output["mime"]
            assert got.headers["x-content-type-options"] == "nosniff"
            match = SAFE_NAME.match(got.headers["content-disposition"])
            assert match, got.headers["content-disposition"]
            assert match.group(1) == f"txt2img-{gid[:8]}-{output['index']}-{SEED}.{ext}"
            inline = await http.get(output["url"])
            assert inline.content == data and "content-disposition" not in inline.headers
        # ComfyUI's metadata is still there: dropped into its editor, the PNG opens its workflow.
        with Image.open(io.BytesIO((await http.get(listed[0]["downloadUrl"])).content)) as image:
            assert (image.text["prompt"], image.text["workflow"]) == (PROMPT, WORKFLOW)
        # Seeking in a sound or a video: a byte range, answered as one.
        part = await http.get(listed[2]["url"], headers={"Range": "bytes=4-11"})
        assert part.status_code == 206 and part.content == mp4[4:12]
        assert part.headers["content-range"] == f"bytes 4-11/{len(mp4)}"
        assert part.headers["content-type"] == "video/mp4"
        assert (await http.get(listed[1]["url"], headers={"Range": "bytes=0-3"})).content == b"RIFF"
        # No thumbnail for a kind that is no image.
        assert (await http.get(listed[1]["url"].replace("/images/", "/thumbs/256/"))).status_code == 404


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("txt2img", "txt2img"),
        ('a "quoted"; name', "a_quoted_name"),
        ("../../etc/passwd", "etc_passwd"),
        ("héllo wörld\r\nX-Injected: 1", "h_llo_w_rld_X-Injected_1"),
        ("..", "output"),
        ("x" * 100, "x" * 64),
    ],
)
def test_download_names_use_safe_characters_only(template: str, expected: str) -> None:
    gid = uuid.UUID("0123abcd-0000-4000-8000-000000000000")
    name = download_name(template=template, generation_id=gid, index=2, seed=99, mime="image/webp")
    assert name == f"{expected}-0123abcd-2-99.webp"
    unknown = download_name(template=template, generation_id=gid, index=0, seed=1, mime="application/octet-stream")
    assert unknown.endswith("-0123abcd-0-1.bin")


async def test_an_unsafe_template_name_downloads_under_a_safe_file_name(
    make_client: MakeClient, session_factory: async_sessionmaker[AsyncSession], stack_settings: Settings
) -> None:
    client = await make_client()
    store = ImageStore(stack_settings.images_dir)
    gid = await _generation(client, session_factory, store, 'up"scale/ü', [(_comfy_png(), OutputKind.IMAGE)])
    (output,) = (await client.query(OUTPUTS, {"id": gid}))["generation"]["images"]
    async with httpx.AsyncClient() as http:
        got = await http.get(output["downloadUrl"])
    assert got.headers["content-disposition"] == f'attachment; filename="up_scale-{gid[:8]}-0-{SEED}.png"'
