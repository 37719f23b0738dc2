"""What each node class does when it runs. Values flowing on links are small Python objects; images are
lists of Pillow images (a batch), rendered and encoded through `render.offload` (in a worker thread unless
the images are tiny)."""

from __future__ import annotations

import random
import string
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Protocol

from PIL import Image

from comfy.fake import media, render
from comfy.fake.inputs import InputStore
from comfy.fake.storage import OutputStore

Outputs = tuple[Any, ...]
UiOutput = dict[str, Any] | None


class NodeError(Exception):
    """A node failed; reported as `execution_error` with this exception type and message."""

    def __init__(self, exception_type: str, message: str) -> None:
        super().__init__(message)
        self.exception_type = exception_type
        self.message = message


class NodeContext(Protocol):
    """What a running node may use: timing, progress reporting, and the output store."""

    store: OutputStore
    inputs: InputStore

    @property
    def prompt(self) -> dict[str, Any]:
        """The running prompt, as validated: what SaveImage embeds as the `prompt` chunk."""

    @property
    def extra_pnginfo(self) -> dict[str, Any] | None:
        """`extra_data.extra_pnginfo` of the submission (the editor's `workflow`), embedded per key."""

    @property
    def step_time(self) -> float:
        """Seconds per sampler step."""

    @property
    def preview_enabled(self) -> bool:
        """Whether previews may be sent at all (FakeConfig.preview)."""

    @property
    def abs_paths(self) -> bool:
        """Whether saved images are reported with their `abs_path` (the packaging does, upstream does not)."""

    async def sleep(self, seconds: float) -> None:
        """Sleep, raising if the prompt is interrupted meanwhile."""

    async def progress(self, value: int, total: int, preview: Image.Image | None = None) -> None:
        """Report a step as ComfyUI's ProgressBar does: progress_state, preview frame, progress."""


@dataclass(frozen=True)
class Model:
    checkpoint: str
    loras: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Conditioning:
    text: str
    model: Model


@dataclass(frozen=True)
class Latent:
    width: int
    height: int
    batch_size: int
    spec: render.Txt2Img | None = None
    source: tuple[Image.Image, ...] = ()
    """The encoded images (VAEEncode): the sampler changes them by `denoise` instead of drawing anew."""
    noise_mask: tuple[Image.Image, ...] = ()
    """"L" masks, 255 where the sampler may change the source (inpainting); none: everywhere."""


@dataclass(frozen=True)
class AudioLatent:
    seconds: float
    batch_size: int


def _pixels(latent: Latent) -> int:
    return latent.width * latent.height


def _batch_pixels(images: list[Image.Image]) -> int:
    return sum(image.width * image.height for image in images)


Runner = Callable[[dict[str, Any], NodeContext], Awaitable[tuple[Outputs, UiOutput]]]


async def _checkpoint(inputs: dict[str, Any], ctx: NodeContext) -> tuple[Outputs, UiOutput]:
    model = Model(inputs["ckpt_name"])
    return (model, model, model), None


async def _lora(inputs: dict[str, Any], ctx: NodeContext) -> tuple[Outputs, UiOutput]:
    model: Model = inputs["model"]
    clip: Model = inputs["clip"]
    name = inputs["lora_name"]
    return (
        replace(model, loras=(*model.loras, (name, float(inputs["strength_model"])))),
        replace(clip, loras=(*clip.loras, (name, float(inputs["strength_clip"])))),
    ), None


async def _clip_text_encode(inputs: dict[str, Any], ctx: NodeContext) -> tuple[Outputs, UiOutput]:
    return (Conditioning(str(inputs["text"]), inputs["clip"]),), None


async def _empty_latent(inputs: dict[str, Any], ctx: NodeContext) -> tuple[Outputs, UiOutput]:
    return (Latent(inputs["width"], inputs["height"], inputs["batch_size"]),), None


async def _ksampler(inputs: dict[str, Any], ctx: NodeContext) -> tuple[Outputs, UiOutput]:
    latent: Latent | AudioLatent = inputs["latent_image"]
    model: Model = inputs["model"]
    if isinstance(latent, AudioLatent):
        for step in range(1, inputs["steps"] + 1):
            await ctx.sleep(ctx.step_time)
            await ctx.progress(step, inputs["steps"])
        return (latent,), None
    spec = render.Txt2Img(
        positive=inputs["positive"].text,
        negative=inputs["negative"].text,
        seed=inputs["seed"],
        width=latent.width,
        height=latent.height,
        checkpoint=model.checkpoint,
        loras=model.loras,
        steps=inputs["steps"],
        cfg=inputs["cfg"],
        sampler_name=inputs["sampler_name"],
        scheduler=inputs["scheduler"],
        denoise=inputs["denoise"],
    )
    steps: int = inputs["steps"]
    final: Image.Image | None = None
    if ctx.preview_enabled:
        final = await render.offload(_pixels(latent), partial(render.txt2img, spec, 0, render.PREVIEW_MAX_SIZE))
    # Paced against the start, not step by step: a sleep overshoots by up to a millisecond (epoll's
    # granularity), which would cap a 0.5 ms step at ~700 steps/s instead of the 2,000 asked for.
    started = time.monotonic()
    for step in range(1, steps + 1):
        await ctx.sleep(started + step * ctx.step_time - time.monotonic())
        preview = None
        if final is not None:
            preview = await render.offload(
                final.width * final.height, partial(render.noisy, final, step / steps, spec.seed)
            )
        await ctx.progress(step, steps, preview)
    return (replace(latent, spec=spec),), None


