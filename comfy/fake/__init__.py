"""A small ComfyUI stand-in that speaks the real server's HTTP and websocket protocol.

It follows the traffic recorded from ComfyUI 0.12.1 in `../shared/comfy/recordings/`: the same endpoints,
JSON shapes, websocket message order and targeting, validation errors and history entries. Tests, the
local demo and the benchmarks run against it; `server.py` holds the public entry points.

Beyond the recordings it answers ComfyUI 0.3.64's upload API (`uploads.py`, files kept by `inputs.py`), runs the
nodes that read uploads and write animations, text and audio (`media_nodes.py`, bytes from `media.py`), and
embeds the prompt in its PNGs as SaveImage does; those follow upstream's source, no recording having them.
"""
