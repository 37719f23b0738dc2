"""Recording 01: the read-only endpoints, byte for byte where the data is static."""

from __future__ import annotations

import httpx
import pytest

from comfy.fake.catalog import NODES
from tests.fake.recordings import load, shape
from tests.fake.replay import assert_http_like

STATIC = ["/object_info/EmptyImage", "/object_info/SlowProgress", "/object_info/SaveImage", "/features"]


@pytest.mark.parametrize("path", STATIC)
async def test_static_answers_match_exactly(http: httpx.AsyncClient, path: str) -> None:
    (recorded,) = load("01").http("GET", path)
    got = await http.get(path)
    assert_http_like(got, recorded)
    assert got.json() == recorded["json"]


@pytest.mark.parametrize(
    "path", ["/queue", "/history", "/history?max_items=2", "/prompt", "/embeddings", "/object_info/NoSuchNode"]
)
async def test_idle_answers_match_exactly(http: httpx.AsyncClient, path: str) -> None:
    (recorded,) = load("01").http("GET", path)
    got = await http.get(path)
    assert_http_like(got, recorded)
    assert got.json() == recorded["json"]
    assert int(got.headers["content-length"]) == recorded["size"]


async def test_unknown_history_is_empty_object(http: httpx.AsyncClient) -> None:
    (recorded,) = load("01").http("GET", "/history/does-not-exist")
    got = await http.get("/history/does-not-exist")
    assert_http_like(got, recorded)
    assert got.json() == {}


async def test_system_stats_shape(http: httpx.AsyncClient) -> None:
    (recorded,) = load("01").http("GET", "/system_stats")
    got = await http.get("/system_stats")
    assert_http_like(got, recorded)
    assert got.json()["system"]["comfyui_version"] == "0.12.1"


async def test_object_info_lists_every_node_in_comfyui_format(http: httpx.AsyncClient) -> None:
    recorded = load("01").http("GET", "/object_info")[0]
    got = await http.get("/object_info")
    assert got.status_code == 200
    assert got.headers["content-type"] == recorded["content_type"]
    info = got.json()
    assert set(info) == set(NODES)
    assert set(info) - {"SlowProgress", "RaiseError"} <= set(recorded["json_keys_only"])
    key_set = shape(load("01").http("GET", "/object_info/SaveImage")[0]["json"]["SaveImage"]).keys()
    for node in info.values():
        assert shape(node).keys() == key_set


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
