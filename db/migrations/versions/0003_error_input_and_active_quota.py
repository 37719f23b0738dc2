"""a generation's error names the input; the active quota is counted under a per-owner lock

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 23:20:00

`error_input`: the node input a structured error names (ComfyUI's node_errors `input_name`), beside
`error_node`.

`safelight_active_count(owner, statuses)`: takes a transaction-scoped advisory lock on the owner,
then counts the owner's generations in `statuses`. VOLATILE, so its count runs on a snapshot taken
after the lock is granted: one INSERT that checks the active limit with it is atomic against every
other one of the same owner (the count of a plain statement uses the snapshot of its start and
misses rows committed while it waited). The lock is released when the caller's transaction ends
(an autocommit statement: when it commits). The statuses are compared as the enum, so the status
index serves the count: compared as text, an owner with 100,000 finished generations took 52 ms a
count, against 0.35 ms.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_FUNCTION = """
CREATE FUNCTION safelight_active_count(owner uuid, statuses text[]) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('safelight.active'), hashtext(owner::text));
  RETURN (SELECT count(*) FROM generations WHERE owner_id = owner AND status = ANY(statuses::generation_status[]));
END
$$
"""


def upgrade() -> None:
    op.add_column("generations", sa.Column("error_input", sa.String(length=200), nullable=True))
    op.execute(_FUNCTION)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS safelight_active_count(uuid, text[])")
    op.drop_column("generations", "error_input")
