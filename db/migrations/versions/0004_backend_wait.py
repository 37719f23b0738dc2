"""phases BACKEND_WAIT and UNTRACKED; why a generation waits, until when

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 23:10:00

`BACKEND_WAIT`: no ComfyUI backend can be reached; the job waits (this is not an attempt) until
`deadline_at`, trying again at `retry_at`. `UNTRACKED`: ComfyUI runs the prompt but its live events
cannot be had; the worker reconciles from /history. `phase_reason` says why, for people to read
(also for RETRY_WAIT, whose `retry_at` is the next attempt's time).

Enum values cannot be dropped: downgrade moves rows off them and leaves them in the type (an
upgrade adds them only if missing).
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TYPE generation_phase ADD VALUE IF NOT EXISTS 'BACKEND_WAIT'")
    op.execute("ALTER TYPE generation_phase ADD VALUE IF NOT EXISTS 'UNTRACKED'")
    op.add_column("generations", sa.Column("phase_reason", sa.Text(), nullable=True))
    op.add_column("generations", sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("generations", sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.execute("UPDATE generations SET phase = 'RETRY_WAIT' WHERE phase::text = 'BACKEND_WAIT'")
    op.execute("UPDATE generations SET phase = 'EXECUTING' WHERE phase::text = 'UNTRACKED'")
    op.drop_column("generations", "deadline_at")
    op.drop_column("generations", "retry_at")
    op.drop_column("generations", "phase_reason")
