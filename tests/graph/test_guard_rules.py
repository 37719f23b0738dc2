"""graph.guards, its rules one by one: Host names, websocket Origins and the connection caps (the same guards
against real clients over HTTP and websockets are tests/graph/test_guards.py)."""

from __future__ import annotations

import pytest

from graph.guards import ConnectionCaps, allowed_origin, host_name


@pytest.mark.parametrize(
    ("value", "host"),
    [
        ("localhost", "localhost"),
        (" LocalHost:5173 ", "localhost"),
        ("127.0.0.1:8000", "127.0.0.1"),
        ("[::1]:8000", "[::1]"),
        ("[::1]", "[::1]"),
        ("::1", "::1"),  # a bare IPv6 address: its colons are not a port
        ("Safelight.Example.org", "safelight.example.org"),
        ("", ""),
    ],
)
def test_host_names_lose_case_and_port(value: str, host: str) -> None:
    assert host_name(value) == host


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "admitted"),
    [
        (None, "api:8000", [], True),  # not a browser
        ("http://api:8000", "api:8000", [], True),  # the server's own origin
        ("HTTPS://API:8000/", "api:8000", [], True),
        ("http://evil.example", "api:8000", [], False),
        ("http://api:8001", "api:8000", [], False),  # another port is another origin
        ("ftp://api:8000", "api:8000", [], False),
        ("null", "api:8000", [], False),  # a sandboxed frame or a file:// page
        ("http://app.example/", None, ["HTTP://APP.example"], True),  # configured, case and slash aside
        ("http://api:8000", None, [], False),  # no Host to compare with
    ],
)
def test_websocket_origins(origin: str | None, host: str | None, allowed: list[str], admitted: bool) -> None:
    assert allowed_origin(origin, host=host, allowed=allowed) is admitted


def test_unauthenticated_connections_get_a_smaller_share_per_process_and_per_address() -> None:
    caps = ConnectionCaps(max_total=5, max_unauthenticated=3, max_per_client=3, max_unauthenticated_per_client=2)
    assert [caps.admit("a"), caps.admit("a")] == [None, None]
    assert caps.admit("a") == "too many unauthenticated connections from this address"
    caps.authenticated("a")  # one of a's sockets authenticates: room for another of its unauthenticated ones
    assert caps.admit("a") is None
    assert caps.admit("a") == "too many connections from this address"
    assert caps.admit("b") is None
    assert caps.admit("c") == "too many unauthenticated connections"  # b and a hold all three
    caps.authenticated("b")
    assert caps.admit("c") is None
    assert (caps.total, caps.unauthenticated) == (5, 3)
    assert caps.admit("d") == "too many connections"


def test_released_connections_give_their_room_back_and_leave_no_counters() -> None:
    caps = ConnectionCaps(max_total=100, max_unauthenticated=100, max_per_client=1, max_unauthenticated_per_client=1)
    clients = [f"10.0.0.{n}" for n in range(50)]
    for client in clients:
        assert caps.admit(client) is None
    for n, client in enumerate(clients):
        if n % 2:
            caps.authenticated(client)
        caps.release(client, authenticated=bool(n % 2))
    assert (caps.total, caps.unauthenticated) == (0, 0)
    assert not caps._per_client and not caps._unauth_per_client, "addresses seen once are not kept"
    assert all(caps.admit(client) is None for client in clients)
