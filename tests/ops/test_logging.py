"""Logs are for operators: no access-log line per request (previews, thumbnails) unless asked for."""

from __future__ import annotations

import logging
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from graph.serve import uvicorn_options
from jobs.logs import configure_logging
from safelight.procs import free_port
from settings import load_settings

_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


@pytest.fixture(autouse=True)
def _restore_uvicorn_loggers() -> Iterator[None]:
    """uvicorn's Config sets its loggers' handlers, levels and propagation: put them back after."""
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate) for lg in map(logging.getLogger, _UVICORN_LOGGERS)]
    yield
    for lg, handlers, level, propagate in saved:
        lg.handlers[:], lg.level, lg.propagate = handlers, level, propagate


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"image/webp")]})
    await send({"type": "http.response.body", "body": b"RIFF"})


def _access_lines(options: dict[str, Any], caplog: pytest.LogCaptureFixture) -> list[str]:
    """Serve a stand-in app with `options`, fetch a preview and a thumbnail; the access-log lines."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(_app, **{**options, "host": "127.0.0.1", "port": port, "lifespan": "off"}))
    thread = threading.Thread(target=server.run, daemon=True)
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        thread.start()
        try:
            deadline = time.monotonic() + 30
            while not server.started:
                assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
                time.sleep(0.02)
            for path in ("/previews/abc", "/thumbs/256/6b1d1f4e-5c4a-4c1e-9d61-1d6b3f0e2a10/0"):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
                    assert response.status == 200
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    return [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]


@pytest.mark.parametrize(
    ("env", "logged"),
    [
        ({}, False),
        ({"SAFELIGHT_LOG_LEVEL": "WARNING"}, False),
        ({"SAFELIGHT_ACCESS_LOG": "1"}, True),
        ({"SAFELIGHT_LOG_LEVEL": "DEBUG"}, True),
    ],
    ids=["default", "warning", "access-log-on", "debug"],
)
def test_access_log_only_when_asked_for(
    env: dict[str, str], logged: bool, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("SAFELIGHT_ACCESS_LOG", "SAFELIGHT_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    options = uvicorn_options(load_settings())
    assert options["log_config"] is None  # uvicorn's lines take our format and redaction

    lines = _access_lines(options, caplog)

    if logged:
        assert any('"GET /previews/abc HTTP/1.1" 200' in line for line in lines), lines
        assert any("GET /thumbs/256/" in line for line in lines), lines
    else:
        assert lines == []


def test_uvicorn_lines_are_not_labelled_error(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("INFO")
        logging.getLogger("uvicorn.error").info("Started server process [%d]", 42)
        logging.getLogger("uvicorn.error").error("Exception in ASGI application")
    finally:
        root.handlers[:], root.level = saved
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" ", 2)[2] for line in lines] == [
        "INFO uvicorn [-] Started server process [42]",
        "ERROR uvicorn [-] Exception in ASGI application",
    ]
