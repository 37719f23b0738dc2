"""`safelight template add|list`: the CLI saves through the same checks and registry as saveTemplate."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest

from comfy.templates import SHIPPED_DIR
from safelight.cli import main
from safelight.template_admin import add_template, list_templates
from settings import Settings

UI_TXT2IMG = Path(__file__).resolve().parents[1] / "comfy" / "ui_workflows" / "txt2img.ui.json"


async def test_add_a_ui_workflow_checked_against_the_backend(stack_settings: Settings, tmp_path: Path) -> None:
    settings = stack_settings.model_copy(update={"namespace": f"sltest-{uuid.uuid4().hex[:8]}"})
    name = f"cli-{uuid.uuid4().hex[:8]}"
    code, lines = await asyncio.to_thread(add_template, settings, path=UI_TXT2IMG, name=name, title="From the editor")
    assert code == 0, lines
    assert lines[-1].startswith(f"template {name!r} (UI format): version 1;") and "prompt:string" in lines[-1]
    code, lines = await asyncio.to_thread(add_template, settings, path=UI_TXT2IMG, name=name, title="From the editor")
    assert code == 0 and "unchanged (version 1)" in lines[-1]

    listed = await asyncio.to_thread(list_templates, settings)
    mine = [line for line in listed if line.startswith(f"{name}\t")]
    assert mine == [f"{name}\tv1\tuploaded\t{mine[0].split(chr(9))[3]}\tFrom the editor"]
    assert any(line.startswith("txt2img\t") and "\tshipped\t" in line for line in listed)

    # A workflow the backend cannot run is refused with the node input named.
    broken = json.loads((SHIPPED_DIR / "txt2img.json").read_text(encoding="utf-8"))
    broken["5"]["inputs"]["batch_size"] = 100_000
    (tmp_path / "broken.json").write_text(json.dumps(broken), encoding="utf-8")
    params = tmp_path / "broken.params.json"
    params.write_text(json.dumps({"title": "B", "params": []}), encoding="utf-8")
    code, lines = await asyncio.to_thread(add_template, settings, path=tmp_path / "broken.json", params_path=params)
    assert code == 1 and any(line.startswith("workflow.5.inputs.batch_size:") for line in lines), lines

    code, lines = await asyncio.to_thread(add_template, settings, path=SHIPPED_DIR / "txt2img.json", name="txt2img")
    assert code == 1 and "shipped template" in lines[-1]


async def test_without_a_backend_an_api_workflow_is_saved_unchecked(settings: Settings, tmp_path: Path) -> None:
    offline = settings.model_copy(
        update={"namespace": f"sltest-{uuid.uuid4().hex[:8]}", "comfyui_urls": ("http://127.0.0.1:9",)}
    )
    name = f"cli-{uuid.uuid4().hex[:8]}"
    params = SHIPPED_DIR / "txt2img.params.json"
    code, lines = await asyncio.to_thread(
        add_template, offline, path=SHIPPED_DIR / "txt2img.json", name=name, params_path=params
    )
    assert code == 0, lines
    assert lines[0] == "no ComfyUI backend answered: saved without the catalogue check"
    assert f"template {name!r} (API format): version 1" in lines[1]
    code, lines = await asyncio.to_thread(add_template, offline, path=UI_TXT2IMG, name=f"{name}-ui")
    assert code == 1 and lines[-1].startswith("workflow: a UI-format workflow is converted with a backend's")


def test_the_command_line(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", str(settings.database_url))
    monkeypatch.setenv("REDIS_URL", str(settings.redis_url))
    monkeypatch.setenv("SAFELIGHT_NAMESPACE", f"sltest-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("COMFYUI_URLS", "http://127.0.0.1:9")
    name = f"cli-{uuid.uuid4().hex[:8]}"
    workflow = SHIPPED_DIR / "txt2img.json"
    assert main(["template", "add", str(workflow), "--name", name, "--title", "T", "--description", "D"]) == 0
    assert f"template {name!r} (API format): version 1" in capsys.readouterr().out
    assert main(["template", "list"]) == 0
    assert f"{name}\tv1\tuploaded\t" in capsys.readouterr().out
