"""Pillow images for the fake nodes. Everything here is CPU work: run it through `offload`, which keeps
small images (a fraction of a millisecond) on the event loop and sends larger ones to a thread.

A txt2img render is a deterministic function of its parameters (prompt texts, seed, checkpoint, LoRAs,
sampler settings, size, batch index): a two-colour gradient with a few shapes whose colours and positions
come from a hash of those parameters. Same parameters, same pixels, same PNG bytes.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import io
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import TypeVar

from PIL import Image, ImageDraw, ImageFilter, ImageOps

_T = TypeVar("_T")

PREVIEW_MAX_SIZE = 512

INLINE_MAX_PIXELS = 96 * 96
"""Images up to this many pixels are rendered and encoded on the event loop. A 64x64 txt2img render plus
its PNG takes ~0.4 ms of CPU (96x96: ~0.7 ms); sent to threads instead, the same 64x64 prompts cost the
fake ~0.3 ms more CPU each (two hops, each waking a pool thread that then contends for the GIL). Larger
images go to a thread."""

_GRADIENT_CACHE_MAX_PIXELS = 512 * 512
"""Resized gradients are cached only up to this size, so the cache holds at most ~8 MB (32 entries)."""


@dataclass(frozen=True)
class Txt2Img:
    positive: str
    negative: str
    seed: int
    width: int
    height: int
    checkpoint: str = ""
    loras: tuple[tuple[str, float], ...] = ()
    steps: int = 20
    cfg: float = 8.0
    sampler_name: str = "euler"
    scheduler: str = "normal"
    denoise: float = 1.0

    def rng(self, batch_index: int) -> random.Random:
        # The same JSON as json.dumps([dataclasses.asdict(self), batch_index], sort_keys=True), without
        # asdict's deep copy of every field.
        fields_ = {f.name: getattr(self, f.name) for f in fields(self)}
        key = json.dumps([fields_, batch_index], sort_keys=True).encode()
        return random.Random(hashlib.sha256(key).digest())


async def offload(pixels: int, work: Callable[[], _T]) -> _T:
    """`work()` on the event loop when it handles at most INLINE_MAX_PIXELS pixels, else in a thread."""
    if pixels <= INLINE_MAX_PIXELS:
        return work()
    return await asyncio.to_thread(work)


def _rgb(rng: random.Random) -> tuple[int, int, int]:
    return (rng.randrange(256), rng.randrange(256), rng.randrange(256))


def txt2img(spec: Txt2Img, batch_index: int, max_size: int | None = None) -> Image.Image:
    """The render at `spec`'s size, or scaled to fit `max_size` (same composition, for previews)."""
    rng = spec.rng(batch_index)
    width, height = spec.width, spec.height
    if max_size is not None and max(width, height) > max_size:
        scale = max_size / max(width, height)
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
    gradient = _gradient(rng.choice([0, 90, 180, 270]), width, height)
    image = _colorize(gradient, (width, height), _rgb(rng), _rgb(rng))
    draw = ImageDraw.Draw(image)
    short = min(width, height)
    for _ in range(rng.randint(3, 8)):
        cx, cy = rng.random() * width, rng.random() * height
        half_w, half_h = rng.uniform(0.05, 0.5) * short, rng.uniform(0.05, 0.5) * short
        box = (cx - half_w, cy - half_h, cx + half_w, cy + half_h)
        if rng.random() < 0.5:
            draw.ellipse(box, fill=_rgb(rng))
        else:
            draw.rectangle(box, fill=_rgb(rng))
    return image.filter(ImageFilter.GaussianBlur(radius=max(1.0, short / 64)))


def _resized_gradient(angle: int, width: int, height: int) -> bytes:
    """Pixels of the "L" linear gradient rotated by `angle` and resized to `width` x `height`."""
    return Image.linear_gradient("L").rotate(angle).resize((width, height)).tobytes()


_cached_gradient = functools.lru_cache(maxsize=32)(_resized_gradient)


def _gradient(angle: int, width: int, height: int) -> bytes:
    """The resized gradient, cached: it depends on nothing but the angle (one of four) and the size."""
    if width * height <= _GRADIENT_CACHE_MAX_PIXELS:
        return _cached_gradient(angle, width, height)
    return _resized_gradient(angle, width, height)


def _colorize(gradient: bytes, size: tuple[int, int], black: tuple[int, ...], white: tuple[int, ...]) -> Image.Image:
    """`ImageOps.colorize(gradient, black, white).convert("RGB")`, pixel for pixel, at half the cost.

    colorize maps grey level i < 255 to `black + i * (white - black) // 255` per channel and 255 to white;
    the same table as a palette turns the grey levels into colours in one conversion.
    """
    palette = bytearray(768)
    for channel in range(3):
        low, high = black[channel], white[channel]
        step = high - low
        # low + i * step // 255 == (255 * low + i * step) // 255: one division per entry, over a range.
        if step:
            ramp = bytes([value // 255 for value in range(255 * low, 255 * low + 255 * step, step)])
        else:
            ramp = bytes([low]) * 255
        palette[channel:765:3] = ramp
        palette[765 + channel] = high
    image = Image.frombytes("P", size, gradient)
    image.putpalette(palette)
    return image.convert("RGB")


def solid(width: int, height: int, color: int) -> Image.Image:
    return Image.new("RGB", (width, height), ((color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF))


def blur(image: Image.Image, radius: int, sigma: float) -> Image.Image:
    del radius  # ComfyUI's kernel size; Pillow's Gaussian blur only needs sigma.
    return image.filter(ImageFilter.GaussianBlur(radius=sigma))


def invert(image: Image.Image) -> Image.Image:
    return ImageOps.invert(image.convert("RGB"))


def noisy(image: Image.Image, fraction_done: float, seed: int) -> Image.Image:
    """A sampler preview: the final image blended with noise that fades as the steps advance."""
    small = image.copy()
    small.thumbnail((PREVIEW_MAX_SIZE, PREVIEW_MAX_SIZE))
    noise = Image.effect_noise(small.size, 64).convert("RGB")
    noise = ImageOps.colorize(noise.convert("L"), (seed % 256, 40, 90), (200, 200, 255 - seed % 256))
    return Image.blend(noise, small, max(0.0, min(1.0, fraction_done)))


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=4)
    return buffer.getvalue()


def jpeg_preview(image: Image.Image) -> bytes:
    small = image.copy()
    small.thumbnail((PREVIEW_MAX_SIZE, PREVIEW_MAX_SIZE))
    buffer = io.BytesIO()
    small.convert("RGB").save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def img2img(spec: Txt2Img | None, source: Image.Image, batch_index: int, mask: Image.Image | None) -> Image.Image:
    """An image-to-image render: the source blended with the txt2img render of `spec` by its denoise, only
    where `mask` (an "L" image, 255 = change) allows. Without a sampler (`spec` None) the source itself."""
    if spec is None:
        return source.copy()
    drawn = txt2img(replace(spec, width=source.width, height=source.height), batch_index)
    result = Image.blend(source.convert("RGB"), drawn, max(0.0, min(1.0, spec.denoise)))
    if mask is None:
        return result
    if mask.size != source.size:
        mask = mask.resize(source.size, Image.Resampling.BILINEAR)
    return Image.composite(result, source.convert("RGB"), mask)
