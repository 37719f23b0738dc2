"""Invalid configuration names the variable; `safelight config` never prints a secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from settings import ConfigError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no developer .env
    for name in list(os.environ):
        if name.startswith("SAFELIGHT_") or name in {"DATABASE_URL", "REDIS_URL", "COMFYUI_URLS"}:
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SAFELIGHT_PORT", "70000"),
        ("SAFELIGHT_PORT", "eighty"),
        ("DATABASE_URL", "mysql://root@db/safelight"),
        ("REDIS_URL", "http://redis:6379"),
        ("COMFYUI_URLS", "http://gpu-1:8188,gpu-2:8188"),
        ("SAFELIGHT_DEV_MODE", "perhaps"),
        ("SAFELIGHT_WORKER_CONCURRENCY", "0"),
        ("SAFELIGHT_LOG_LEVEL", "LOUD"),
    ],
)
def test_invalid_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert f"\n  {name}: " in str(info.value)


def test_every_bad_variable_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFELIGHT_PORT", "0")
    monkeypatch.setenv("COMFYUI_URLS", "ftp://nope")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "SAFELIGHT_PORT: " in str(info.value)
    assert "COMFYUI_URLS: " in str(info.value)


def test_valid_environment_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMFYUI_URLS", "http://gpu-1:8188/, https://gpu-2")
    monkeypatch.setenv("SAFELIGHT_DEV_MODE", "1")
    settings = load_settings()
    assert settings.comfyui_urls == ("http://gpu-1:8188", "https://gpu-2")
    assert settings.dev_mode is True


def _safelight(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "safelight.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_config_command_redacts_secrets(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": "postgresql://safelight:hunter2@db.internal:5432/safelight",
        "REDIS_URL": "redis://:r3dis-pass@cache:6379/0",
        "COMFYUI_URLS": "http://gpu-1:8188",
        "SAFELIGHT_DEV_TOKEN": "tok-abcdef123456",
    }
    result = _safelight("config", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for secret in ("hunter2", "r3dis-pass", "tok-abcdef123456"):
        assert secret not in result.stdout
    shown = json.loads(result.stdout)
    assert shown["DATABASE_URL"] == "postgresql://safelight:***@db.internal:5432/safelight"
    assert shown["REDIS_URL"] == "redis://***@cache:6379/0"
    assert shown["SAFELIGHT_DEV_TOKEN"] == "**********"
    assert shown["COMFYUI_URLS"] == ["http://gpu-1:8188"]


def test_bad_config_fails_at_start_naming_the_variable(tmp_path: Path) -> None:
    env = {**os.environ, "SAFELIGHT_PORT": "99999"}
    result = _safelight("config", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "SAFELIGHT_PORT" in result.stderr
    assert result.stdout == ""
