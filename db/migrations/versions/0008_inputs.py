"""inputs: images and masks users upload, for IMAGE/MASK template parameters

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08 02:00:00

An input is one owner's reference to bytes in the content-addressed store (the same store as output
images). One row per owner and content: uploading the same file again answers the same id. The
worker puts the bytes on whichever ComfyUI backend runs a job that names the input.
`ix_inputs_owner_created` serves the per-owner hourly upload count; `ix_inputs_content_hash` the check
whether a stored file is still used before a deleted generation's images are removed.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inputs",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column(
            "owner_id", postgresql.UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("mime", sa.String(50), nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("size_bytes", sa.Integer, nullable=False),
        sa.Column("filename", sa.String(200), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.UniqueConstraint("owner_id", "content_hash", name="uq_input_owner_content"),
    )
    op.create_index("ix_inputs_owner_created", "inputs", ["owner_id", "created_at"])
    op.create_index("ix_inputs_content_hash", "inputs", ["content_hash"])


def downgrade() -> None:
    op.drop_index("ix_inputs_content_hash", table_name="inputs")
    op.drop_index("ix_inputs_owner_created", table_name="inputs")
    op.drop_table("inputs")
