"""Outputs of every kind: the mime by the bytes, the kind by the mime, the measures where they apply."""

from __future__ import annotations

import hashlib
import io
import os
import random
import struct
import wave
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from jobs.media import OutputKind, measure, sniff_mime
from jobs.storage import ImageStore, OutputTooLarge

MiB = 1024 * 1024


def _animation(fmt: str, durations: list[int], size: tuple[int, int] = (32, 24)) -> bytes:
    frames = [Image.new("RGB", size, (i * 40, 10, 200 - i * 40)) for i in range(len(durations))]
    out = io.BytesIO()
    frames[0].save(out, format=fmt, save_all=True, append_images=frames[1:], duration=durations, loop=0)
    return out.getvalue()


def _still(fmt: str, size: tuple[int, int] = (20, 10)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (1, 2, 3)).save(out, format=fmt)
    return out.getvalue()


def _wav(seconds: float, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(b"\x00\x00" * int(seconds * rate))
    return out.getvalue()


def comfy_png(prompt: str, workflow: str) -> bytes:
    """A PNG as ComfyUI's SaveImage writes it: `prompt` and `workflow` tEXt chunks."""
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", prompt)
    info.add_text("workflow", workflow)
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (9, 9, 9)).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


# Real first bytes of each container (what the encoders write), padded: the sniffer reads no further.
_HEADS = {
    "video/mp4": struct.pack(">I", 32) + b"ftypisom\x00\x00\x02\x00isomiso2avc1mp41",
    "video/quicktime": struct.pack(">I", 20) + b"ftypqt  \x00\x00\x02\x00qt  ",
    "audio/mp4": struct.pack(">I", 28) + b"ftypM4A \x00\x00\x00\x00M4A mp42isom",
    "video/webm": b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\x82\x84webm",
    "video/x-matroska": b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\xf7\x81\x01\x42\x82\x88matroska",
    "audio/flac": b"fLaC\x00\x00\x00\x22\x10\x00\x10\x00",
    "audio/mpeg": b"ID3\x04\x00\x00\x00\x00\x00\x00",
    "audio/ogg": b"OggS\x00\x02" + b"\x00" * 22 + b"\x01\x1e\x01vorbis",
    "video/ogg": b"OggS\x00\x02" + b"\x00" * 22 + b"\x01\x2a\x80theora",
}


@pytest.mark.parametrize("mime", sorted(_HEADS))
def test_containers_by_their_first_bytes(mime: str) -> None:
    data = _HEADS[mime] + b"\x00" * 64
    assert sniff_mime(data) == mime
    media = measure(data, declared_kind=OutputKind.IMAGE)  # the history's key is a hint, the bytes decide
    assert media.mime == mime
    assert media.kind is (OutputKind.AUDIO if mime.startswith("audio/") else OutputKind.VIDEO)
    assert (media.width, media.height, media.frames, media.duration_s) == (None, None, None, None)


def test_mpeg_frame_sync_without_id3_is_mp3_but_adts_is_not() -> None:
    assert sniff_mime(b"\xff\xfb\x90\x64" + b"\x00" * 60) == "audio/mpeg"
    assert sniff_mime(b"\xff\xf1\x50\x80" + b"\x00" * 60) == "application/octet-stream"  # AAC ADTS
    assert sniff_mime(b"\xff\xd8\xff\xe0") == "image/jpeg"


@pytest.mark.parametrize(("fmt", "mime"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp"),
                                           ("GIF", "image/gif")])  # fmt: skip
def test_still_images_have_a_size_and_no_frames(fmt: str, mime: str) -> None:
    media = measure(_still(fmt), declared_kind=OutputKind.ANIMATION)
    assert (media.mime, media.kind, media.width, media.height) == (mime, OutputKind.IMAGE, 20, 10)
    assert (media.frames, media.duration_s) == (None, None)


@pytest.mark.parametrize(("fmt", "mime"), [("WEBP", "image/webp"), ("GIF", "image/gif"), ("PNG", "image/png")])
def test_animations_count_frames_and_sum_their_durations(fmt: str, mime: str) -> None:
    media = measure(_animation(fmt, [100, 120, 80, 50]), declared_kind=OutputKind.IMAGE)
    assert (media.mime, media.kind, media.width, media.height) == (mime, OutputKind.ANIMATION, 32, 24)
    assert media.frames == 4
    assert media.duration_s == pytest.approx(0.35)
    assert media.extension == {"WEBP": "webp", "GIF": "gif", "PNG": "png"}[fmt]


