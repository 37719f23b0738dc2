"""The one private name of a library Safelight reads: strawberry's graphql-core schema.

Validation with our own rules and cache (graph/schema.py `_DocumentChecks`) needs the `GraphQLSchema`
strawberry built, and strawberry keeps it as `Schema._schema` with no public accessor (its own
ValidationCache extension reads the same attribute). It is read here, once per schema, and
`tests/graph/test_core_schema.py` fails on a strawberry release that no longer keeps it there.
"""

from __future__ import annotations

import strawberry
from graphql import GraphQLSchema

__all__ = ["core_schema"]


def core_schema(schema: strawberry.Schema) -> GraphQLSchema:
    """The graphql-core schema `schema` executes with."""
    core = getattr(schema, "_schema", None)
    if not isinstance(core, GraphQLSchema):
        version = getattr(strawberry, "__version__", "?")
        raise RuntimeError(f"strawberry {version} no longer keeps its graphql-core schema as Schema._schema")
    return core
