"""`POST /prompt` 400 bodies of both dialects name the node (and the input) they are about.

The bodies are copied from the recordings (upstream ComfyUI 0.3.64 and the packaging build, recordings
11 and 14), tracebacks shortened: they are what a generation's structured error is made from.
"""

from __future__ import annotations

from typing import Any

import pytest

from comfy.errors import NodeError, PromptValidationError

UPSTREAM_UNKNOWN_CLASS: list[tuple[dict[str, Any], str, str]] = [
    (
        {
            "error": {
                "type": "invalid_prompt",
                "message": f"Cannot execute because node {cls} does not exist.",
                "details": f"Node ID '#{node}'",
                "extra_info": {},
            },
            "node_errors": {},
        },
        node,
        cls,
    )
    for node, cls in (("2", "NoSuchNodeXYZ"), ("1", "NoSuchNodeXYZ"), ("3", "NoSuchSaveNode"))
]
UPSTREAM_NO_CLASS = {
    "error": {
        "type": "invalid_prompt",
        "message": "Cannot execute because a node is missing the class_type property.",
        "details": "Node ID '#1'",
        "extra_info": {},
    },
    "node_errors": {},
}
PACKAGING_UNKNOWN_CLASS = {
    "error": {
        "type": "missing_node_type",
        "message": "Node 'NoSuchNodeXYZ' not found. The custom node may not be installed.",
        "details": "Node ID '#2'",
        "extra_info": {"node_id": "2", "class_type": "NoSuchNodeXYZ", "node_title": "NoSuchNodeXYZ"},
    },
    "node_errors": {},
}
PACKAGING_NO_CLASS = {
    "error": {
        "type": "missing_node_type",
        "message": "Node 'ID #1' has no class_type. The workflow may be corrupted or a custom node is missing.",
        "details": "Node ID '#1'",
        "extra_info": {"node_id": "1", "class_type": None, "node_title": None},
    },
    "node_errors": {},
}
_MISSING_WIDTH = {
    "1": {
        "errors": [
            {
                "type": "required_input_missing",
                "message": "Required input is missing",
                "details": "width",
                "extra_info": {"input_name": "width"},
            }
        ],
        "dependent_outputs": ["3"],
        "class_type": "EmptyImage",
    }
}
UPSTREAM_MISSING_INPUT = {
    "error": {
        "type": "prompt_outputs_failed_validation",
        "message": "Prompt outputs failed validation",
        "details": "",
        "extra_info": {},
    },
    "node_errors": _MISSING_WIDTH,
}
PACKAGING_MISSING_INPUT = {
    "error": {
        "type": "prompt_outputs_failed_validation",
        "message": "Prompt outputs failed validation",
        "details": "",
        "extra_info": {"exception_type": "ValidationError", "traceback": ["..."], "node_errors": _MISSING_WIDTH},
    },
    "node_errors": _MISSING_WIDTH,
}
UPSTREAM_LINK_MISMATCH = {
    "error": {
        "type": "prompt_outputs_failed_validation",
        "message": "Prompt outputs failed validation",
        "details": "",
        "extra_info": {},
    },
    "node_errors": {
        "2": {
            "errors": [
                {
                    "type": "return_type_mismatch",
                    "message": "Return type mismatch between linked nodes",
                    "details": "width, received_type(IMAGE) mismatch input_type(INT)",
                    "extra_info": {
                        "input_name": "width",
                        "input_config": ["INT", {"default": 512, "min": 1, "max": 16384, "step": 1}],
                        "received_type": "IMAGE",
                        "linked_node": ["1", 0],
                    },
                }
            ],
            "dependent_outputs": ["3"],
            "class_type": "EmptyImage",
        }
    },
}


@pytest.mark.parametrize(("body", "node", "cls"), UPSTREAM_UNKNOWN_CLASS)
def test_upstream_unknown_class_names_the_node_from_details(body: dict[str, Any], node: str, cls: str) -> None:
    error = PromptValidationError.from_response(body)
    assert error.error_type == "invalid_prompt"
    assert error.first == NodeError(
        node, cls, None, f"Cannot execute because node {cls} does not exist. (Node ID '#{node}')"
    )
    assert f"node {node} ({cls})" in str(error)


def test_packaging_unknown_class_names_the_node_from_extra_info() -> None:
    error = PromptValidationError.from_response(PACKAGING_UNKNOWN_CLASS)
    assert error.first is not None
    assert (error.first.node_id, error.first.class_type, error.first.input_name) == ("2", "NoSuchNodeXYZ", None)


@pytest.mark.parametrize("body", [UPSTREAM_NO_CLASS, PACKAGING_NO_CLASS], ids=["upstream", "packaging"])
def test_a_node_without_class_type_is_named_in_both_dialects(body: dict[str, Any]) -> None:
    error = PromptValidationError.from_response(body)
    assert error.first is not None
    assert (error.first.node_id, error.first.class_type) == ("1", None)


@pytest.mark.parametrize("body", [UPSTREAM_MISSING_INPUT, PACKAGING_MISSING_INPUT], ids=["upstream", "packaging"])
def test_node_errors_give_the_input_as_well_as_the_node(body: dict[str, Any]) -> None:
    error = PromptValidationError.from_response(body)
    assert error.node_errors == [NodeError("1", "EmptyImage", "width", "Required input is missing: width")]
    assert "node 1 (EmptyImage) input width" in str(error)


def test_upstream_link_mismatch_names_the_input() -> None:
    error = PromptValidationError.from_response(UPSTREAM_LINK_MISMATCH)
    assert error.first is not None
    assert (error.first.node_id, error.first.input_name) == ("2", "width")
    assert "received_type(IMAGE)" in error.first.reason


def test_packaging_node_errors_only_in_extra_info_are_read() -> None:
    body = {**PACKAGING_MISSING_INPUT, "node_errors": {}}
    assert PromptValidationError.from_response(body).first == NodeError(
        "1", "EmptyImage", "width", "Required input is missing: width"
    )


@pytest.mark.parametrize(
    "details", ["", "Node ID '#'", "node 2", "Node ID '#" + "9" * 300 + "'"], ids=["empty", "no-id", "prose", "long"]
)
def test_details_that_name_no_node_name_none(details: str) -> None:
    body = {"error": {"type": "invalid_prompt", "message": "odd", "details": details, "extra_info": {}}}
    assert PromptValidationError.from_response(body).node_errors == []


def test_node_label_leaves_out_what_is_unknown() -> None:
    assert NodeError("2", "KSampler", None, "x").node_label == "2 (KSampler)"
    assert NodeError("1", None, None, "x").node_label == "1"
    assert NodeError(None, None, None, "x").node_label is None
