"""The `safelight` command: one entry point for every process of the stack.

Each subcommand imports what it runs only when chosen, so `safelight config`
stays fast and nothing is built at import time.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from collections.abc import Sequence

from settings import ConfigError, load_settings

__all__ = ["main"]


def _add_server_args(parser: argparse.ArgumentParser, *, default_port: int | None) -> None:
    parser.add_argument("--host", default=None, help="interface to bind (default from settings / 127.0.0.1)")
    parser.add_argument("--port", type=int, default=default_port, help="TCP port to listen on")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="safelight", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="run the whole stack on embedded defaults")
    _add_server_args(dev, default_port=None)
    dev.add_argument("--workers", type=int, default=1, help="worker processes to start")
    dev.add_argument("--fake-comfy-port", type=int, default=8189, help="fake ComfyUI port (when COMFYUI_URLS is unset)")
    dev.add_argument(
        "--postgres-port",
        type=int,
        default=54329,
        help="embedded PostgreSQL port (when DATABASE_URL is unset)",
    )
    dev.add_argument("--redis-port", type=int, default=63799, help="embedded Redis port (when REDIS_URL is unset)")

    api = sub.add_parser("api", help="run the GraphQL API (uvicorn)")
    _add_server_args(api, default_port=None)

    worker = sub.add_parser("worker", help="run an arq worker")
    _add_server_args(worker, default_port=None)  # accepted for symmetry; the worker serves no HTTP
    worker.add_argument("--burst", action="store_true", help="exit once the queue is empty")

    fake = sub.add_parser("fake-comfy", help="run the fake ComfyUI server")
    _add_server_args(fake, default_port=8189)
    fake.add_argument("--step-time", type=float, default=None, help="seconds per sampler step")
    fake.add_argument("--no-preview", action="store_true", help="never send preview frames")
    fake.add_argument(
        "--dialect",
        choices=("upstream", "packaging"),
        default="upstream",
        help="behave as upstream ComfyUI 0.3.64 (default) or as the 0.12.1 packaging (see tests/recordings)",
    )

    sub.add_parser("migrate", help="apply database migrations (alembic upgrade head)")

    export = sub.add_parser("export-schema", help="print or write the GraphQL SDL")
    export.add_argument("--output", "-o", default=None, help="file to write (default: stdout)")

    sub.add_parser("config", help="print the effective settings, secrets redacted")

    token = sub.add_parser("create-token", help="create a user (if needed) and print a new API token")
    token.add_argument("name", help="user name")
    token.add_argument("--admin", action="store_true")
    token.add_argument("--expires-in", default=None, help="lifetime, e.g. 3600s, 90m, 12h, 30d (default: none)")

    revoke = sub.add_parser("revoke-token", help="revoke a token (read from stdin) or every token of a user")
    revoke.add_argument("--user", default=None, help="revoke every token of this user instead")

    template = sub.add_parser("template", help="add or list templates (live in every API at once)")
    template_sub = template.add_subparsers(dest="template_command", required=True)
    add = template_sub.add_parser("add", help="save a ComfyUI workflow (API or UI format) as a template")
    add.add_argument("file", help="the workflow JSON")
    add.add_argument("--name", default=None, help="template name (default: the file name without .json)")
    add.add_argument("--params", default=None, help="parameter declarations (*.params.json); default: proposed")
    add.add_argument("--title", default=None)
    add.add_argument("--description", default=None)
    template_sub.add_parser("list", help="the current version of every template")
    return parser


# Allocations between young collections; CPython's default is 700. See _freeze_startup_heap.
_GC_YOUNG_THRESHOLD = 50_000


def _freeze_startup_heap() -> None:
    """Keep the cyclic GC off the hot path of a long-lived server process.

    - What startup built (modules, classes, the schema: as long-lived as the process) moves out of the
      GC's reach: otherwise every full collection walks it again, a large share of the CPU of a process
      sending events to thousands of subscribers (bench/subscriptions.py measures it).
    - Young collections run every 50,000 allocations instead of 700. Every delivery to a subscriber
      allocates a few short-lived objects; a collection that finds them still alive promotes them, and
      once promotions reach a quarter of the old generation CPython walks all of it: with many idle
      subscriptions that full collection stalls the event loop for more than a second, again and again.
      The price: cyclic garbage waits for up to 50,000 allocations.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(_GC_YOUNG_THRESHOLD, older, oldest)


def _run(args: argparse.Namespace) -> int:
    settings = load_settings()
    if args.command == "config":
        print(json.dumps(settings.redacted(), indent=2, default=str))
        return 0
    if args.command == "dev":
        from safelight.devstack import run_dev

        return run_dev(settings, args)
    if args.command == "api":
        from graph.serve import serve_api

        serve_api(settings, host=args.host, port=args.port, before_serving=_freeze_startup_heap)
        return 0
    if args.command == "worker":
        from jobs.worker.app import run_worker

        _freeze_startup_heap()
        run_worker(settings, burst=args.burst)
        return 0
    if args.command == "fake-comfy":
        from comfy.fake.server import serve_fake

        serve_fake(
            host=args.host or "127.0.0.1",
            port=args.port,
            step_time=args.step_time,
            preview=not args.no_preview,
            dialect=args.dialect,
        )
        return 0
    if args.command == "migrate":
        from db.migrate import upgrade

        upgrade(settings)
        return 0
    if args.command == "export-schema":
        from graph.schema import schema_sdl

        sdl = schema_sdl()
        if args.output:
            with open(args.output, "w", encoding="utf-8") as fh:
                fh.write(sdl)
        else:
            sys.stdout.write(sdl)
        return 0
    if args.command == "create-token":
        from safelight.tokens import create_user_token

        print(create_user_token(settings, name=args.name, admin=args.admin, expires_in=args.expires_in))
        return 0
    if args.command == "revoke-token":
        from safelight.tokens import revoke

        token = None if args.user else sys.stdin.readline().strip()
        count = revoke(settings, token=token, user_name=args.user)
        print(f"revoked {count} token(s)")
        return 0 if count else 1
    if args.command == "template":
        from pathlib import Path

        from safelight.template_admin import add_template, list_templates

        if args.template_command == "list":
            print("\n".join(list_templates(settings)))
            return 0
        code, lines = add_template(
            settings,
            path=Path(args.file),
            name=args.name,
            params_path=None if args.params is None else Path(args.params),
            title=args.title,
            description=args.description,
        )
        print("\n".join(lines), file=sys.stdout if code == 0 else sys.stderr)
        return code
    raise AssertionError(f"unhandled command {args.command}")


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        return _run(args)
    except ConfigError as exc:
        print(f"safelight: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
