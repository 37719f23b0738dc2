"""The nodes that read uploaded files and write outputs other than PNG images: image-to-image, inpainting
and upscaling (LoadImage, LoadImageMask, VAEEncode, VAEEncodeForInpaint, SetLatentNoiseMask, ImageScale,
ImageScaleBy, the upscale-model pair), animations (SaveAnimatedWEBP, VideoHelperSuite's VHS_VideoCombine
`gifs`), text (PrimitiveString, PreviewAny) and audio (EmptyLatentAudio, VAEDecodeAudio, SaveAudio).

Images are Pillow images as in `comfy.fake.nodes`; a MASK is a list of "L" images, 255 meaning 1.0 (upstream
LoadImage's mask is 1 - alpha: transparent pixels are the ones to repaint).
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from PIL import Image, ImageFilter, ImageOps, ImageSequence, UnidentifiedImageError

from comfy.fake import media, render
from comfy.fake.nodes import AudioLatent, Latent, NodeContext, NodeError, Outputs, Runner, UiOutput

MAX_IMAGE_PIXELS = 8192 * 8192
"""Largest image (pixels, summed over a batch) a loader decodes or a scaler produces."""
MAX_FRAMES = 256
"""Frames a loader reads from an animated file, and an animation node writes."""

_RESAMPLING = {
    "nearest-exact": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "area": Image.Resampling.BOX,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


@dataclass(frozen=True)
class UpscaleModel:
    name: str
    scale: int


@dataclass(frozen=True)
class Audio:
    waveforms: tuple[tuple[int, ...], ...]
    """16-bit mono samples at media.AUDIO_SAMPLE_RATE, one per batch item."""


def _too_large(pixels: int) -> NodeError:
    return NodeError("OutOfMemoryError", f"fake ComfyUI: {pixels} pixels is more than it renders")


def _uploaded(ctx: NodeContext, name: str) -> bytes:
    stored = ctx.inputs.resolve(name)
    if stored is None:  # forgotten since validation
        raise NodeError("FileNotFoundError", f"[Errno 2] No such file or directory: '{name}'")
    return stored.data


def _pixels_of(data: bytes) -> int:
    """The pixel count an image file's header declares (nothing decoded): what decoding it costs."""
    try:
        with Image.open(io.BytesIO(data)) as opened:
            return opened.width * opened.height
    except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError):
        return 0  # the decode reports it


def _decode_frames(data: bytes) -> list[Image.Image]:
    with Image.open(io.BytesIO(data)) as opened:
        frames: list[Image.Image] = []
        for frame in ImageSequence.Iterator(opened):
            if (len(frames) + 1) * opened.width * opened.height > MAX_IMAGE_PIXELS or len(frames) >= MAX_FRAMES:
                raise _too_large((len(frames) + 1) * opened.width * opened.height)
            frame = ImageOps.exif_transpose(frame)
            if frames and frame.size != frames[0].size:
                continue  # upstream skips frames of another size
            frames.append(frame.copy())
        return frames


def _load_image(data: bytes) -> tuple[list[Image.Image], list[Image.Image]]:
    images: list[Image.Image] = []
    masks: list[Image.Image] = []
    for frame in _decode_frames(data):
        images.append(frame.convert("RGB"))
        if "A" in frame.getbands():
            masks.append(ImageOps.invert(frame.getchannel("A")))
        else:
            masks.append(Image.new("L", (64, 64), 0))
    return images, masks


def _image_error(ex: Exception) -> NodeError:
    if isinstance(ex, NodeError):
        return ex
    return NodeError(f"PIL.{type(ex).__name__}", str(ex))


async def _load_image_node(inputs: dict[str, Any], ctx: NodeContext) -> tuple[Outputs, UiOutput]:
    data = _uploaded(ctx, inputs["image"])
    try:
        images, masks = await render.offload(_pixels_of(data), partial(_load_image, data))
    except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as ex:
        raise _image_error(ex) from ex
    return (images, masks), None


def _load_mask(data: bytes, channel: str) -> list[Image.Image]:
    frame = _decode_frames(data)[0]
    if frame.getbands() != ("R", "G", "B", "A"):
        frame = frame.convert("RGBA")
    band = channel[0].upper()
    mask = frame.getchannel(band)
    return [ImageOps.invert(mask) if band == "A" else mask]


