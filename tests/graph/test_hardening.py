"""Hostile or careless clients over HTTP: bounded bodies, documents, costs and logs; clear client errors."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from graph.documents import DocumentCache, DocumentLimits
from graph.schema import build_schema
from tests.stack import CREATE, GraphQLClient

MakeClient = Callable[..., Awaitable[GraphQLClient]]
BASE = {"prompt": "a quiet harbour", "width": 64, "height": 64, "steps": 2}
NO_SUCH = "00000000-0000-4000-8000-000000000000"


async def _post(api_url: str, content: bytes, token: str | None = None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        return await http.post("/graphql", content=content, headers=headers)


async def test_a_body_over_the_limit_is_refused_before_it_is_read(api_url: str) -> None:
    # By Content-Length: refused at once, with the setting named.
    response = await _post(api_url, b'{"query": "' + b" " * 1_100_000 + b'{ viewer { name } }"}')
    assert response.status_code == 413
    assert "SAFELIGHT_MAX_BODY_BYTES" in response.text
    assert response.headers["x-content-type-options"] == "nosniff"

    # Without Content-Length (chunked): refused once the bytes received pass the limit.
    async def chunks() -> Any:
        yield b'{"query": "'
        for _ in range(200):
            yield b" " * 10_000
        yield b'{ viewer { name } }"}'

    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        response = await http.post("/graphql", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("document", "code", "setting"),
    [
        ("{" + " viewer { name }" * 4000 + "}", "QUERY_TOO_LONG", "SAFELIGHT_GRAPHQL_MAX_QUERY_CHARS"),
        ("{" + " a" * 6000 + "}", "QUERY_TOO_MANY_TOKENS", "SAFELIGHT_GRAPHQL_MAX_TOKENS"),
        (
            "{" + " ".join(f"a{i}: generation(id: $id) {{ id }}" for i in range(31)) + "}",
            "TOO_MANY_ALIASES",
            "SAFELIGHT_GRAPHQL_MAX_ALIASES",
        ),
        (
            "{"
            + " ".join(f"a{i}: generations(first: 100) {{ edges {{ node {{ id prompt }} }} }}" for i in range(30))
            + "}",
            "QUERY_TOO_COSTLY",
            "SAFELIGHT_GRAPHQL_MAX_COST",
        ),
    ],
    ids=["chars", "tokens", "aliases", "cost"],
)
async def test_documents_over_a_limit_get_an_error_that_names_it(
    make_client: MakeClient, document: str, code: str, setting: str
) -> None:
    client = await make_client()
    if "$id" in document:
        document = "query($id: ID!) " + document
    result = await client.execute(document, {"id": NO_SUCH} if "$id" in document else None)
    (error,) = result["errors"]
    assert error["extensions"]["code"] == code, error
    assert error["extensions"]["setting"] == setting
    assert result.get("data") is None


async def test_a_page_of_the_largest_size_is_within_the_cost() -> None:
    schema = build_schema()
    page = """query($after: String) { generations(first: 100, after: $after) {
      edges { cursor node { id status prompt parameters progress { phase percent } images { url thumbnailUrl } } }
      pageInfo { hasNextPage endCursor } } }"""
    result = await schema.execute(page)  # no context: fails in the resolver, after validation
    assert result.errors and not any((e.extensions or {}).get("code") for e in result.errors), result.errors


async def test_fragments_spread_many_times_are_refused_cheaply() -> None:
    """Fragments that spread fragments: 10 levels of 10 spreads would be 10^10 fields if expanded."""
    levels = [f"fragment F{n} on Generation {{ {' '.join(f'...F{n + 1}' for _ in range(10))} }}" for n in range(10)]
    levels.append("fragment F10 on Generation { id }")
    document = "query { generations { edges { node { ...F0 } } } } " + " ".join(levels)
    result = await build_schema(max_depth=50).execute(document)
    assert result.errors and result.errors[0].extensions == {
        "code": "QUERY_TOO_COSTLY",
        "limit": 10_000,
        "setting": "SAFELIGHT_GRAPHQL_MAX_COST",
    }


def test_the_document_cache_is_bounded_in_characters_and_entries() -> None:
    cache = DocumentCache(DocumentLimits(cache_entries=100, cache_chars=10_000))
    for i in range(50):
        cache.parse("{ " + f"a{i}: viewer {{ name }} " * 40 + "}")  # ~900 characters each
    assert cache.chars <= 10_000 and len(cache) <= 11
    for i in range(200):
        cache.parse(f"{{ a{i}: viewer {{ name }} }}")
    assert len(cache) <= 100


async def test_anonymous_errors_log_briefly_without_tracebacks(api_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Aliases of a nullable field that needs a token: expected errors, a few INFO lines, no traceback."""
    document = "{" + " ".join(f'a{i}: generation(id: "{NO_SUCH}") {{ id }}' for i in range(20)) + "}"
    with caplog.at_level(logging.DEBUG):
        async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
            response = await http.post("/graphql", json={"query": document})
    assert response.status_code == 200
    errors = response.json()["errors"]
    assert len(errors) == 20 and all("authentication required" in e["message"] for e in errors)
    graph_records = [r for r in caplog.records if r.name.startswith(("graph", "strawberry"))]
    assert not [r for r in graph_records if r.levelno >= logging.WARNING], graph_records
    assert not [r for r in graph_records if r.exc_info]
    assert len(graph_records) <= 6  # five errors and a line that counts the rest