def test_wav_duration_from_its_header() -> None:
    media = measure(_wav(1.5), declared_kind=OutputKind.AUDIO)
    assert (media.mime, media.kind, media.duration_s, media.extension) == ("audio/wav", OutputKind.AUDIO, 1.5, "wav")


def test_a_wav_that_wave_cannot_read_has_no_duration() -> None:
    # IEEE float samples (format tag 3): a WAV `wave` refuses on Python 3.11.
    fmt = struct.pack("<HHIIHH", 3, 1, 8000, 32000, 4, 32)
    data = b"RIFF" + struct.pack("<I", 36 + 8) + b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data" + b"\0" * 12
    media = measure(data, declared_kind=OutputKind.AUDIO)
    assert (media.mime, media.kind, media.duration_s) == ("audio/wav", OutputKind.AUDIO, None)


def test_text_is_taken_as_declared() -> None:
    media = measure("héllo\n".encode(), declared_kind=OutputKind.TEXT)
    assert (media.mime, media.kind, media.extension) == ("text/plain", OutputKind.TEXT, "txt")


def test_unknown_bytes_keep_the_declared_kind_and_no_type() -> None:
    media = measure(b"<svg xmlns='http://www.w3.org/2000/svg'/>", declared_kind=OutputKind.IMAGE)
    assert (media.mime, media.kind, media.extension) == ("application/octet-stream", OutputKind.IMAGE, "bin")


def test_a_broken_image_is_an_error() -> None:
    with pytest.raises(ValueError, match="not a readable image/png"):
        measure(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, declared_kind=OutputKind.IMAGE)


async def test_put_output_stores_bytes_unchanged_png_metadata_included(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    data = comfy_png('{"3": {"class_type": "KSampler"}}', '{"nodes": []}')
    stored = await store.put_output(data, declared_kind=OutputKind.IMAGE, max_bytes=MiB)
    assert stored.content_hash == hashlib.sha256(data).hexdigest()
    kept = store.path_for(stored.content_hash).read_bytes()
    assert kept == data
    with Image.open(io.BytesIO(kept)) as image:
        assert image.info["prompt"] == '{"3": {"class_type": "KSampler"}}'
        assert image.info["workflow"] == '{"nodes": []}'


async def test_put_output_of_each_kind(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    animated = await store.put_output(_animation("WEBP", [50, 50, 50]), declared_kind=OutputKind.IMAGE, max_bytes=MiB)
    assert (animated.kind, animated.mime, animated.frames, animated.duration_s) == (
        OutputKind.ANIMATION, "image/webp", 3, 0.15,
    )  # fmt: skip
    audio = await store.put_output(_wav(0.25), declared_kind=OutputKind.AUDIO, max_bytes=MiB)
    assert (audio.kind, audio.mime, audio.duration_s, audio.width) == (OutputKind.AUDIO, "audio/wav", 0.25, None)
    text = await store.put_output(b"a cat\n", declared_kind=OutputKind.TEXT, max_bytes=MiB)
    assert (text.kind, text.mime, text.size_bytes) == (OutputKind.TEXT, "text/plain", 6)
    assert store.read_text(text.content_hash, max_bytes=3) == "a c"
    assert store.read_text("0" * 64, max_bytes=3) is None
    # Thumbnails are for images: an animation's first frame, nothing for audio.
    assert await store.thumbnail(animated.content_hash, 128) is not None
    assert await store.thumbnail(audio.content_hash, 128) is None


async def test_put_output_refuses_too_large_before_storing(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    data = _still("PNG")
    with pytest.raises(OutputTooLarge, match=f"{len(data)} bytes is larger than the limit of {len(data) - 1}"):
        await store.put_output(data, declared_kind=OutputKind.IMAGE, max_bytes=len(data) - 1)
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError, match="not a readable"):
        await store.put_output(b"GIF89a" + b"\x00" * 20, declared_kind=OutputKind.IMAGE, max_bytes=MiB)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("fmt", ["WEBP", "GIF", "PNG"])
def test_broken_animations_are_value_errors_whatever_pillow_raises(fmt: str) -> None:
    """Truncated and corrupted animations make Pillow raise SyntaxError, IndexError, struct.error, EOFError..."""
    data = _animation(fmt, [100] * 5)
    noise = random.Random(fmt)
    for cut in range(8, len(data), max(1, len(data) // 60)):
        garbled = data[:cut] + bytes(noise.randrange(256) for _ in range(20)) + data[cut + 20 :]
        for broken in (data[:cut], garbled):
            try:
                media = measure(broken, declared_kind=OutputKind.IMAGE)
            except ValueError:
                continue
            assert media.kind in (OutputKind.IMAGE, OutputKind.ANIMATION)  # damage Pillow does not notice
