"""What an output file is: its mime type by its first bytes, its kind, and its size in pixels, frames and time.

ComfyUI's history says which key an output came under (`images`, `gifs`, `audio`, `text`, ...), which is a
hint only: custom nodes put videos under `images` and single frames under `gifs`. The bytes decide the
Content-Type we serve (with nosniff, browsers trust it), and the kind follows from them; the declared kind
only names outputs whose bytes say nothing (text).

Measuring uses Pillow for still and animated images (frame count and the sum of per-frame durations) and
the standard library's `wave` for WAV; other audio and video carry no measures (null), rather than a
hand-written container parser that would be wrong on the files it was not tested with.
"""

from __future__ import annotations

import enum
import io
import wave
from dataclasses import dataclass

from PIL import Image

__all__ = [
    "EXTENSIONS",
    "MAX_FRAMES_MEASURED",
    "THUMBNAILED_KINDS",
    "Media",
    "OutputKind",
    "measure",
    "sniff_mime",
]

# Past this many frames the duration is not summed (each frame is decoded to read it); the count stays.
MAX_FRAMES_MEASURED = 10_000


class OutputKind(enum.Enum):
    IMAGE = "image"
    ANIMATION = "animation"
    VIDEO = "video"
    AUDIO = "audio"
    TEXT = "text"


# Kinds Pillow reads, and so has thumbnails of (an animation's: its first frame).
THUMBNAILED_KINDS = frozenset({OutputKind.IMAGE, OutputKind.ANIMATION})


# The file name extension of each mime type we can tell (download names, graph/app.py).
EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "image/gif": "gif",
    "video/mp4": "mp4",
    "video/quicktime": "mov",
    "video/webm": "webm",
    "video/x-matroska": "mkv",
    "audio/wav": "wav",
    "audio/flac": "flac",
    "audio/mpeg": "mp3",
    "audio/mp4": "m4a",
    "audio/ogg": "ogg",
    "video/ogg": "ogv",
    "text/plain": "txt",
}
_PILLOW_MIMES = {"image/png", "image/jpeg", "image/webp", "image/gif"}


@dataclass(frozen=True, slots=True)
class Media:
    """What `measure` found; None where a measure does not apply or could not be read."""

    mime: str
    kind: OutputKind
    width: int | None = None
    height: int | None = None
    frames: int | None = None
    duration_s: float | None = None

    @property
    def extension(self) -> str:
        return EXTENSIONS.get(self.mime, "bin")


def sniff_mime(data: bytes) -> str:
    """The type of `data` by its first bytes; application/octet-stream when it is none we know."""
    head = data[:64]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head.startswith(b"OggS"):
        # The first page holds the first stream's header: Theora is video, anything else (Vorbis, Opus, FLAC) audio.
        return "video/ogg" if b"\x80theora" in data[:512] else "audio/ogg"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"M4A ", b"M4B "):
            return "audio/mp4"
        return "video/quicktime" if brand == b"qt  " else "video/mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: the DocType element names the flavour
        return "video/webm" if b"webm" in head else "video/x-matroska"
    if head.startswith(b"ID3") or _mpeg_audio_frame(head):
        return "audio/mpeg"
    return "application/octet-stream"


def _mpeg_audio_frame(head: bytes) -> bool:
    """An MPEG audio frame header: 11 sync bits, then a layer that is not 0 (0 is AAC's ADTS)."""
    return len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06 != 0


def measure(data: bytes, *, declared_kind: OutputKind) -> Media:
    """The mime, kind and measures of one output; CPU-bound (Pillow decodes animations): call it in a thread.

    A text output is UTF-8 text by construction (its bytes are what ComfyUI reported inline). Raises
    ValueError when bytes of an image type do not open as one.
    """
    if declared_kind is OutputKind.TEXT:
        return Media("text/plain", OutputKind.TEXT)
    mime = sniff_mime(data)
    if mime in _PILLOW_MIMES:
        return _measure_image(data, mime)
    if mime == "audio/wav":
        return Media(mime, OutputKind.AUDIO, duration_s=_wav_duration(data))
    if mime.startswith("audio/"):
        return Media(mime, OutputKind.AUDIO)
    if mime.startswith("video/"):
        return Media(mime, OutputKind.VIDEO)
    # Bytes we cannot name keep the kind the history gave them, served as application/octet-stream.
    return Media(mime, declared_kind)


def _measure_image(data: bytes, mime: str) -> Media:
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            frames = int(getattr(image, "n_frames", 1))
            if frames <= 1:
                return Media(mime, OutputKind.IMAGE, width=width, height=height)
            return Media(
                mime, OutputKind.ANIMATION, width=width, height=height, frames=frames, duration_s=_duration(image)
            )
    except Exception as exc:
        # Pillow's plugins fail on broken files with OSError, ValueError, EOFError, SyntaxError, IndexError
        # and struct.error alike (truncated and corrupted animations, tried): all mean the same here.
        raise ValueError(f"not a readable {mime}: {type(exc).__name__}: {exc}") from exc


def _duration(image: Image.Image) -> float | None:
    """The sum of the frames' durations (ms in `info["duration"]`); None when a frame does not say.

    WEBP reports a frame's duration once the frame is loaded, GIF and APNG once it is sought: both happen.
    """
    frames = int(getattr(image, "n_frames", 1))
    if frames > MAX_FRAMES_MEASURED:
        return None
    total = 0.0
    for index in range(frames):
        image.seek(index)
        image.load()
        duration = image.info.get("duration")
        if not isinstance(duration, (int, float)) or duration < 0:
            return None
        total += float(duration)
    return round(total / 1000.0, 3)


def _wav_duration(data: bytes) -> float | None:
    """From the header (frames / rate); None for WAV encodings `wave` does not read (float samples, say)."""
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            rate = wav.getframerate()
            return round(wav.getnframes() / rate, 3) if rate > 0 else None
    except (wave.Error, EOFError):
        return None
