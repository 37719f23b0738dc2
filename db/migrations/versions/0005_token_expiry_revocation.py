"""API tokens: optional expiry, revocation

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 23:30:00

`safelight create-token --expires-in` sets `expires_at`; `safelight revoke-token` sets `revoked_at`.
A token with either in the past is refused.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("api_tokens", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("api_tokens", sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("api_tokens", "revoked_at")
    op.drop_column("api_tokens", "expires_at")
