"""The Makefile: `make dev` takes ports, and the frontend is built again only when its inputs changed.

Run on a copy of the Makefile beside a small frontend, with a stand-in `npm` that logs its calls.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FAKE_NPM = """#!/bin/sh
echo "$*" >> "$NPM_LOG"
case "$1" in
  ci|install) mkdir -p node_modules ;;
  run) rm -rf dist && mkdir dist && echo built > dist/index.html ;;  # vite empties dist first
esac
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (tmp_path / "schema.graphql").write_text("type Query { a: Int }\n")
    frontend = tmp_path / "frontend"
    (frontend / "src" / "gql").mkdir(parents=True)
    (frontend / "src" / "main.tsx").write_text("export {};\n")
    (frontend / "src" / "gql" / "graphql.ts").write_text("// generated\n")
    for name in ("package.json", "package-lock.json", "index.html", "vite.config.ts"):
        (frontend / name).write_text(f"{name}\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text(FAKE_NPM)
    npm.chmod(npm.stat().st_mode | stat.S_IXUSR)
    return tmp_path


def _make(project: Path, *args: str) -> list[str]:
    """Run make; return the npm commands it ran."""
    log = project / "npm.log"
    log.unlink(missing_ok=True)
    env = {**os.environ, "PATH": f"{project / 'bin'}:{os.environ['PATH']}", "NPM_LOG": str(log)}
    subprocess.run(["make", "-s", *args], cwd=project, env=env, check=True, capture_output=True, timeout=60)
    return log.read_text().splitlines() if log.exists() else []


def test_frontend_is_built_again_only_when_its_inputs_change(project: Path) -> None:
    frontend = project / "frontend"
    assert _make(project, "frontend-build") == ["ci --engine-strict", "run build"]  # a package unfit for our Node fails
    assert _make(project, "frontend-build") == []

    (frontend / "src" / "gql" / "graphql.ts").write_text("// generated again by codegen\n")
    (frontend / "src" / "main.tsx").touch()
    assert _make(project, "frontend-build") == []  # codegen output and mtimes are not inputs

    (frontend / "src" / "main.tsx").write_text("export const changed = 1;\n")
    assert _make(project, "frontend-build") == ["run build"]
    (project / "schema.graphql").write_text("type Query { b: Int }\n")
    assert _make(project, "frontend-build") == ["run build"]
    (frontend / "src" / "new.ts").write_text("export {};\n")
    assert _make(project, "frontend-build") == ["run build"]

    (frontend / "package.json").write_text("changed\n")
    assert _make(project, "frontend-build") == ["ci --engine-strict", "run build"]
    assert _make(project, "frontend-build") == []

    shutil.rmtree(frontend / "dist")
    assert _make(project, "frontend-build") == ["run build"]


def test_make_dev_passes_port_and_dev_args(project: Path) -> None:
    def dev_command(*args: str) -> str:
        out = subprocess.run(
            ["make", "-n", "dev", *args], cwd=project, check=True, capture_output=True, text=True, timeout=60
        ).stdout
        return next(line for line in out.splitlines() if "safelight dev" in line).split("safelight ", 1)[1].strip()

    assert dev_command() == "dev"
    assert dev_command("PORT=8001") == "dev --port 8001"
    assert dev_command("PORT=8001", "DEV_ARGS=--fake-comfy-port 8190 --workers 2") == (
        "dev --port 8001 --fake-comfy-port 8190 --workers 2"
    )
