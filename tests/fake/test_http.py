"""Recordings 01 and 19: the read-only endpoints, byte for byte where the data is static, in both dialects."""

from __future__ import annotations

import httpx
import pytest

from comfy.fake.catalog import CHECKPOINTS, NODES, UNRECORDED_NODES
from comfy.fake.config import Dialect
from tests.fake.recordings import BUILDS, load, shape
from tests.fake.replay import assert_http_like

BUILD = pytest.mark.parametrize("dialect", BUILDS)

STATIC = ["/object_info/EmptyImage", "/object_info/SlowProgress", "/object_info/SaveImage", "/features"]


@BUILD
@pytest.mark.parametrize("path", STATIC)
async def test_static_answers_match_exactly(http: httpx.AsyncClient, dialect: Dialect, path: str) -> None:
    (recorded,) = load("01", dialect).http("GET", path)
    got = await http.get(path)
    assert_http_like(got, recorded)
    assert got.json() == recorded["json"]


@BUILD
@pytest.mark.parametrize(
    "path", ["/queue", "/history", "/history?max_items=2", "/prompt", "/embeddings", "/object_info/NoSuchNode"]
)
async def test_idle_answers_match_exactly(http: httpx.AsyncClient, dialect: Dialect, path: str) -> None:
    (recorded,) = load("01", dialect).http("GET", path)
    got = await http.get(path)
    assert_http_like(got, recorded)
    assert got.json() == recorded["json"]
    assert int(got.headers["content-length"]) == recorded["size"]


@BUILD
async def test_unknown_history_is_empty_object(http: httpx.AsyncClient, dialect: Dialect) -> None:
    (recorded,) = load("01", dialect).http("GET", "/history/does-not-exist")
    got = await http.get("/history/does-not-exist")
    assert_http_like(got, recorded)
    assert got.json() == {}


@BUILD
async def test_system_stats_shape(http: httpx.AsyncClient, dialect: Dialect) -> None:
    (recorded,) = load("01", dialect).http("GET", "/system_stats")
    got = await http.get("/system_stats")
    assert_http_like(got, recorded)
    system, want = got.json()["system"], recorded["json"]["system"]
    for key in ("os", "comfyui_version", "required_frontend_version"):
        assert system[key] == want[key], key


@BUILD
async def test_object_info_lists_every_node_in_comfyui_format(http: httpx.AsyncClient, dialect: Dialect) -> None:
    """Every node has the keys of the recorded SaveImage: no `is_input_list`/`search_aliases` upstream."""
    recorded = load("01", dialect).http("GET", "/object_info")[0]
    got = await http.get("/object_info")
    assert got.status_code == 200
    assert got.headers["content-type"] == recorded["content_type"]
    info = got.json()
    assert set(info) == set(NODES)
    assert set(info) - {"SlowProgress", "RaiseError"} - UNRECORDED_NODES <= set(recorded["json_keys_only"])
    key_set = shape(load("01", dialect).http("GET", "/object_info/SaveImage")[0]["json"]["SaveImage"]).keys()
    for node in info.values():
        assert shape(node).keys() == key_set
    assert ("search_aliases" in key_set) is (dialect == "packaging")


async def test_19_system_stats_features_and_models(http: httpx.AsyncClient) -> None:
    """Recording 19 (upstream): `/features` is only supports_preview_metadata and max_upload_size; the
    system's values are upstream's; `/models` lists upstream's folders, `/models/{folder}` the files."""
    rec = load("19", "upstream")
    for path in ("/features", "/object_info/SaveImage", "/models", "/embeddings"):
        (recorded,) = rec.http("GET", path)
        got = await http.get(path)
        assert_http_like(got, recorded)
        assert got.json() == recorded["json"], path
    (stats,) = rec.http("GET", "/system_stats")
    got = await http.get("/system_stats")
    assert_http_like(got, stats)
    system = got.json()["system"]
    assert (system["os"], system["comfyui_version"], system["required_frontend_version"]) == (
        "posix",
        "0.3.64",
        "1.27.10",
    )
    (checkpoints,) = rec.http("GET", "/models/checkpoints")
    got = await http.get("/models/checkpoints")
    assert_http_like(got, checkpoints)
    assert got.json() == CHECKPOINTS  # upstream had no weights; the fake offers its loaders' files
    assert (await http.get("/models/nothing_like_this")).status_code == 404
    (extensions,) = rec.http("GET", "/extensions")
    got = await http.get("/extensions")
    assert_http_like(got, extensions)
    assert got.json() == []  # the fake serves no frontend


async def test_txt2img_catalogue(http: httpx.AsyncClient) -> None:
    info = (await http.get("/object_info")).json()
    ksampler = info["KSampler"]["input"]["required"]
    assert ksampler["seed"][1]["max"] == 0xFFFFFFFFFFFFFFFF
    assert "euler" in ksampler["sampler_name"][0] and "karras" in ksampler["scheduler"][0]
    assert "sd_xl_base_1.0.safetensors" in info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0]
    latent = info["EmptyLatentImage"]["input"]["required"]["width"][1]
    assert (latent["min"], latent["max"], latent["step"]) == (16, 16384, 8)
    assert info["LoraLoader"]["input"]["required"]["strength_model"][1]["min"] == -100.0


async def test_api_prefix_serves_the_same_routes(http: httpx.AsyncClient) -> None:
    assert (await http.get("/api/features")).json() == (await http.get("/features")).json()