async def _load_image_mask(inputs: dict[str, Any], ctx: NodeContext) -> tuple[Outputs, UiOutput]:
    data = _uploaded(ctx, inputs["image"])
    try:
        masks = await render.offload(_pixels_of(data), partial(_load_mask, data, inputs["channel"]))
    except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as ex:
        raise _image_error(ex) from ex
    return (masks,), None


def _crop8(image: Image.Image) -> Image.Image:
    """VAEEncode's crop to multiples of 8, centred."""
    width, height = image.width // 8 * 8, image.height // 8 * 8
    if (width, height) == image.size:
        return image
    left, top = (image.width % 8) // 2, (image.height % 8) // 2
    return image.crop((left, top, left + width, top + height))


def _pixels(images: list[Image.Image]) -> int:
    return sum(image.width * image.height for image in images)


async def _vae_encode(inputs: dict[str, Any], ctx: NodeContext) -> tuple[Outputs, UiOutput]:
    images: list[Image.Image] = inputs["pixels"]
    cropped = tuple(_crop8(image) for image in images)
    if not cropped or cropped[0].width == 0 or cropped[0].height == 0:
        raise NodeError("RuntimeError", "fake ComfyUI: an image smaller than 8x8 cannot be encoded")
    return (Latent(cropped[0].width, cropped[0].height, len(cropped), source=cropped),), None


