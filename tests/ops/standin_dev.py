"""`safelight dev` with every child command replaced by a stand-in (run by test_devstack.py).

usage: standin_dev.py [safelight dev arguments...]
       standin_dev.py --child COMMAND [ARGS...]   (what the supervisor starts)

The stand-ins record the environment they were given in $SAFELIGHT_STATE_DIR,
`migrate` really connects to DATABASE_URL and REDIS_URL, and `api` answers
GET /healthz, so the real `run_dev` runs unchanged around them.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import sys
import time
from pathlib import Path

NAMES = ("DATABASE_URL", "REDIS_URL", "COMFYUI_URLS", "SAFELIGHT_DEV_MODE", "SAFELIGHT_DEV_TOKEN")


def _record(name: str) -> None:
    """Write `<name>-<pid>.json` atomically: the test reads these files while the stack runs."""
    state = Path(os.environ["SAFELIGHT_STATE_DIR"])
    env = {key: os.environ.get(key) for key in NAMES}
    tmp = state / f".{name}-{os.getpid()}.json.tmp"
    tmp.write_text(json.dumps({"argv": sys.argv[2:], "env": env}))
    os.replace(tmp, state / f"{name}-{os.getpid()}.json")


def _serve(port: int, host: str = "127.0.0.1") -> None:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    http.server.ThreadingHTTPServer((host, port), Handler).serve_forever()


async def _migrate() -> None:
    import asyncpg
    import redis.asyncio as redis

    conn = await asyncpg.connect(os.environ["DATABASE_URL"], timeout=10)
    await conn.execute("CREATE TABLE IF NOT EXISTS migrated (at timestamptz DEFAULT now())")
    await conn.execute("INSERT INTO migrated DEFAULT VALUES")
    await conn.close()
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    await client.incr("migrations")
    await client.aclose()


def child(command: str, args: list[str]) -> None:
    _record(command)
    if command == "migrate":
        asyncio.run(_migrate())
    elif command == "api":
        _serve(int(args[args.index("--port") + 1]), args[args.index("--host") + 1])
    elif command == "fake-comfy":
        _serve(int(args[args.index("--port") + 1]))
    elif command == "worker":
        time.sleep(3600)
    else:
        raise SystemExit(f"unexpected command {command}")


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3:])
        return 0
    from safelight import cli, devstack

    def standin(*argv: str) -> list[str]:
        return [sys.executable, __file__, "--child", *argv]

    devstack._safelight = standin  # type: ignore[assignment]
    return cli.main(["dev", *sys.argv[1:]])


if __name__ == "__main__":
    raise SystemExit(main())
