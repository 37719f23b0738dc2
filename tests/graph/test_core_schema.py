"""graph/core_schema.py: the one private name of a library the product reads (strawberry's `Schema._schema`)."""

from __future__ import annotations

import pytest
import strawberry
from graphql import GraphQLSchema

from graph.core_schema import core_schema
from graph.schema import build_schema


def test_strawberry_still_keeps_its_graphql_core_schema_where_we_read_it() -> None:
    """Fails on the strawberry release that moves it: then graph/core_schema.py needs its new home."""
    schema = build_schema()
    core = core_schema(schema)
    assert isinstance(core, GraphQLSchema)
    assert schema.graphql_schema is core
    assert core.subscription_type is not None and "generationEvents" in core.subscription_type.fields


def test_a_schema_without_it_is_refused_loudly() -> None:
    class Elsewhere(strawberry.Schema):
        def __init__(self) -> None:  # a stand-in for a release that keeps it under another name
            pass

    with pytest.raises(RuntimeError, match="no longer keeps its graphql-core schema"):
        core_schema(Elsewhere())
