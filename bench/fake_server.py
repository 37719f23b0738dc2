"""`python -m bench.fake_server --port P`: the fake ComfyUI as the benchmarks run it.

Like `safelight fake-comfy` (the fake served by `comfy.fake.asgi`, which logs no line per request),
with messages stamped (`stamp_messages`) and previews off from the start.
"""

from __future__ import annotations

import argparse

from comfy.fake import asgi
from comfy.fake.server import FakeConfig, create_app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--step-time", type=float, default=0.0)
    args = parser.parse_args()
    config = FakeConfig(step_time=args.step_time, preview=False, stamp_messages=True)
    asgi.run(create_app(config), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