async def test_a_subscription_over_http_says_it_needs_the_websocket(make_client: MakeClient) -> None:
    client = await make_client()
    result = await client.execute("subscription($id: ID!) { generationEvents(id: $id) { seq } }", {"id": NO_SUCH})
    (error,) = result["errors"]
    assert "subscriptions need the websocket (graphql-transport-ws or graphql-ws)" in error["message"]
    assert error["extensions"]["code"] == "SUBSCRIPTION_NEEDS_WEBSOCKET"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"query": "{ viewer { name } }", "variables": {"x": NaN}}', "NaN is not a JSON number"),
        (b'{"query": "{ viewer { name } }", "variables": {"x": Infinity}}', "Infinity is not a JSON number"),
        (b'{"query": "{ viewer { name } }", "variables": {"x": -Infinity}}', "-Infinity is not a JSON number"),
        (b'{"query": "{ viewer { name } }", "variables": {"x": -1e400}}', "out of range"),
        (b'{"query": "{ viewer { name } }", "variables": {"x": "a\\u0000b"}}', "NUL"),
        (b'{"query": "{ viewer { name } }", "variables": {"x": "\\ud800"}}', "lone surrogates"),
        (b'{"query": "{ viewer { name } }", "variables": {"\\udfff": 1}}', "lone surrogates"),
        (b'{"query": "{ viewer { name } }", "variables": {"x": "caf\xe9"}}', "not valid UTF-8"),
        (b'{"query": "{ viewer { name } }", "variables": {"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}", "nested"),
        (b'{"query": "{ viewer { name } }", "variables": {"x": ' + b"[" * 40 + b"]" * 40 + b"}}", "nested"),
    ],
    ids=[
        "nan",
        "infinity",
        "minus-infinity",
        "1e400",
        "nul",
        "lone-surrogate",
        "surrogate-key",
        "latin-1",
        "deep",
        "depth-40",
    ],
)
async def test_malformed_json_is_a_clear_400(api_url: str, body: bytes, says: str) -> None:
    response = await _post(api_url, body)
    assert response.status_code == 400, response.text
    assert says in response.text


@pytest.mark.parametrize(
    "overrides",
    [{"steps": 2**31}, {"width": 2**31}, {"seed": 2**64}, {"prompt": "nul \u0000 here"}],
    ids=["int-2^31-steps", "int-2^31-width", "seed-2^64", "nul-in-prompt"],
)
async def test_out_of_range_numbers_and_nul_are_client_errors(
    make_client: MakeClient, overrides: dict[str, Any]
) -> None:
    client = await make_client()
    response = await client.http.post(
        "/graphql",
        content=json.dumps({"query": CREATE, "variables": {"input": {**BASE, **overrides}}}),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {client.token}"},
    )
    assert response.status_code in (200, 400), response.text
    text = response.text
    assert "Unexpected error" not in text
    if response.status_code == 200:
        body = response.json()
        if body.get("errors"):
            assert all("errorId" not in (e.get("extensions") or {}) for e in body["errors"]), body
        else:
            assert body["data"]["createGeneration"]["__typename"] == "ValidationError", body


async def test_an_int_literal_over_32_bits_is_a_client_error(make_client: MakeClient) -> None:
    client = await make_client()
    result = await client.execute("{ generations(first: 2147483648) { edges { cursor } } }")
    (error,) = result["errors"]
    assert "Int cannot represent" in error["message"] and "errorId" not in (error.get("extensions") or {})


async def test_a_long_idempotency_key_on_a_raw_workflow_is_a_validation_error(make_client: MakeClient) -> None:
    admin = await make_client(admin=True)
    document = """mutation($w: JSON!, $key: String) { createWorkflowGeneration(workflow: $w, idempotencyKey: $key) {
        __typename ... on ValidationError { errors { field message } } } }"""
    result = await admin.query(document, {"w": {}, "key": "k" * 201})
    payload = result["createWorkflowGeneration"]
    assert payload["__typename"] == "ValidationError"
    assert "idempotencyKey" in [e["field"] for e in payload["errors"]]


async def test_a_large_document_does_not_hold_up_other_requests(make_client: MakeClient) -> None:
    """A document at the size limit is parsed off the event loop; a probe meanwhile answers."""
    client = await make_client()
    big = "{" + " ".join(f"a{i}: viewer {{ name }}" for i in range(2000)) + "}"  # under 50,000 characters
    assert len(big) < 50_000
    slow = asyncio.create_task(client.execute(big))
    probe = await client.query("{ viewer { name } }")
    assert probe["viewer"]["name"]
    result = await slow
    assert result["errors"][0]["extensions"]["code"] in ("TOO_MANY_ALIASES", "QUERY_TOO_MANY_TOKENS")


@pytest.mark.parametrize(
    ("literal", "says"),
    [('search: "a\\u0000b"', "NUL"), ('search: "\\ud83d"', "Syntax Error"), ("first: 1e400", "out of range")],
)
async def test_literals_in_the_document_follow_the_same_rules(literal: str, says: str) -> None:
    result = await build_schema().execute(f"{{ generations({literal}) {{ edges {{ cursor }} }} }}")
    assert result.errors and says in result.errors[0].message, result.errors


async def test_an_infinite_float_literal_is_refused(make_client: MakeClient) -> None:
    client = await make_client()
    document = CREATE.replace("createGeneration(input: $input", 'createGeneration(input: {prompt: "p", cfg: 1e400}')
    result = await client.execute(
        document.replace("mutation($input: GenerationInput!, $key: String)", "mutation($key: String)")
    )
    (error,) = result["errors"]
    assert "out of range" in error["message"] and error["extensions"]["code"] == "INVALID_NUMBER"
