"""This directory holds recorded data, not tests: `test_nodes.py` is the custom-node file ComfyUI ran while
recording (it imports ComfyUI's own modules), kept verbatim."""

collect_ignore = ["test_nodes.py"]
