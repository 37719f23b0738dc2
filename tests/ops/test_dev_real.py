"""The real `safelight dev` (embedded servers, fake ComfyUI, API, a worker), read as an operator reads it.

A generation survives the fake ComfyUI being killed (the supervisor restarts it; the API stays up),
and a `safelight dev` stopped and started again mid-generation resumes it quietly: arq's
"max retries exceeded" and tracebacks never appear, nor an access-log line per request.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from safelight.procs import cmdline, free_port, port_is_open
from tests.ops.reaper import Output, Reaper

CREATE = """mutation($input: GenerationInput!) { createGeneration(input: $input) {
  __typename ... on GenerationPayload { generation { id } } } }"""
STATUS = "query($id: ID!) { generation(id: $id) { status attempt progress { phase } } }"
_TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}


class _Dev:
    def __init__(self, state: Path, reaper: Reaper, cwd: Path) -> None:
        self.state, self.reaper, self.cwd = state, reaper, cwd
        self.port, self.comfy_port = free_port(), free_port()
        self.args = ["--port", str(self.port), "--fake-comfy-port", str(self.comfy_port)]
        self.args += ["--postgres-port", str(free_port()), "--redis-port", str(free_port()), "--workers", "1"]
        reaper.own(state)

    def start(self) -> Output:
        configured = ("SAFELIGHT_", "DATABASE_URL", "REDIS_URL", "COMFYUI_URLS")
        env = {k: v for k, v in os.environ.items() if not k.startswith(configured)}
        env["SAFELIGHT_STATE_DIR"] = str(self.state)
        proc = self.reaper.popen(
            [sys.executable, "-m", "safelight.cli", "dev", *self.args],
            env=env,
            cwd=self.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        output = Output(proc)
        output.wait_for("Press Ctrl-C to stop.", timeout=240)
        output.wait_for("worker-1 | ", timeout=120)  # the worker is up and logging
        return output

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        token = (self.state / "dev-token").read_text().strip()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/graphql",
            data=json.dumps({"query": query, "variables": variables}).encode(),
            headers={"content-type": "application/json", "authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.load(response)
        assert "errors" not in body, body
        data: dict[str, Any] = body["data"]
        return data

    def create(self) -> str:
        payload = self.graphql(CREATE, input={"prompt": "a lighthouse at dusk", "steps": 150})["createGeneration"]
        assert payload["__typename"] == "GenerationPayload", payload
        return str(payload["generation"]["id"])

    def status(self, generation_id: str) -> dict[str, Any]:
        generation: dict[str, Any] = self.graphql(STATUS, id=generation_id)["generation"]
        return generation

    def wait_status(self, generation_id: str, done: set[str], output: Output, timeout: float = 120.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (status := self.status(generation_id))["status"] not in done:
            if time.monotonic() > deadline:
                pytest.fail(f"generation still {status} after {timeout:.0f}s:\n{output.text}")
            time.sleep(0.2)
        return status


def _problems(text: str) -> list[str]:
    """Lines an operator would have to look into."""
    return [line for line in text.splitlines() if re.search(r" (WARNING|ERROR|CRITICAL) |Traceback|max retries", line)]


@pytest.mark.slow
def test_dev_survives_a_comfy_kill_and_a_restart_mid_generation(
    tmp_path: Path, server_dir: Path, reaper: Reaper
) -> None:
    dev = _Dev(server_dir / "state", reaper, tmp_path)
    output = dev.start()

    # The fake ComfyUI dies mid-run: it is restarted, the API stays up, the generation still succeeds.
    first = dev.create()
    dev.wait_status(first, {"RUNNING", *_TERMINAL}, output)
    (comfy_pid,) = (
        pid
        for pid in reaper.marked()
        if (argv := cmdline(pid)) and "fake-comfy" in argv and str(dev.comfy_port) in argv
    )
    os.kill(comfy_pid, signal.SIGKILL)
    output.wait_for("safelight dev: comfyui exited unexpectedly (killed by SIGKILL)")
    output.wait_for("safelight dev: comfyui restarted")
    assert dev.wait_status(first, _TERMINAL, output)["status"] == "SUCCEEDED", output.text
    assert port_is_open("127.0.0.1", dev.comfy_port)
    assert output.text.count("Uvicorn running on") == 1, output.text  # the API was never restarted

    # `safelight dev` stopped mid-generation and started again: the generation resumes, quietly.
    second = dev.create()
    dev.wait_status(second, {"RUNNING", *_TERMINAL}, output)
    output.proc.send_signal(signal.SIGINT)
    first_run = output.finish(timeout=60)
    assert output.proc.returncode == 0, first_run
    output = dev.start()
    assert dev.wait_status(second, _TERMINAL, output)["status"] == "SUCCEEDED", output.text
    output.proc.send_signal(signal.SIGINT)
    second_run = output.finish(timeout=60)
    assert output.proc.returncode == 0, second_run

    assert _problems(second_run) == [], second_run
    assert not [line for line in first_run.splitlines() if "Traceback" in line or "max retries" in line], first_run
    for run in (first_run, second_run):
        assert "POST /graphql" not in run  # no access log by default
    assert reaper.marked() == []
