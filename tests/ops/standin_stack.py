"""A supervisor over stand-in children, run as a script by test_devstack.py.

usage: standin_stack.py STATE_DIR MODE   (MODE: run | failing-step | dies-starting)

Writes STATE_DIR/pids.json (atomically) once every child is up, then supervises
until a signal, exactly as `safelight dev` does: restarting a child that dies.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from safelight.devstack import ChildSpec, DevLock, Supervisor, http_ok, write_atomically
from safelight.procs import free_port

PY = sys.executable


def main() -> int:
    state, mode = Path(sys.argv[1]), sys.argv[2]
    port = free_port()
    grandchild_file = state / "grandchild.pid"
    armed = state / "stubborn.armed"
    specs = [
        ChildSpec(
            "web",
            [PY, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(state)],
            ready=http_ok(f"http://127.0.0.1:{port}/"),
            ready_timeout=20,
        ),
        ChildSpec(
            "parent",
            [
                PY,
                "-c",
                "import os, subprocess, sys, time\n"
                "p = subprocess.Popen(['sleep', '600'])\n"
                f"open({str(grandchild_file) + '.tmp'!r}, 'w').write(str(p.pid))\n"
                f"os.replace({str(grandchild_file) + '.tmp'!r}, {str(grandchild_file)!r})\n"
                "time.sleep(600)\n",
            ],
            ready=grandchild_file.exists,
            ready_timeout=20,
        ),
        ChildSpec(
            "stubborn",
            [
                PY,
                "-c",
                "import signal, time\n"
                "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                f"open({str(armed)!r}, 'w').close()\n"
                "time.sleep(600)\n",
            ],
            ready=armed.exists,
            ready_timeout=20,
        ),
    ]
    if mode == "failing-step":
        specs.insert(1, ChildSpec("migrate", [PY, "-c", "raise SystemExit(4)"], once=True))
    elif mode == "dies-starting":
        specs.insert(1, ChildSpec("early", [PY, "-c", "raise SystemExit(3)"], ready=lambda: False, ready_timeout=20))

    with DevLock.acquire(state / "dev.lock"), Supervisor(stop_timeout=1.0) as supervisor:

        def ready() -> None:
            pids = {child.spec.name: child.proc.pid for child in supervisor.children}
            pids["grandchild"] = int(grandchild_file.read_text())
            pids["port"] = port
            write_atomically(state / "pids.json", json.dumps(pids))
            supervisor.say("READY")

        return supervisor.run(specs, on_ready=ready)


if __name__ == "__main__":
    raise SystemExit(main())
