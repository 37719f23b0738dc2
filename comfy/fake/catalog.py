"""The node classes this fake offers, described the way ComfyUI's `/object_info` describes them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_RESOLUTION = 16384

CHECKPOINTS = ["dreamshaper_8.safetensors", "sd_xl_base_1.0.safetensors", "v1-5-pruned-emaonly.safetensors"]
LORAS = ["add_detail.safetensors", "film_grain.safetensors"]
SAMPLERS = [
    "euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2", "exp_heun_2_x0",
    "exp_heun_2_x0_sde", "dpm_2", "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral",
    "dpmpp_2s_ancestral_cfg_pp", "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_cfg_pp", "dpmpp_2m_sde",
    "dpmpp_2m_sde_gpu", "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu",
    "ddpm", "lcm", "ipndm", "ipndm_v", "deis", "res_multistep", "res_multistep_cfg_pp",
    "res_multistep_ancestral", "res_multistep_ancestral_cfg_pp", "gradient_estimation",
    "gradient_estimation_cfg_pp", "er_sde", "seeds_2", "seeds_3", "sa_solver", "sa_solver_pece",
    "ddim", "uni_pc", "uni_pc_bh2",
]  # fmt: skip
SCHEDULERS = [
    "simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal", "linear_quadratic",
    "kl_optimal",
]  # fmt: skip

MODEL_FILES = {"checkpoints": CHECKPOINTS, "loras": LORAS}
"""`GET /models/{folder}`: what the loaders below offer."""

InputSpec = tuple[Any, ...]
"""`(type,)` or `(type, options)`; type is a ComfyUI type name or, for a combo, the list of choices."""

_SAVE_DESCRIPTION = "Saves the input images to your ComfyUI output directory."
_SAVE_PREFIX_TOOLTIP = (
    "The prefix for the file to save. This may include formatting information such as %date:yyyy-MM-dd% "
    "or %Empty Latent Image.width% to include values from nodes."
)


@dataclass(frozen=True)
class NodeDef:
    name: str
    display_name: str
    category: str
    required: dict[str, InputSpec]
    outputs: tuple[str, ...]
    output_names: tuple[str, ...] | None = None
    optional: dict[str, InputSpec] = field(default_factory=dict)
    hidden: dict[str, str] = field(default_factory=dict)
    output_node: bool = False
    description: str = ""
    python_module: str = "nodes"
    upstream_module: str | None = None
    """`python_module` upstream, where it differs (the recording's custom test nodes)."""
    search_aliases: tuple[str, ...] = ()

    def input_spec(self, name: str) -> tuple[InputSpec, str] | None:
        """The spec of input `name` and its category ("required"/"optional"), None if unknown."""
        if name in self.required:
            return self.required[name], "required"
        if name in self.optional:
            return self.optional[name], "optional"
        return None

    def object_info(self, *, upstream: bool = True) -> dict[str, Any]:
        """This node's `/object_info` entry; upstream 0.3.64 has no `is_input_list` and `search_aliases`."""
        inputs: dict[str, Any] = {"required": {k: list(v) for k, v in self.required.items()}}
        order: dict[str, list[str]] = {"required": list(self.required)}
        if self.optional:
            inputs["optional"] = {k: list(v) for k, v in self.optional.items()}
            order["optional"] = list(self.optional)
        if self.hidden:
            inputs["hidden"] = dict(self.hidden)
            order["hidden"] = list(self.hidden)
        info: dict[str, Any] = {
            "input": inputs,
            "input_order": order,
            "is_input_list": False,
            "output": list(self.outputs),
            "output_is_list": [False] * len(self.outputs),
            "output_name": list(self.output_names if self.output_names is not None else self.outputs),
            "name": self.name,
            "display_name": self.display_name,
            "description": self.description,
            "python_module": self.python_module,
            "category": self.category,
            "output_node": self.output_node,
            "search_aliases": list(self.search_aliases),
        }
        if upstream:
            del info["is_input_list"], info["search_aliases"]
            info["python_module"] = self.upstream_module or self.python_module
        return info


def _int(default: int, lo: int, hi: int, step: int | None = None, **extra: Any) -> InputSpec:
    opts: dict[str, Any] = {"default": default, "min": lo, "max": hi}
    if step is not None:
        opts["step"] = step
    return ("INT", {**opts, **extra})


def _float(default: float, lo: float, hi: float, step: float, **extra: Any) -> InputSpec:
    return ("FLOAT", {"default": default, "min": lo, "max": hi, "step": step, **extra})


_NODES = [
    NodeDef(
        name="EmptyImage",
        display_name="EmptyImage",
        category="image",
        required={
            "width": _int(512, 1, MAX_RESOLUTION, 1),
            "height": _int(512, 1, MAX_RESOLUTION, 1),
            "batch_size": _int(1, 1, 4096),
            "color": _int(0, 0, 0xFFFFFF, 1, display="color"),
        },
        outputs=("IMAGE",),
    ),
    NodeDef(
        name="ImageBlur",
        display_name="Image Blur",
        category="image/postprocessing",
        python_module="comfy_extras.nodes_post_processing",
        required={
            "image": ("IMAGE",),
            "blur_radius": _int(1, 1, 31, 1),
            "sigma": _float(1.0, 0.1, 10.0, 0.1),
        },
        outputs=("IMAGE",),
    ),
    NodeDef(
        name="ImageInvert",
        display_name="Invert Image",
        category="image",
        required={"image": ("IMAGE",)},
        outputs=("IMAGE",),
    ),
    NodeDef(
        name="SaveImage",
        display_name="Save Image",
        category="image",
        description=_SAVE_DESCRIPTION,
        required={
            "images": ("IMAGE", {"tooltip": "The images to save."}),
            "filename_prefix": ("STRING", {"default": "ComfyUI", "tooltip": _SAVE_PREFIX_TOOLTIP}),
        },
        hidden={"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        outputs=(),
        output_node=True,
        search_aliases=("save", "save image", "export image", "output image", "write image", "download"),
    ),
    NodeDef(
        name="PreviewImage",
        display_name="Preview Image",
        category="image",
        description=_SAVE_DESCRIPTION,
        required={"images": ("IMAGE",)},
        hidden={"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        outputs=(),
        output_node=True,
        search_aliases=(
            "preview",
            "preview image",
            "show image",
            "view image",
            "display image",
            "image viewer",
        ),
    ),
    NodeDef(
        name="SlowProgress",
        display_name="Slow Progress (test)",
        category="testing",
        required={
            "image": ("IMAGE",),
            "steps": _int(10, 1, 10000),
            "delay": _float(0.2, 0.0, 60.0, 0.01),
        },
        optional={"preview": ("BOOLEAN", {"default": False}), "seed": _int(0, 0, 0xFFFFFFFF)},
        outputs=("IMAGE",),
        output_names=("image",),
        upstream_module="custom_nodes.test_nodes",
    ),
    NodeDef(
        name="RaiseError",
        display_name="Raise Error (test)",
        category="testing",
        required={"image": ("IMAGE",), "message": ("STRING", {"default": "boom from RaiseError"})},
        outputs=("IMAGE",),
        upstream_module="custom_nodes.test_nodes",
    ),
    NodeDef(
        name="CheckpointLoaderSimple",
        display_name="Load Checkpoint",
        category="loaders",
        description="Loads a diffusion model checkpoint, diffusion models are used to denoise latents.",
        required={
            "ckpt_name": (CHECKPOINTS, {"tooltip": "The name of the checkpoint (model) to load."}),
        },
        outputs=("MODEL", "CLIP", "VAE"),
    ),
    NodeDef(
        name="LoraLoader",
        display_name="Load LoRA",
        category="loaders",
        description=(
            "LoRAs are used to modify diffusion and CLIP models, altering the way in which latents are "
            "denoised such as applying styles. Multiple LoRA nodes can be linked together."
        ),
        required={
            "model": ("MODEL", {"tooltip": "The diffusion model the LoRA will be applied to."}),
            "clip": ("CLIP", {"tooltip": "The CLIP model the LoRA will be applied to."}),
            "lora_name": (LORAS, {"tooltip": "The name of the LoRA."}),
            "strength_model": _float(
                1.0,
                -100.0,
                100.0,
                0.01,
                tooltip="How strongly to modify the diffusion model. This value can be negative.",
            ),
            "strength_clip": _float(
                1.0,
                -100.0,
                100.0,
                0.01,
                tooltip="How strongly to modify the CLIP model. This value can be negative.",
            ),
        },
        outputs=("MODEL", "CLIP"),
    ),
    NodeDef(
        name="CLIPTextEncode",
        display_name="CLIP Text Encode (Prompt)",
        category="conditioning",
        description=(
            "Encodes a text prompt using a CLIP model into an embedding that can be used to guide the "
            "diffusion model towards generating specific images."
        ),
        required={
            "text": (
                "STRING",
                {"multiline": True, "dynamicPrompts": True, "tooltip": "The text to be encoded."},
            ),
            "clip": ("CLIP", {"tooltip": "The CLIP model used for encoding the text."}),
        },
        outputs=("CONDITIONING",),
    ),
    NodeDef(
        name="EmptyLatentImage",
        display_name="Empty Latent Image",
        category="latent",
        description="Create a new batch of empty latent images to be denoised via sampling.",
        required={
            "width": _int(512, 16, MAX_RESOLUTION, 8, tooltip="The width of the latent images in pixels."),
            "height": _int(512, 16, MAX_RESOLUTION, 8, tooltip="The height of the latent images in pixels."),
            "batch_size": _int(1, 1, 4096, tooltip="The number of latent images in the batch."),
        },
        outputs=("LATENT",),
    ),
    NodeDef(
        name="KSampler",
        display_name="KSampler",
        category="sampling",
        description=("Uses the provided model, positive and negative conditioning to denoise the latent image."),
        required={
            "model": ("MODEL", {"tooltip": "The model used for denoising the input latent."}),
            "seed": _int(
                0,
                0,
                0xFFFFFFFFFFFFFFFF,
                control_after_generate=True,
                tooltip="The random seed used for creating the noise.",
            ),
            "steps": _int(20, 1, 10000, tooltip="The number of steps used in the denoising process."),
            "cfg": _float(8.0, 0.0, 100.0, 0.1, round=0.01, tooltip="The Classifier-Free Guidance scale."),
            "sampler_name": (SAMPLERS, {"tooltip": "The algorithm used when sampling."}),
            "scheduler": (SCHEDULERS, {"tooltip": "The scheduler controls how noise is gradually removed."}),
            "positive": ("CONDITIONING", {"tooltip": "The conditioning describing what to include."}),
            "negative": ("CONDITIONING", {"tooltip": "The conditioning describing what to exclude."}),
            "latent_image": ("LATENT", {"tooltip": "The latent image to denoise."}),
            "denoise": _float(1.0, 0.0, 1.0, 0.01, tooltip="The amount of denoising applied."),
        },
        outputs=("LATENT",),
    ),
    NodeDef(
        name="VAEDecode",
        display_name="VAE Decode",
        category="latent",
        description="Decodes latent images back into pixel space images.",
        required={
            "samples": ("LATENT", {"tooltip": "The latent to be decoded."}),
            "vae": ("VAE", {"tooltip": "The VAE model used for decoding the latent."}),
        },
        outputs=("IMAGE",),
    ),
]

_UPSCALE_METHODS = ["nearest-exact", "bilinear", "area", "bicubic", "lanczos"]
_VHS_FORMATS = ["image/gif", "image/webp"]
"""The fake's video combine formats: the two VideoHelperSuite writes without ffmpeg."""

# Loaders of uploaded files and the image-to-image, inpainting, upscaling and other output nodes. Combos
# that list a folder (LoadImage's input files, UpscaleModelLoader's models) are empty here: the server
# fills them from the running fake (`LIVE_CHOICES`).
_NODES += [
    NodeDef(
        name="LoadImage",
        display_name="Load Image",
        category="image",
        required={"image": ([], {"image_upload": True})},
        outputs=("IMAGE", "MASK"),
    ),
    NodeDef(
        name="LoadImageMask",
        display_name="Load Image (as Mask)",
        category="mask",
        required={"image": ([], {"image_upload": True}), "channel": (["alpha", "red", "green", "blue"],)},
        outputs=("MASK",),
    ),
    NodeDef(
        name="VAEEncode",
        display_name="VAE Encode",
        category="latent",
        required={"pixels": ("IMAGE",), "vae": ("VAE",)},
        outputs=("LATENT",),
    ),
    NodeDef(
        name="VAEEncodeForInpaint",
        display_name="VAE Encode (for Inpainting)",
        category="latent/inpaint",
        required={
            "pixels": ("IMAGE",),
            "vae": ("VAE",),
            "mask": ("MASK",),
            "grow_mask_by": _int(6, 0, 64, 1),
        },
        outputs=("LATENT",),
    ),
    NodeDef(
        name="SetLatentNoiseMask",
        display_name="Set Latent Noise Mask",
        category="latent/inpaint",
        required={"samples": ("LATENT",), "mask": ("MASK",)},
        outputs=("LATENT",),
    ),
    NodeDef(
        name="ImageScale",
        display_name="Upscale Image",
        category="image/upscaling",
        required={
            "image": ("IMAGE",),
            "upscale_method": (_UPSCALE_METHODS,),
            "width": _int(512, 0, MAX_RESOLUTION, 1),
            "height": _int(512, 0, MAX_RESOLUTION, 1),
            "crop": (["disabled", "center"],),
        },
        outputs=("IMAGE",),
    ),
    NodeDef(
        name="ImageScaleBy",
        display_name="Upscale Image By",
        category="image/upscaling",
        required={
            "image": ("IMAGE",),
            "upscale_method": (_UPSCALE_METHODS,),
            "scale_by": _float(1.0, 0.01, 8.0, 0.01),
        },
        outputs=("IMAGE",),
    ),
    NodeDef(
        name="UpscaleModelLoader",
        display_name="Load Upscale Model",
        category="loaders",
        python_module="comfy_extras.nodes_upscale_model",
        required={"model_name": ([],)},
        outputs=("UPSCALE_MODEL",),
    ),
    NodeDef(
        name="ImageUpscaleWithModel",
        display_name="Upscale Image (using Model)",
        category="image/upscaling",
        python_module="comfy_extras.nodes_upscale_model",
        required={"upscale_model": ("UPSCALE_MODEL",), "image": ("IMAGE",)},
        outputs=("IMAGE",),
    ),
    NodeDef(
        name="SaveAnimatedWEBP",
        display_name="SaveAnimatedWEBP",
        category="image/animation",
        python_module="comfy_extras.nodes_images",
        required={
            "images": ("IMAGE",),
            "filename_prefix": ("STRING", {"default": "ComfyUI"}),
            "fps": _float(6.0, 0.01, 1000.0, 0.01),
            "lossless": ("BOOLEAN", {"default": True}),
            "quality": _int(80, 0, 100),
            "method": (["default", "fastest", "slowest"],),
        },
        hidden={"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        outputs=(),
        output_node=True,
    ),
    NodeDef(
        name="PrimitiveString",
        display_name="String",
        category="utils/primitive",
        python_module="comfy_extras.nodes_primitive",
        required={"value": ("STRING", {})},
        outputs=("STRING",),
    ),
    NodeDef(
        name="PreviewAny",
        display_name="Preview Any",
        category="utils",
        python_module="comfy_extras.nodes_preview_any",
        required={"source": ("*", {})},
        outputs=(),
        output_node=True,
    ),
    NodeDef(
        name="EmptyLatentAudio",
        display_name="Empty Latent Audio",
        category="latent/audio",
        python_module="comfy_extras.nodes_audio",
        required={"seconds": _float(47.6, 1.0, 1000.0, 0.1), "batch_size": _int(1, 1, 4096)},
        outputs=("LATENT",),
    ),
    NodeDef(
        name="VAEDecodeAudio",
        display_name="VAE Decode Audio",
        category="latent/audio",
        python_module="comfy_extras.nodes_audio",
        required={"samples": ("LATENT",), "vae": ("VAE",)},
        outputs=("AUDIO",),
    ),
    NodeDef(
        name="SaveAudio",
        display_name="Save Audio (FLAC)",
        category="audio",
        python_module="comfy_extras.nodes_audio",
        required={"audio": ("AUDIO",), "filename_prefix": ("STRING", {"default": "audio/ComfyUI"})},
        hidden={"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        outputs=(),
        output_node=True,
    ),
    NodeDef(
        name="VHS_VideoCombine",
        display_name="Video Combine 🎥🅥🅗🅢",
        category="Video Helper Suite 🎥🅥🅗🅢",
        python_module="custom_nodes.ComfyUI-VideoHelperSuite",
        required={
            "images": ("IMAGE",),
            "frame_rate": ("FLOAT", {"default": 8, "min": 1, "step": 1}),
            "loop_count": _int(0, 0, 100, 1),
            "filename_prefix": ("STRING", {"default": "AnimateDiff"}),
            "format": (_VHS_FORMATS,),
            "pingpong": ("BOOLEAN", {"default": False}),
            "save_output": ("BOOLEAN", {"default": True}),
        },
        optional={"audio": ("AUDIO",), "vae": ("VAE",)},
        hidden={"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO", "unique_id": "UNIQUE_ID"},
        outputs=("VHS_FILENAMES",),
        output_names=("Filenames",),
        output_node=True,
    ),
]

UNRECORDED_NODES = frozenset({"VHS_VideoCombine", "EmptyLatentAudio", "VAEDecodeAudio", "SaveAudio"})
"""Nodes the recorded upstream host did not list: a custom node (VideoHelperSuite) and comfy_extras.nodes_audio,
which ComfyUI loads only where torchaudio is installed."""

CUSTOM_VALIDATION = {"LoadImage": ("image",), "LoadImageMask": ("image",)}
"""Inputs checked by the node's own VALIDATE_INPUTS (an uploaded file must exist) instead of their combo."""

NODES: dict[str, NodeDef] = {node.name: node for node in _NODES}


LiveChoices = dict[tuple[str, str], list[str]]
"""(class, input) → the choices of a combo that lists something the running fake holds."""


def object_info(*, upstream: bool = True, live: LiveChoices | None = None) -> dict[str, Any]:
    return {name: node_info(name, upstream=upstream, live=live) for name in NODES}


def node_info(name: str, *, upstream: bool = True, live: LiveChoices | None = None) -> dict[str, Any]:
    info = NODES[name].object_info(upstream=upstream)
    for (class_type, input_name), choices in (live or {}).items():
        if class_type == name:
            spec = info["input"]["required"][input_name]
            info["input"]["required"][input_name] = [list(choices), *spec[1:]]
    return info
