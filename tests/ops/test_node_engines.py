"""Every npm package the frontend installs supports the Node versions the project declares.

`npm ci` warns (EBADENGINE) when a package's `engines.node` excludes the running Node; this test
holds the lock file to the lowest Node of each range `frontend/package.json` declares, whatever Node
runs the tests, so a dependency update that drops Node 20 fails here instead of warning.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"

Version = tuple[int, int, int]
_PARTIAL = re.compile(r"^v?(\d+|[xX*])(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?(?:[-+].*)?$")
_OPERATOR_SPACE = re.compile(r"(>=|<=|>|<|=|~|\^)\s+")


def _partial(text: str) -> list[int]:
    """The numeric parts of a (possibly partial) version: "20.19" -> [20, 19]; "*" -> []."""
    match = _PARTIAL.match(text)
    if match is None:
        raise ValueError(f"not a version: {text!r}")
    parts = []
    for group in match.groups():
        if group is None or not group.isdigit():
            break
        parts.append(int(group))
    return parts


def _bump(parts: list[int]) -> Version:
    """The first version above every version the partial names: [20] -> 21.0.0, [20, 19] -> 20.20.0."""
    return _full([*parts[:-1], parts[-1] + 1])


def _full(parts: list[int]) -> Version:
    padded = [*parts, 0, 0, 0]
    return padded[0], padded[1], padded[2]


def _bounds(comparator: str) -> tuple[Version | None, Version | None, bool]:
    """(lowest allowed, first excluded or the highest allowed, whether that upper bound is inclusive)."""
    match = re.match(r"^(>=|<=|>|<|=|~|\^)?(.*)$", comparator)
    assert match is not None
    op, parts = match.group(1) or "", _partial(match.group(2))
    if not parts:
        return None, None, False
    if op in ("", "="):
        return _full(parts), (_full(parts) if len(parts) == 3 else _bump(parts)), len(parts) == 3
    if op == ">=":
        return _full(parts), None, False
    if op == ">":
        return (_bump(parts) if len(parts) < 3 else (parts[0], parts[1], parts[2] + 1)), None, False
    if op == "<":
        return None, _full(parts), False
    if op == "<=":
        return (None, _full(parts), True) if len(parts) == 3 else (None, _bump(parts), False)
    if op == "~":
        return _full(parts), _bump(parts[:2] if len(parts) > 1 else parts), False
    # "^": the leftmost non-zero part may not change.
    significant = next((i for i, part in enumerate(parts) if part != 0), len(parts) - 1)
    return _full(parts), _bump(parts[: significant + 1]), False


def satisfies(version: Version, node_range: str) -> bool:
    """Whether `version` is in an npm semver range (the grammar `engines` fields use)."""
    for alternative in node_range.split("||"):
        alternative = _OPERATOR_SPACE.sub(r"\1", alternative.strip())
        if " - " in alternative:
            low, high = (part.strip() for part in alternative.split(" - ", 1))
            comparators = [
                f">={low}",
                f"<={high}" if len(_partial(high)) == 3 else f"<{'.'.join(map(str, _bump(_partial(high))))}",
            ]
        else:
            comparators = alternative.split() or ["*"]
        ok = True
        for comparator in comparators:
            low_bound, high_bound, inclusive = _bounds(comparator)
            if low_bound is not None and version < low_bound:
                ok = False
            if high_bound is not None and (version > high_bound if inclusive else version >= high_bound):
                ok = False
        if ok:
            return True
    return False


def lowest_versions(node_range: str) -> list[Version]:
    """The lowest version of each alternative of a range: "^20.19.0 || >=22.12.0" -> 20.19.0, 22.12.0."""
    lows = []
    for alternative in node_range.split("||"):
        alternative = _OPERATOR_SPACE.sub(r"\1", alternative.strip())
        bounds = [_bounds(c)[0] for c in alternative.replace(" - ", " >=", 1).split()[:1] or ["*"]]
        lows.append(bounds[0] or (0, 0, 0))
    return lows


@pytest.mark.parametrize(
    ("version", "node_range", "expected"),
    [
        ((20, 19, 0), ">=22.15.0", False),  # what @whatwg-node/promise-helpers 2 asked for
        ((20, 19, 0), ">=22.12.0", False),
        ((20, 19, 0), "^20.19.0 || >=22.12.0", True),
        ((20, 18, 9), "^20.19.0 || >=22.12.0", False),
        ((21, 0, 0), "^20.19.0 || >=22.12.0", False),
        ((22, 12, 0), "^20.19.0 || >=22.12.0", True),
        ((20, 19, 0), "18 || 20 || >=22", True),
        ((19, 0, 0), "18 || 20 || >=22", False),
        ((20, 19, 0), "^12.22.0 || ^14.17.0 || >=16.0.0", True),
        ((20, 19, 0), "^20.19.0 || ^22.13.0 || >=24", True),
        ((22, 12, 0), "^20.19.0 || ^22.13.0 || >=24", False),
        ((20, 19, 0), ">= 10", True),
        ((20, 19, 0), ">=16 <20", False),
        ((20, 19, 0), "12 - 20", True),
        ((20, 19, 0), "~20.18", False),
        ((20, 19, 0), "*", True),
        ((0, 2, 5), "^0.2.3", True),
        ((0, 3, 0), "^0.2.3", False),
    ],
)
def test_range_evaluation(version: Version, node_range: str, expected: bool) -> None:
    assert satisfies(version, node_range) is expected


def test_lowest_versions_of_a_range() -> None:
    assert lowest_versions("^20.19.0 || ^22.13.0 || >=24") == [(20, 19, 0), (22, 13, 0), (24, 0, 0)]
    assert lowest_versions(">= 18 <21 || 12 - 14") == [(18, 0, 0), (12, 0, 0)]


def test_every_locked_package_supports_the_declared_node() -> None:
    declared = json.loads((FRONTEND / "package.json").read_text()).get("engines", {}).get("node")
    assert declared, "frontend/package.json must declare engines.node"
    lowest = lowest_versions(declared)
    assert (20, 19, 0) in lowest, f"the project runs on Node 20 (CI, deploy/frontend.Dockerfile): {declared}"
    lock = json.loads((FRONTEND / "package-lock.json").read_text())
    unsupported = []
    for path, entry in lock["packages"].items():
        engines = entry.get("engines")
        node_range = engines.get("node") if isinstance(engines, dict) else None
        if not path or not isinstance(node_range, str):
            continue
        for version in lowest:
            if not satisfies(version, node_range):
                unsupported.append(f"{path}@{entry.get('version')} wants node {node_range!r}, not {version}")
    assert not unsupported, "packages npm ci would warn about (EBADENGINE):\n" + "\n".join(unsupported)
