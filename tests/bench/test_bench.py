"""Smoke tests: every benchmark runs end to end at tiny sizes (`--quick`) and writes its JSON.

They check that the commands work on a fresh checkout, not the figures: timing goals live in the
benchmarks themselves (SPEC §9).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("bench", ["relay", "submit", "throughput", "idle_gap", "subscriptions", "floor"])
def test_bench_runs_quick_and_writes_json(bench: str, tmp_path: Path, database_url: str, redis_url: str) -> None:
    out = tmp_path / f"{bench}.json"
    server_url = f"{database_url.rpartition('/')[0]}/postgres"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFELIGHT_")}
    env.update({"DATABASE_URL": server_url, "REDIS_URL": redis_url})
    result = subprocess.run(
        [sys.executable, "-m", f"bench.{bench}", "--quick", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["bench"] == bench
    assert report["rows"], "no figures"
    assert all(row.get("n", 1) > 0 for row in report["rows"]), report["rows"]
    assert report["checks"], "no target compared"
    assert f"== {bench} ==" in result.stdout
