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

NODES: dict[str, NodeDef] = {node.name: node for node in _NODES}


def object_info(*, upstream: bool = True) -> dict[str, Any]:
    return {name: node.object_info(upstream=upstream) for name, node in NODES.items()}