def _inpaint_source(image: Image.Image, mask: Image.Image, grow: int) -> tuple[Image.Image, Image.Image]:
    """VAEEncodeForInpaint: the masked pixels greyed out, the mask grown by `grow` pixels."""
    mask = mask.resize(image.size, Image.Resampling.BILINEAR)
    image, mask = _crop8(image), _crop8(mask)
    hard = mask.point(lambda value: 255 if value >= 128 else 0)
    greyed = Image.composite(Image.new("RGB", image.size, (128, 128, 128)), image.convert("RGB"), hard)
    grown = hard.filter(ImageFilter.MaxFilter(grow // 2 * 2 + 1)) if grow > 0 else hard
    return greyed, grown


async def _vae_encode_for_inpaint(inputs: dict[str, Any], ctx: NodeContext) -> tuple[Outputs, UiOutput]:
    images: list[Image.Image] = inputs["pixels"]
    masks: list[Image.Image] = inputs["mask"]

    def encode() -> list[tuple[Image.Image, Image.Image]]:
        return [
            _inpaint_source(image, masks[index % len(masks)], inputs["grow_mask_by"])
            for index, image in enumerate(images)
        ]

    pairs = await render.offload(_pixels(images), encode)
    sources = tuple(source for source, _ in pairs)
    latent = Latent(sources[0].width, sources[0].height, len(sources), source=sources)
    return (replace(latent, noise_mask=tuple(mask for _, mask in pairs)),), None


async def _set_latent_noise_mask(inputs: dict[str, Any], ctx: NodeContext) -> tuple[Outputs, UiOutput]:
    latent: Latent = inputs["samples"]
    return (replace(latent, noise_mask=tuple(inputs["mask"])),), None


def _scaled(images: list[Image.Image], width: int, height: int, method: str, crop: str) -> list[Image.Image]:
    resample = _RESAMPLING.get(method, Image.Resampling.BILINEAR)
    if crop == "center":
        return [ImageOps.fit(image, (width, height), resample) for image in images]
    return [image.resize((width, height), resample) for image in images]


async def _scale_to(images: list[Image.Image], width: int, height: int, method: str, crop: str) -> list[Image.Image]:
    width, height = max(1, width), max(1, height)
    pixels = width * height * len(images)
    if pixels > MAX_IMAGE_PIXELS:
        raise _too_large(pixels)
    return await render.offload(pixels, partial(_scaled, images, width, height, method, crop))


async def _image_scale(inputs: dict[str, Any], ctx: NodeContext) -> tuple[Outputs, UiOutput]:
    images: list[Image.Image] = inputs["image"]
    width, height = inputs["width"], inputs["height"]
    if width == 0 and height == 0:
        return (images,), None
    first = images[0]
    if width == 0:
        width = max(1, round(first.width * height / first.height))
    elif height == 0:
        height = max(1, round(first.height * width / first.width))
    return (await _scale_to(images, width, height, inputs["upscale_method"], inputs["crop"]),), None


async def _image_scale_by(inputs: dict[str, Any], ctx: NodeContext) -> tuple[Outputs, UiOutput]:
    images: list[Image.Image] = inputs["image"]
    scale: float = inputs["scale_by"]
    width, height = round(images[0].width * scale), round(images[0].height * scale)
    return (await _scale_to(images, width, height, inputs["upscale_method"], "disabled"),), None


async def _upscale_model_loader(inputs: dict[str, Any], ctx: NodeContext) -> tuple[Outputs, UiOutput]:
    name = str(inputs["model_name"])
    # The scale a model's name announces ("4x-UltraSharp", "RealESRGAN_x2plus"); ESRGAN's 4 otherwise.
    found = re.search(r"(\d)x|x(\d)", name, re.IGNORECASE)
    return (UpscaleModel(name, int(found.group(1) or found.group(2)) if found else 4),), None


async def _image_upscale_with_model(inputs: dict[str, Any], ctx: NodeContext) -> tuple[Outputs, UiOutput]:
    model: UpscaleModel = inputs["upscale_model"]
    images: list[Image.Image] = inputs["image"]
    width, height = images[0].width * model.scale, images[0].height * model.scale
    return (await _scale_to(images, width, height, "lanczos", "disabled"),), None


def _entry(ctx: NodeContext, kind: str, subfolder: str, filename: str, path: Any) -> dict[str, Any]:
    entry = {"filename": filename, "subfolder": subfolder, "type": kind}
    return {"abs_path": str(path), **entry} if ctx.abs_paths else entry


def _reserve(ctx: NodeContext, kind: str, prefix: str, suffix: str) -> tuple[str, str, Any]:
    try:
        return ctx.store.reserve(kind, prefix, suffix)
    except ValueError as ex:
        raise NodeError("Exception", str(ex)) from ex


def _frames(images: list[Image.Image]) -> list[Image.Image]:
    if len(images) > MAX_FRAMES:
        raise NodeError("ValueError", f"fake ComfyUI: more than {MAX_FRAMES} frames")
    return images


_WEBP_METHODS = {"default": 4, "fastest": 0, "slowest": 6}


async def _save_animated_webp(inputs: dict[str, Any], ctx: NodeContext) -> tuple[Outputs, UiOutput]:
    frames = _frames(inputs["images"])
    subfolder, filename, path = _reserve(ctx, "output", str(inputs["filename_prefix"]), "_.webp")
    encode = partial(
        media.animated_webp,
        frames,
        inputs["fps"],
        lossless=inputs["lossless"],
        quality=inputs["quality"],
        prompt=ctx.prompt,
        extra_pnginfo=ctx.extra_pnginfo,
    )
    data = await render.offload(_pixels(frames), encode)
    ctx.store.save("output", subfolder, filename, data)
    # Upstream writes all frames to one file (num_frames 0) and reports `animated` as num_frames != 1.
    return (), {"images": [_entry(ctx, "output", subfolder, filename, path)], "animated": [True]}


async def _video_combine(inputs: dict[str, Any], ctx: NodeContext) -> tuple[Outputs, UiOutput]:
    """VideoHelperSuite: a first-frame PNG with the metadata, then the animation, named `{prefix}_{NNNNN}.ext`
    with one counter; `gifs` lists the animation (with its format, frame rate and the PNG's name)."""
    images = list(_frames(inputs["images"]))
    if inputs["pingpong"]:
        images += images[-2:0:-1]
    kind = "output" if inputs["save_output"] else "temp"
    subfolder, png_name, png_path = _reserve(ctx, kind, str(inputs["filename_prefix"]), ".png")
    metadata = media.png_metadata(ctx.prompt, ctx.extra_pnginfo)
    first = images[0]
    ctx.store.save(
        kind,
        subfolder,
        png_name,
        await render.offload(first.width * first.height, partial(media.png_bytes, first, metadata)),
    )
    video_format: str = inputs["format"]
    ext = video_format.split("/")[1]
    name = png_name.removesuffix(".png") + "." + ext
    fps, loop = float(inputs["frame_rate"]), int(inputs["loop_count"])
    encoder = media.animated_gif if ext == "gif" else media.animated_webp_plain
    ctx.store.save(kind, subfolder, name, await render.offload(_pixels(images), partial(encoder, images, fps, loop)))
    full_path = png_path.with_name(name)
    preview = {
        "filename": name,
        "subfolder": subfolder,
        "type": kind,
        "format": video_format,
        "frame_rate": fps,
        "workflow": png_name,
        "fullpath": str(full_path),
    }
    return ((inputs["save_output"], [str(png_path), str(full_path)]),), {"gifs": [preview]}


async def _primitive_string(inputs: dict[str, Any], ctx: NodeContext) -> tuple[Outputs, UiOutput]:
    return (str(inputs["value"]),), None


async def _preview_any(inputs: dict[str, Any], ctx: NodeContext) -> tuple[Outputs, UiOutput]:
    """Upstream's text: a string as is, a number as str(), anything else as JSON or else str()."""
    source = inputs.get("source")
    value = "None"
    if isinstance(source, str):
        value = source
    elif isinstance(source, int | float | bool):
        value = str(source)
    elif source is not None:
        try:
            value = json.dumps(source)
        except (TypeError, ValueError):
            value = str(source)
    return (), {"text": [value]}


async def _empty_latent_audio(inputs: dict[str, Any], ctx: NodeContext) -> tuple[Outputs, UiOutput]:
    return (AudioLatent(float(inputs["seconds"]), int(inputs["batch_size"])),), None


async def _vae_decode_audio(inputs: dict[str, Any], ctx: NodeContext) -> tuple[Outputs, UiOutput]:
    latent = inputs["samples"]
    if not isinstance(latent, AudioLatent):
        raise NodeError("RuntimeError", "fake ComfyUI: VAEDecodeAudio needs an audio latent")
    count = round(latent.seconds * media.AUDIO_SAMPLE_RATE)

    def decode() -> Audio:
        return Audio(
            tuple(tuple(media.tone(latent.seconds, 440.0 + 110.0 * index)) for index in range(latent.batch_size))
        )

    if count * latent.batch_size > MAX_IMAGE_PIXELS // 8:
        raise _too_large(count * latent.batch_size)
    return (await render.offload(count * latent.batch_size, decode),), None


async def _save_audio(inputs: dict[str, Any], ctx: NodeContext) -> tuple[Outputs, UiOutput]:
    audio: Audio = inputs["audio"]
    prefix = str(inputs["filename_prefix"])
    results: list[dict[str, Any]] = []
    for batch_number, samples in enumerate(audio.waveforms):
        # One counter for the whole batch, as upstream's (it counts on per file, %batch_num% replaced in the name).
        subfolder, filename, path = _reserve(ctx, "output", prefix, "_.flac")
        filename = filename.replace("%batch_num%", str(batch_number))
        path = path.with_name(filename)
        data = await render.offload(len(samples), partial(media.flac_bytes, samples))
        ctx.store.save("output", subfolder, filename, data)
        results.append(_entry(ctx, "output", subfolder, filename, path))
    return (), {"audio": results}


MEDIA_RUNNERS: dict[str, Runner] = {
    "LoadImage": _load_image_node,
    "LoadImageMask": _load_image_mask,
    "VAEEncode": _vae_encode,
    "VAEEncodeForInpaint": _vae_encode_for_inpaint,
    "SetLatentNoiseMask": _set_latent_noise_mask,
    "ImageScale": _image_scale,
    "ImageScaleBy": _image_scale_by,
    "UpscaleModelLoader": _upscale_model_loader,
    "ImageUpscaleWithModel": _image_upscale_with_model,
    "SaveAnimatedWEBP": _save_animated_webp,
    "VHS_VideoCombine": _video_combine,
    "PrimitiveString": _primitive_string,
    "PreviewAny": _preview_any,
    "EmptyLatentAudio": _empty_latent_audio,
    "VAEDecodeAudio": _vae_decode_audio,
    "SaveAudio": _save_audio,
}
