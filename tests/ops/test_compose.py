"""docker-compose.yml parses, and speaks the CLI's commands and the settings' variable names."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from safelight.cli import _build_parser
from settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SAFELIGHT_IMAGE = "safelight:"


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def _safelight_services(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: svc for name, svc in data["services"].items() if str(svc.get("image", "")).startswith(SAFELIGHT_IMAGE)
    }


def _docker_compose_config(path: Path) -> None:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is not installed (apt-get install -y docker-compose); .ci/run installs it"
    result = subprocess.run(
        [binary, "-f", str(path), "config", "-q"],
        cwd=path.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_compose_file_validates() -> None:
    _docker_compose_config(COMPOSE)


def test_gpu_comfyui_variant_validates(tmp_path: Path) -> None:
    text = COMPOSE.read_text()
    begin, end = "  # --- real GPU ComfyUI ---\n", "  # --- end real GPU ComfyUI ---\n"
    block = text[text.index(begin) + len(begin) : text.index(end)]
    gpu = yaml.safe_load("\n".join(line[4:] for line in block.splitlines()))
    assert gpu["comfyui"]["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"
    data = _compose()
    data["services"]["comfyui"] = gpu["comfyui"]
    data["volumes"]["comfyui-models"] = None
    variant = tmp_path / "docker-compose.yml"
    variant.write_text(yaml.safe_dump(data))
    (tmp_path / "Dockerfile").touch()  # build contexts are resolved against the file's directory
    _docker_compose_config(variant)


def test_commands_are_cli_subcommands() -> None:
    parser = _build_parser()
    services = _safelight_services(_compose())
    commands = {name: svc["command"] for name, svc in services.items()}
    assert {cmd[0] for cmd in commands.values()} >= {"migrate", "api", "worker", "fake-comfy"}
    for name, command in commands.items():
        try:
            parser.parse_args([str(part) for part in command])
        except SystemExit:
            pytest.fail(f"{name}: `safelight {' '.join(command)}` is not a valid command line")


def test_environment_names_are_settings_names() -> None:
    known = set(Settings.model_construct().redacted())
    for name, svc in _safelight_services(_compose()).items():
        unknown = set(svc.get("environment") or {}) - known
        assert not unknown, f"{name} sets variables no setting reads: {sorted(unknown)}"


def test_production_shape() -> None:
    services = _compose()["services"]
    assert set(services) >= {"postgres", "redis", "migrate", "api", "worker", "frontend", "comfyui"}
    for name in ("postgres", "redis", "api", "comfyui"):
        assert "healthcheck" in services[name], name
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["redis"]["condition"] == "service_healthy"
    assert "/healthz" in " ".join(services["api"]["healthcheck"]["test"])
    worker = services["worker"]
    assert "container_name" not in worker and "ports" not in worker  # scalable with --scale
    assert services["api"]["environment"] == worker["environment"]  # one fingerprint for both


def test_nginx_proxies_graphql_and_images_to_the_api() -> None:
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "server api:8000;" in conf
    for location in ("location /graphql", "location /images/"):
        assert location in conf
    assert "proxy_set_header Upgrade $http_upgrade;" in conf