async def _vae_decode(inputs: dict[str, Any], ctx: NodeContext) -> tuple[Outputs, UiOutput]:
    latent: Latent = inputs["samples"]

    def decode() -> list[Image.Image]:
        if latent.source:
            return [
                render.img2img(
                    latent.spec,
                    latent.source[index % len(latent.source)],
                    index,
                    latent.noise_mask[index % len(latent.noise_mask)] if latent.noise_mask else None,
                )
                for index in range(latent.batch_size)
            ]
        if latent.spec is None:
            return [render.solid(latent.width, latent.height, 0x808080) for _ in range(latent.batch_size)]
        return [render.txt2img(latent.spec, index) for index in range(latent.batch_size)]

    return (await render.offload(_pixels(latent) * latent.batch_size, decode),), None


async def _empty_image(inputs: dict[str, Any], ctx: NodeContext) -> tuple[Outputs, UiOutput]:
    width, height = inputs["width"], inputs["height"]
    image = await render.offload(width * height, partial(render.solid, width, height, inputs["color"]))
    return ([image] * inputs["batch_size"],), None


async def _image_blur(inputs: dict[str, Any], ctx: NodeContext) -> tuple[Outputs, UiOutput]:
    images: list[Image.Image] = inputs["image"]

    def blur() -> list[Image.Image]:
        return [render.blur(image, inputs["blur_radius"], inputs["sigma"]) for image in images]

    return (await render.offload(_batch_pixels(images), blur),), None


async def _image_invert(inputs: dict[str, Any], ctx: NodeContext) -> tuple[Outputs, UiOutput]:
    images: list[Image.Image] = inputs["image"]
    return (await render.offload(_batch_pixels(images), lambda: [render.invert(image) for image in images]),), None


async def _save(images: list[Image.Image], kind: str, prefix: str, ctx: NodeContext) -> UiOutput:
    entries: list[dict[str, Any]] = []
    metadata = media.png_metadata(ctx.prompt, ctx.extra_pnginfo)
    for batch_number, image in enumerate(images):
        try:
            subfolder, filename, path = ctx.store.reserve(kind, prefix)
        except ValueError as ex:
            raise NodeError("Exception", str(ex)) from ex
        if "%batch_num%" in filename:  # upstream names each image of a batch by its index
            filename = filename.replace("%batch_num%", str(batch_number))
            path = path.with_name(filename)
        data = await render.offload(image.width * image.height, partial(media.png_bytes, image, metadata))
        ctx.store.save(kind, subfolder, filename, data)
        entry = {"filename": filename, "subfolder": subfolder, "type": kind}
        entries.append({"abs_path": str(path), **entry} if ctx.abs_paths else entry)
    return {"images": entries}


async def _save_image(inputs: dict[str, Any], ctx: NodeContext) -> tuple[Outputs, UiOutput]:
    return (), await _save(inputs["images"], "output", str(inputs["filename_prefix"]), ctx)


async def _preview_image(inputs: dict[str, Any], ctx: NodeContext) -> tuple[Outputs, UiOutput]:
    suffix = "".join(random.choice(string.ascii_lowercase) for _ in range(5))
    return (), await _save(inputs["images"], "temp", f"ComfyUI_temp_{suffix}", ctx)


async def _slow_progress(inputs: dict[str, Any], ctx: NodeContext) -> tuple[Outputs, UiOutput]:
    images: list[Image.Image] = inputs["image"]
    steps: int = inputs["steps"]
    show = bool(inputs.get("preview", False)) and ctx.preview_enabled
    for step in range(1, steps + 1):
        await ctx.sleep(inputs["delay"])
        await ctx.progress(step, steps, images[0] if show and images else None)
    return (images,), None


async def _raise_error(inputs: dict[str, Any], ctx: NodeContext) -> tuple[Outputs, UiOutput]:
    raise NodeError("RuntimeError", str(inputs["message"]))


RUNNERS: dict[str, Runner] = {
    "CheckpointLoaderSimple": _checkpoint,
    "LoraLoader": _lora,
    "CLIPTextEncode": _clip_text_encode,
    "EmptyLatentImage": _empty_latent,
    "KSampler": _ksampler,
    "VAEDecode": _vae_decode,
    "EmptyImage": _empty_image,
    "ImageBlur": _image_blur,
    "ImageInvert": _image_invert,
    "SaveImage": _save_image,
    "PreviewImage": _preview_image,
    "SlowProgress": _slow_progress,
    "RaiseError": _raise_error,
}

# How a value of each type looks in `execution_error.current_inputs` (recording 10 shows IMAGE).
VALUE_REPR = {
    "IMAGE": "<class 'torch.Tensor'>",
    "LATENT": "<class 'dict'>",
    "MODEL": "<class 'comfy.model_patcher.ModelPatcher'>",
    "CLIP": "<class 'comfy.sd.CLIP'>",
    "VAE": "<class 'comfy.sd.VAE'>",
    "CONDITIONING": "<class 'list'>",
    "MASK": "<class 'torch.Tensor'>",
    "AUDIO": "<class 'dict'>",
}
