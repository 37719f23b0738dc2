"""ComfyUI editor saves ("UI format") converted to the API format `POST /prompt` takes.

The editor saves a graph: `nodes` (each with `id`, `type`, `mode`, `inputs` — sockets, each
`{name, type, link, widget?}` —, `outputs` and `widgets_values`) and `links`
(`[id, from_node, from_slot, to_node, to_slot, type]`, or objects with `origin_id`...). Widget
values are positional: they follow the node class's widget inputs in `/object_info` order
(`input_order` when present, else required then optional), which is why converting needs the
backend's `/object_info`. What the editor itself does when it queues a prompt is mirrored here:

- a seed-like INT (declaring `control_after_generate`, or named `seed`/`noise_seed` as older
  editors assumed) is followed by its "control after generate" value, and an upload input
  (`image_upload`, ...) by its upload button's value; neither is sent;
- muted nodes (mode 2) are dropped with every input linked to them; a bypassed node (mode 4) is
  dropped and its consumers take its input of the same type instead (the same slot first);
- frontend-only nodes: a Reroute passes its input through, a PrimitiveNode's value is written
  into the inputs it feeds, Note/MarkdownNote are dropped;
- widget values that are lists are wrapped as `{"__value__": [...]}` (a bare list is a link).

Group nodes and subgraphs are refused (the editor expands them with its own definitions).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["MAX_LINKS", "MAX_NODES", "UiWorkflowError", "is_ui_workflow", "to_api_workflow"]

MAX_NODES: Final = 2000
MAX_LINKS: Final = 10_000

MUTED: Final = 2
BYPASSED: Final = 4
_WIDGET_TYPES: Final = frozenset({"INT", "FLOAT", "BOOLEAN", "STRING", "COMBO"})
_NOTES: Final = frozenset({"Note", "MarkdownNote"})
_UPLOAD_FLAGS: Final = ("image_upload", "video_upload", "audio_upload", "animated_image_upload")
_CONTROL_VALUES: Final = frozenset({"fixed", "increment", "decrement", "randomize", "increment-wrap"})
_OLD_SEED_NAMES: Final = frozenset({"seed", "noise_seed"})
_MAX_HOPS: Final = 256  # reroutes and bypassed nodes followed from one input
_MAX_WORK: Final = 200_000  # hops and sockets looked at for all links: about 0.2 s; real saves need far fewer


class UiWorkflowError(ValueError):
    """The UI-format workflow cannot be converted; the message names the node (`node #7 (KSampler)`)."""

    def __init__(self, message: str, *, node_id: str | None = None) -> None:
        super().__init__(message)
        self.node_id = node_id


def is_ui_workflow(doc: Any) -> bool:
    """Whether `doc` is an editor save (a `nodes` list) rather than an API-format workflow."""
    return isinstance(doc, Mapping) and isinstance(doc.get("nodes"), list) and isinstance(doc.get("links", []), list)


@dataclass(frozen=True, slots=True)
class _Link:
    origin: str
    slot: int


@dataclass(frozen=True, slots=True)
class _Slot:
    """One place in `widgets_values`: a widget input's value (`name`), or an editor-only value that
    older saves may lack (`extra`: "control" after a seed, "upload" after the required widgets)."""

    name: str | None
    extra: str | None = None
    optional: bool = False  # an optional input's widget: a save from before it existed lacks it
    default: Any = None  # the editor's value for it when the save has none


def to_api_workflow(
    doc: Mapping[str, Any],
    object_info: Mapping[str, Any],
    *,
    max_nodes: int = MAX_NODES,
    max_links: int = MAX_LINKS,
) -> dict[str, Any]:
    """The API-format workflow (`{id: {"class_type", "inputs", "_meta": {"title"}}}`) of an editor save.

    `object_info` is the backend's raw `/object_info` (`class -> {"input": {"required", "optional"},
    "input_order"?}`). Raises UiWorkflowError for a class the backend does not offer, a group node or
    subgraph, widget values that do not fit the class's widgets, a link from a node that does not
    exist, or a graph over `max_nodes` nodes or `max_links` links.
    """
    if not is_ui_workflow(doc):
        raise UiWorkflowError("not a UI-format workflow (expected an object with a list of nodes)")
    raw_nodes: list[Any] = doc["nodes"]
    raw_links: list[Any] = doc.get("links") or []
    if len(raw_nodes) > max_nodes:
        raise UiWorkflowError(f"the workflow has {len(raw_nodes)} nodes; at most {max_nodes} are accepted")
    if len(raw_links) > max_links:
        raise UiWorkflowError(f"the workflow has {len(raw_links)} links; at most {max_links} are accepted")
    nodes = _index_nodes(raw_nodes)
    links = _index_links(raw_links)
    subgraphs = _subgraph_ids(doc)
    group_nodes = doc.get("extra", {}).get("groupNodes") if isinstance(doc.get("extra"), Mapping) else None

    resolver = _Resolver(nodes, links)
    workflow: dict[str, Any] = {}
    for node_id, node in nodes.items():
        kind = node["type"]
        where = _where(node_id, node)
        if kind in subgraphs:
            raise UiWorkflowError(
                f"{where} is a subgraph, which is not supported: unpack it in the editor and save again",
                node_id=node_id,
            )
        if kind.startswith(("workflow>", "workflow/")) or (isinstance(group_nodes, Mapping) and kind in group_nodes):
            raise UiWorkflowError(
                f"{where} is a group node, which is not supported: convert it to nodes in the editor and save again",
                node_id=node_id,
            )
        if kind in _NOTES or kind in ("Reroute", "PrimitiveNode") or node.get("mode") in (MUTED, BYPASSED):
            continue
        spec = object_info.get(kind)
        if not isinstance(spec, Mapping):
            raise UiWorkflowError(f"{where}: the backends offer no node class {kind!r}", node_id=node_id)
        inputs = _widget_inputs(node_id, node, spec)
        sockets = node.get("inputs") or []
        if not isinstance(sockets, list):
            raise UiWorkflowError(f"{where}: inputs is not a list", node_id=node_id)
        for index, slot in enumerate(sockets):
            if not isinstance(slot, Mapping):
                raise UiWorkflowError(f"{where}: input {index} is not an object", node_id=node_id)
            name = _input_name(slot)
            link_id = slot.get("link")
            if link_id is None or name is None:
                continue
            resolved = resolver.resolve(node_id, name, link_id, slot.get("type"))
            if resolved is None:
                continue
            if isinstance(resolved, _Dropped):
                inputs.pop(name, None)
            elif isinstance(resolved, _Link):
                inputs[name] = [resolved.origin, resolved.slot]
            else:
                inputs[name] = _value(resolved.value)
        title = node.get("title") or spec.get("display_name") or kind
        workflow[node_id] = {"class_type": kind, "inputs": inputs, "_meta": {"title": str(title)}}

    for node in workflow.values():  # links to nodes that are not sent (muted, virtual, dropped)
        for name, value in list(node["inputs"].items()):
            if isinstance(value, list) and len(value) == 2 and value[0] not in workflow:
                del node["inputs"][name]
    return workflow


# -- reading the graph ---------------------------------------------------------------------------


def _where(node_id: str, node: Mapping[str, Any]) -> str:
    kind = node.get("type")
    return f"node #{node_id} ({kind})" if isinstance(kind, str) else f"node #{node_id}"


def _index_nodes(raw: Sequence[Any]) -> dict[str, Mapping[str, Any]]:
    nodes: dict[str, Mapping[str, Any]] = {}
    for index, node in enumerate(raw):
        if not isinstance(node, Mapping) or not isinstance(node.get("id"), int | str) or isinstance(node["id"], bool):
            raise UiWorkflowError(f"nodes[{index}] is not a node with an id")
        node_id = str(node["id"])
        if not isinstance(node.get("type"), str) or not node["type"]:
            raise UiWorkflowError(f"node #{node_id} has no type", node_id=node_id)
        if node_id in nodes:
            raise UiWorkflowError(f"node id {node_id} is used twice", node_id=node_id)
        nodes[node_id] = node
    return nodes


def _index_links(raw: Sequence[Any]) -> dict[str, _Link]:
    links: dict[str, _Link] = {}
    for index, link in enumerate(raw):
        if isinstance(link, list | tuple) and len(link) >= 5:
            link_id, origin, slot = link[0], link[1], link[2]
        elif isinstance(link, Mapping):
            link_id, origin, slot = link.get("id"), link.get("origin_id"), link.get("origin_slot")
        else:
            raise UiWorkflowError(f"links[{index}] is not a link")
        if link_id is None or origin is None or type(slot) is not int:
            raise UiWorkflowError(f"links[{index}] is not a link (id, origin node, origin slot)")
        links[str(link_id)] = _Link(str(origin), slot)
    return links


def _subgraph_ids(doc: Mapping[str, Any]) -> frozenset[str]:
    definitions = doc.get("definitions")
    if not isinstance(definitions, Mapping) or not isinstance(definitions.get("subgraphs"), list):
        return frozenset()
    return frozenset(str(s["id"]) for s in definitions["subgraphs"] if isinstance(s, Mapping) and "id" in s)


def _input_name(slot: Mapping[str, Any]) -> str | None:
    """The API input a socket fills: its widget's name for a widget turned input, else its own."""
    widget = slot.get("widget")
    if isinstance(widget, Mapping) and isinstance(widget.get("name"), str):
        return str(widget["name"])
    name = slot.get("name")
    return name if isinstance(name, str) and name else None


# -- widgets -------------------------------------------------------------------------------------


def _slots(spec: Mapping[str, Any]) -> list[_Slot]:
    """The places of the class's `widgets_values` in the editor's order.

    The editor adds an upload button as one more required input after the others (so its value
    follows the last required widget), and a "control after generate" value right after its seed.
    """
    declared = spec.get("input")
    declared = declared if isinstance(declared, Mapping) else {}
    order = spec.get("input_order")
    slots: list[_Slot] = []
    for section in ("required", "optional"):
        group = declared.get(section)
        if not isinstance(group, Mapping):
            continue
        names = order.get(section) if isinstance(order, Mapping) else None
        names = [n for n in names if n in group] if isinstance(names, list) else list(group)
        upload = False
        for name in names:
            kind, options = _kind(group[name])
            if kind not in _WIDGET_TYPES or options.get("forceInput"):
                continue
            slots.append(_Slot(str(name), None, section == "optional", _default(kind, group[name], options)))
            if options.get("control_after_generate") or (kind == "INT" and name in _OLD_SEED_NAMES):
                slots.append(_Slot(None, "control"))
            upload = upload or any(options.get(flag) for flag in _UPLOAD_FLAGS)
        if upload and section == "required":
            slots.append(_Slot(None, "upload"))
    return slots


def _kind(entry: Any) -> tuple[Any, Mapping[str, Any]]:
    if not isinstance(entry, list | tuple) or not entry:
        return None, {}
    head = entry[0]
    options = entry[1] if len(entry) > 1 and isinstance(entry[1], Mapping) else {}
    return ("COMBO" if isinstance(head, list | tuple) else head), options


def _default(kind: Any, entry: Any, options: Mapping[str, Any]) -> Any:
    """The value a new widget starts with in the editor: its declared default, else the first choice,
    the minimum, an empty string or false."""
    if "default" in options:
        return options["default"]
    if kind == "COMBO":
        choices = entry[0] if isinstance(entry[0], list | tuple) else options.get("options")
        return choices[0] if isinstance(choices, list | tuple) and choices else None
    if kind in ("INT", "FLOAT"):
        low = options.get("min")
        return low if isinstance(low, int | float) and not isinstance(low, bool) and low > 0 else 0
    return {"STRING": "", "BOOLEAN": False}.get(kind)


def _looks_extra(slot: _Slot, value: Any) -> bool:
    if slot.extra == "control":
        return (isinstance(value, str) and value in _CONTROL_VALUES) or isinstance(value, bool)
    return value is None or (isinstance(value, str) and value in ("image", "video", "audio", "animated_image", ""))


def _align(slots: list[_Slot], values: list[Any]) -> list[_Slot] | None:
    """The slots `values` fill, for a save whose count differs from the class's (editor versions
    differ): a control or upload value is taken where the value looks like one and enough values
    remain for the required widgets after it; optional widgets at the end may be missing (a save
    from before they existed). None when the values cannot be placed so."""
    used: list[_Slot] = []
    position = 0
    for index, slot in enumerate(slots):
        if position >= len(values):
            break
        if slot.name is None:
            needed = sum(1 for later in slots[index + 1 :] if later.name is not None and not later.optional)
            if len(values) - position <= needed or not _looks_extra(slot, values[position]):
                continue
        used.append(slot)
        position += 1
    taken = {slot.name for slot in used}
    complete = all(slot.optional for slot in slots if slot.name is not None and slot.name not in taken)
    return used if position == len(values) and complete else None


def _widget_inputs(node_id: str, node: Mapping[str, Any], spec: Mapping[str, Any]) -> dict[str, Any]:
    values = node.get("widgets_values")
    slots = _slots(spec)
    names = [slot.name for slot in slots if slot.name is not None]
    if values is None:  # saved before the node had widgets, or by hand: the editor's defaults
        return {slot.name: _value(slot.default) for slot in slots if slot.name is not None}
    if isinstance(values, Mapping):  # some custom nodes save {widget name: value}
        return {name: _value(values[name]) for name in names if name in values}
    if not isinstance(values, list):
        raise UiWorkflowError(f"{_where(node_id, node)}: widgets_values is not a list", node_id=node_id)
    used = slots if len(values) == len(slots) else _align(slots, values)
    if used is None and len(values) == len(names):
        used = [slot for slot in slots if slot.name is not None]
    if used is None:
        extras = len(slots) - len(names)
        raise UiWorkflowError(
            f"{_where(node_id, node)} has {len(values)} widget values but the backend's class has "
            f"{len(names)} widgets ({', '.join(names) or 'none'}) and {extras} control/upload values: "
            "was it saved with another version of this node?",
            node_id=node_id,
        )
    given = {slot.name for slot in used}
    missing = [slot for slot in slots if slot.name is not None and slot.name not in given]
    inputs = {slot.name: _value(value) for slot, value in zip(used, values, strict=True) if slot.name is not None}
    inputs.update((slot.name, _value(slot.default)) for slot in missing if slot.name is not None)
    return inputs


def _value(value: Any) -> Any:
    return {"__value__": value} if isinstance(value, list) else value


# -- links ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Constant:
    value: Any


@dataclass(frozen=True, slots=True)
class _Dropped:
    """The link comes from a muted node: the input goes, widget value and all (as in the editor)."""


_DROPPED: Final = _Dropped()


class _Resolver:
    """Follows a link through Reroutes and bypassed nodes to a real node's output or a constant,
    the way the editor's ExecutableNodeDTO.resolveOutput does."""

    def __init__(self, nodes: Mapping[str, Mapping[str, Any]], links: Mapping[str, _Link]) -> None:
        self._nodes = nodes
        self._links = links
        self._work = 0  # hops and sockets looked at, over the whole conversion (_MAX_WORK)

    def resolve(
        self, node_id: str, input_name: str, link_id: Any, input_type: Any
    ) -> _Link | _Constant | _Dropped | None:
        """None when nothing can be resolved (a link the save does not list, a bypassed node or a
        Reroute with nothing to pass on): the input keeps its widget value, if it has one."""
        link = self._links.get(str(link_id))
        for _ in range(_MAX_HOPS):
            self._work += 1
            if self._work > _MAX_WORK:
                raise UiWorkflowError(f"the workflow's links take more than {_MAX_WORK} steps to follow")
            if link is None:
                return None
            origin = self._nodes.get(link.origin)
            if origin is None:
                raise UiWorkflowError(
                    f"{_where(node_id, self._nodes[node_id])}: input {input_name!r} is linked to node "
                    f"#{link.origin}, which does not exist",
                    node_id=node_id,
                )
            kind = origin.get("type")
            if kind == "PrimitiveNode":
                values = origin.get("widgets_values")
                return _Constant(values[0]) if isinstance(values, list) and values else None
            if origin.get("mode") == MUTED:
                return _DROPPED
            if kind in _NOTES:
                return None
            if kind != "Reroute" and origin.get("mode") != BYPASSED:
                return link
            link = self._through(origin, link.slot, input_type)
        raise UiWorkflowError(
            f"{_where(node_id, self._nodes[node_id])}: input {input_name!r} goes through more than "
            f"{_MAX_HOPS} reroutes or bypassed nodes (a loop?)",
            node_id=node_id,
        )

    def _through(self, node: Mapping[str, Any], slot: int, wanted: Any) -> _Link | None:
        """The link a Reroute (its input of the same slot) or a bypassed node passes on from output
        `slot` to an input of type `wanted`: the same slot's input when its type fits the output's
        and `wanted`, else the first input of exactly `wanted`, else the first that fits both."""
        inputs = [i if isinstance(i, Mapping) else {} for i in _as_list(node.get("inputs"))]
        self._work += len(inputs)
        chosen: Mapping[str, Any] | None = None
        if node.get("type") == "Reroute" or wanted in ("*", "", None):
            chosen = inputs[slot] if slot < len(inputs) else (inputs[0] if inputs else None)
        else:
            outputs = _as_list(node.get("outputs"))
            output = outputs[slot] if 0 <= slot < len(outputs) and isinstance(outputs[slot], Mapping) else {}
            produced = output.get("type")
            fitting = [i for i in inputs if _fits(i.get("type"), produced) and _fits(i.get("type"), wanted)]
            if slot < len(inputs) and any(inputs[slot] is i for i in fitting):
                chosen = inputs[slot]
            else:
                exact = [i for i in inputs if i.get("type") == wanted]
                chosen = exact[0] if exact else (fitting[0] if fitting else None)
        if chosen is None or chosen.get("link") is None:
            return None
        return self._links.get(str(chosen["link"]))


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _fits(have: Any, wanted: Any) -> bool:
    """LiteGraph's isValidConnection: equal, a wildcard on either side, or comma lists that share a type."""
    if have in ("*", "", 0, None) or wanted in ("*", "", 0, None) or have == wanted:
        return True
    first, second = str(have).lower().split(","), str(wanted).lower().split(",")
    return any(t in second for t in first)
