"""Pillow images for the fake nodes. Everything here is CPU work: call it through `asyncio.to_thread`.

A txt2img render is a deterministic function of its parameters (prompt texts, seed, checkpoint, LoRAs,
sampler settings, size, batch index): a two-colour gradient with a few shapes whose colours and positions
come from a hash of those parameters. Same parameters, same pixels, same PNG bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
from dataclasses import asdict, dataclass

from PIL import Image, ImageDraw, ImageFilter, ImageOps

PREVIEW_MAX_SIZE = 512


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
        key = json.dumps([asdict(self), batch_index], sort_keys=True).encode()
        return random.Random(hashlib.sha256(key).digest())


def _rgb(rng: random.Random) -> tuple[int, int, int]:
    return (rng.randrange(256), rng.randrange(256), rng.randrange(256))


def txt2img(spec: Txt2Img, batch_index: int, max_size: int | None = None) -> Image.Image:
    """The render at `spec`'s size, or scaled to fit `max_size` (same composition, for previews)."""
    rng = spec.rng(batch_index)
    width, height = spec.width, spec.height
    if max_size is not None and max(width, height) > max_size:
        scale = max_size / max(width, height)
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
    gradient = Image.linear_gradient("L").rotate(rng.choice([0, 90, 180, 270]))
    image = ImageOps.colorize(gradient.resize((width, height)), _rgb(rng), _rgb(rng)).convert("RGB")
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
