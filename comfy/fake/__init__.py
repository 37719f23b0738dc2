"""A small ComfyUI stand-in that speaks the real server's HTTP and websocket protocol.

It follows the traffic recorded from ComfyUI 0.12.1 in `../shared/comfy/recordings/`: the same endpoints,
JSON shapes, websocket message order and targeting, validation errors and history entries. Tests, the
local demo and the benchmarks run against it; `server.py` holds the public entry points.
"""
