"""generations record their namespace

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 11:50:00

Recovery (jobs/worker/recovery.py `recover_orphans`) takes over only its own namespace's generations: several
namespaces (deployments, test sessions) may share one database, each with its own Redis queue,
workers and heartbeats. Rows from before this revision belong to the default namespace.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "generations", sa.Column("namespace", sa.String(length=64), server_default="safelight", nullable=False)
    )


def downgrade() -> None:
    op.drop_column("generations", "namespace")
