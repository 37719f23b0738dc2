"""The soak runs end to end at tiny sizes with a fault injected, and meets its targets (0 stuck, 0 lost, 1 run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("fault", ["worker-kill", "pg-stop"])
def test_soak_quick_with_a_fault(fault: str, tmp_path: Path, database_url: str, redis_url: str) -> None:
    out = tmp_path / "soak.json"
    server_url = f"{database_url.rpartition('/')[0]}/postgres"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFELIGHT_")}
    env.update({"DATABASE_URL": server_url, "REDIS_URL": redis_url})
    result = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--quick", "--fault", fault, "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(out.read_text())
    (row,) = report["rows"]
    assert row["case"] == fault
    assert row["stuck_after_2min"] == 0
    assert row["lost_generationEvents"] == 0
    assert row["lost_myGenerationEvents"] == 0
    assert row["max_executions_per_prompt"] == 1
