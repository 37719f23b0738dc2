"""Outputs of every kind in history entries and `executed` messages: images, animations, videos,
audio, text; batch indexes; bounds.

The shapes are upstream's: SaveImage/PreviewImage `images`, SaveAnimatedWEBP/PNG `images` with
`animated: [true]`, SaveVideo (`images` + `animated`, an .mp4), a video-combine node's `gifs` (with
`format`), SaveAudio `audio`, PreviewAny `text`.
"""

from __future__ import annotations

from typing import Any

import pytest

from comfy.client import HistoryEntry
from comfy.errors import ComfyProtocolError
from comfy.events import NodeOutput, OutputFile, OutputImage, parse_message, parse_output_files

from .conftest import http_answers, load_recording


def _file(name: str, subfolder: str = "", type: str = "output", **extra: Any) -> dict[str, Any]:
    return {"filename": name, "subfolder": subfolder, "type": type, **extra}


EVERY_KIND: dict[str, Any] = {
    "9": {"images": [_file("s_00001_.png"), _file("s_00002_.png")]},
    "10": {"images": [_file("anim_00001_.webp")], "animated": [True]},
    "11": {"images": [_file("video/clip_00001_.mp4")], "animated": [True]},
    "12": {
        "gifs": [
            _file("AnimateDiff_00001.mp4", format="video/h264-mp4", frame_rate=8.0, fullpath="/srv/x.mp4"),
            _file("AnimateDiff_00002.gif", format="image/gif", frame_rate=8.0),
        ]
    },
    "13": {"audio": [_file("audio/ComfyUI_00001_.flac")]},
    "14": {"text": ["first answer", "second answer"]},
    "15": {"images": [_file("ComfyUI_temp_abc_00001_.png", type="temp")]},
    "16": {"3d": [_file("mesh.glb")], "unknown": "ignored"},
}


def test_every_kind_from_a_history_entry() -> None:
    entry = HistoryEntry.parse("p", {"outputs": EVERY_KIND, "status": {"status_str": "success", "completed": True}})
    assert entry.outputs == (
        OutputFile("9", "s_00001_.png", "", "output", "image", 0),
        OutputFile("9", "s_00002_.png", "", "output", "image", 1),
        OutputFile("10", "anim_00001_.webp", "", "output", "animation", 0),
        OutputFile("11", "video/clip_00001_.mp4", "", "output", "video", 0),
        OutputFile("12", "AnimateDiff_00001.mp4", "", "output", "video", 0),
        OutputFile("12", "AnimateDiff_00002.gif", "", "output", "animation", 1),
        OutputFile("13", "audio/ComfyUI_00001_.flac", "", "output", "audio", 0),
        OutputFile("14", "", "", "", "text", 0, "first answer"),
        OutputFile("14", "", "", "", "text", 1, "second answer"),
        OutputFile("15", "ComfyUI_temp_abc_00001_.png", "", "temp", "image", 0),
    )
    # current callers: still and animated images, as before (videos and audio are not images)
    assert entry.images == (
        OutputImage("s_00001_.png", "", "output"),
        OutputImage("s_00002_.png", "", "output"),
        OutputImage("anim_00001_.webp", "", "output"),
        OutputImage("AnimateDiff_00002.gif", "", "output"),
        OutputImage("ComfyUI_temp_abc_00001_.png", "", "temp"),
    )


def test_video_keys_and_a_text_string() -> None:
    files = parse_output_files("3", {"video": [_file("a.webm")], "videos": [_file("b.mp4")], "text": "one"})
    assert [(f.kind, f.filename, f.batch_index, f.text) for f in files] == [
        ("video", "a.webm", 0, None),
        ("video", "b.mp4", 0, None),
        ("text", "", 0, "one"),
    ]


def test_animated_flags_per_image_or_for_the_node() -> None:
    per_image = parse_output_files("1", {"images": [_file("a.png"), _file("b.webp")], "animated": [False, True]})
    assert [f.kind for f in per_image] == ["image", "animation"]
    one_flag = parse_output_files("1", {"images": [_file("a.webp"), _file("b.webp")], "animated": [True]})
    assert [f.kind for f in one_flag] == ["animation", "animation"]
    assert [f.kind for f in parse_output_files("1", {"images": [_file("a.png")], "animated": [False]})] == ["image"]


def test_malformed_entries_are_skipped() -> None:
    output = {"images": [{"subfolder": ""}, "x", _file(""), _file("ok.png")], "audio": "nope", "text": [1, "t"]}
    files = parse_output_files("1", output)
    assert [(f.filename, f.kind, f.batch_index) for f in files] == [("ok.png", "image", 0), ("", "text", 0)]
    assert parse_output_files("1", None) == () and parse_output_files("1", []) == ()


def test_bounds() -> None:
    long_text = "é" * 40_000  # 80,000 bytes of UTF-8
    (text,) = parse_output_files("1", {"text": [long_text]})
    assert text.text is not None and len(text.text.encode()) == 64 * 1024 and set(text.text) == {"é"}
    with pytest.raises(ComfyProtocolError, match="256 characters"):
        parse_output_files("1", {"images": [_file("x" * 256)]})
    many = {str(n): {"images": [_file(f"{n}_{i}.png") for i in range(100)]} for n in range(11)}
    with pytest.raises(ComfyProtocolError, match="more than"):
        HistoryEntry.parse("p", {"outputs": many})
    ten = {str(n): {"images": [_file(f"{n}_{i}.png") for i in range(100)]} for n in range(10)}
    assert len(HistoryEntry.parse("p", {"outputs": ten}).outputs) == 1000


def test_executed_message_carries_every_file() -> None:
    message = {"type": "executed", "data": {"prompt_id": "p", "node": "14", "output": EVERY_KIND["12"]}}
    event = parse_message(message)
    assert isinstance(event, NodeOutput) and event.images == ()
    assert [f.kind for f in event.files] == ["video", "animation"]


@pytest.mark.parametrize("upstream", [False, True])
def test_recorded_history_outputs(upstream: bool) -> None:
    answers = [a for a in http_answers(load_recording("02_", upstream=upstream), "GET", "/history/") if a["json"]]
    (prompt_id,) = answers[0]["json"]
    entry = HistoryEntry.parse(prompt_id, answers[0]["json"][prompt_id])
    assert entry.outputs and all(f.kind == "image" and f.type == "output" for f in entry.outputs)
    assert [f.batch_index for f in entry.outputs] == list(range(len(entry.outputs)))
    assert entry.images == tuple(OutputImage(f.filename, f.subfolder, f.type) for f in entry.outputs)
