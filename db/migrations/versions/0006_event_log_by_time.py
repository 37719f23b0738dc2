"""the event log by time: myGenerationEvents reads a viewer's events after a cursor

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 23:40:00

`ix_generation_events_created_at`: `myGenerationEvents(after:)` and its catch-ups read the durable
events of one owner's generations after a (created_at, generation_id, seq) position
(db/events.py `owner_events_after`); without this index each read scanned the whole event log.
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_generation_events_created_at", "generation_events", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_generation_events_created_at", table_name="generation_events")
