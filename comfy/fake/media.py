"""The bytes of the fake's output files, written the way ComfyUI's nodes write them: PNGs with `prompt` and
workflow text chunks (SaveImage), animated WEBP with the same metadata in EXIF (SaveAnimatedWEBP), animated
GIF (a video combine node's `image/gif`) and FLAC audio (SaveAudio). CPU work: run through `render.offload`.
"""

from __future__ import annotations

import io
import json
import math
import struct
from collections.abc import Sequence
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo

AUDIO_SAMPLE_RATE = 8000
"""The fake decodes audio at 8 kHz mono (ComfyUI at 44.1 kHz stereo): real FLAC, a sixth of the bytes."""
_FLAC_BLOCK = 4096


def png_metadata(prompt: dict[str, Any] | None, extra_pnginfo: dict[str, Any] | None) -> PngInfo | None:
    """SaveImage's text chunks: `prompt`, then one per `extra_pnginfo` key (the editor sends `workflow`),
    each value JSON-encoded as upstream's `json.dumps`."""
    if prompt is None and not extra_pnginfo:
        return None
    info = PngInfo()
    if prompt is not None:
        info.add_text("prompt", json.dumps(prompt))
    for key, value in (extra_pnginfo or {}).items():
        info.add_text(str(key), json.dumps(value))
    return info


def png_bytes(image: Image.Image, metadata: PngInfo | None = None) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=4, pnginfo=metadata)
    return buffer.getvalue()


def _exif(prompt: dict[str, Any] | None, extra_pnginfo: dict[str, Any] | None) -> Image.Exif:
    """SaveAnimatedWEBP's metadata: tag 0x0110 `prompt:<json>`, then 0x010F downwards `<key>:<json>`."""
    exif = Image.Exif()
    if prompt is not None:
        exif[0x0110] = "prompt:" + json.dumps(prompt)
    tag = 0x010F
    for key, value in (extra_pnginfo or {}).items():
        exif[tag] = f"{key}:{json.dumps(value)}"
        tag -= 1
    return exif


def animated_webp(
    frames: Sequence[Image.Image],
    fps: float,
    *,
    lossless: bool,
    quality: int,
    prompt: dict[str, Any] | None = None,
    extra_pnginfo: dict[str, Any] | None = None,
) -> bytes:
    buffer = io.BytesIO()
    first, *rest = frames
    first.save(
        buffer,
        format="WEBP",
        save_all=True,
        append_images=rest,
        duration=round(1000 / fps),
        loop=0,
        lossless=lossless,
        quality=quality,
        method=0,
        exif=_exif(prompt, extra_pnginfo),
    )
    return buffer.getvalue()


def animated_gif(frames: Sequence[Image.Image], fps: float, loop: int) -> bytes:
    buffer = io.BytesIO()
    first, *rest = frames
    first.save(
        buffer,
        format="GIF",
        save_all=True,
        append_images=rest,
        duration=round(1000 / fps),
        loop=loop,
        disposal=2,
        optimize=False,
    )
    return buffer.getvalue()


def animated_webp_plain(frames: Sequence[Image.Image], fps: float, loop: int) -> bytes:
    """A video combine node's `image/webp`: no metadata, lossy."""
    buffer = io.BytesIO()
    first, *rest = frames
    first.save(
        buffer, format="WEBP", save_all=True, append_images=rest, duration=round(1000 / fps), loop=loop, method=0
    )
    return buffer.getvalue()


def tone(seconds: float, frequency: float, sample_rate: int = AUDIO_SAMPLE_RATE) -> list[int]:
    """16-bit samples of a sine at `frequency` Hz, at half volume."""
    count = max(1, round(seconds * sample_rate))
    step = 2 * math.pi * frequency / sample_rate
    return [round(16383 * math.sin(step * index)) for index in range(count)]


def flac_bytes(samples: Sequence[int], sample_rate: int = AUDIO_SAMPLE_RATE) -> bytes:
    """A mono 16-bit FLAC stream of verbatim subframes: valid FLAC any decoder plays, without compression."""
    total = len(samples)
    streaminfo = struct.pack(">HH", _FLAC_BLOCK, _FLAC_BLOCK) + b"\0" * 6
    # sample rate (20 bits), channels - 1 (3), bits per sample - 1 (5), total samples (36): 64 bits.
    streaminfo += ((sample_rate << 44) | (0 << 41) | (15 << 36) | total).to_bytes(8, "big")
    streaminfo += b"\0" * 16  # MD5 of the audio: zero means "not computed", which decoders accept.
    out = bytearray(b"fLaC")
    out += bytes([0x80]) + len(streaminfo).to_bytes(3, "big") + streaminfo
    for number, start in enumerate(range(0, total, _FLAC_BLOCK)):
        block = samples[start : start + _FLAC_BLOCK]
        header = bytearray(b"\xff\xf8")  # sync code, fixed block size
        header.append(0x70)  # block size: 16 bits at the end of the header; sample rate: from STREAMINFO
        header.append(0x08)  # mono, 16 bits per sample
        header += chr(number).encode("utf-8", "surrogatepass")
        header += struct.pack(">H", len(block) - 1)
        header.append(_crc8(header))
        frame = header + b"\x02" + struct.pack(f">{len(block)}h", *block)  # a verbatim subframe
        frame += struct.pack(">H", _crc16(frame))
        out += frame
    return bytes(out)


def _crc8(data: bytes | bytearray) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


_CRC16_TABLE: list[int] = []


def _crc16(data: bytes | bytearray) -> int:
    if not _CRC16_TABLE:
        for value in range(256):
            crc = value << 8
            for _ in range(8):
                crc = ((crc << 1) ^ 0x8005) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
            _CRC16_TABLE.append(crc)
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC16_TABLE[(crc >> 8) ^ byte]
    return crc
