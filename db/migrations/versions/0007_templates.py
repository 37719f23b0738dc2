"""templates in the database, with versions; a generation records the version it ran

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08 01:50:00

Templates were files read at start; an admin now adds and edits them at run time. A version is
never updated: `generations.template_version_id` names the exact workflow and parameters a
generation ran, so editing a template changes nothing an old generation shows. NULL for raw
workflows and for generations made before this revision (they keep their template name).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "templates",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("current_version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("source IN ('shipped', 'directory', 'uploaded')", name="ck_template_source"),
    )
    op.create_table(
        "template_versions",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("template_name", sa.String(100), sa.ForeignKey("templates.name"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("title", sa.Text, nullable=False, server_default=""),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("workflow", postgresql.JSONB, nullable=False),
        sa.Column("params", postgresql.JSONB, nullable=False),
        sa.Column("source_format", sa.String(8), nullable=False),
        sa.Column("digest", sa.CHAR(64), nullable=False),
        sa.Column("created_by", postgresql.UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="SET NULL")),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.UniqueConstraint("template_name", "version", name="uq_template_version"),
        sa.CheckConstraint("source_format IN ('api', 'ui')", name="ck_template_source_format"),
    )
    op.add_column(
        "generations",
        sa.Column(
            "template_version_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey("template_versions.id", name="fk_generations_template_version"),
            nullable=True,
        ),
    )


def downgrade() -> None:
    op.drop_column("generations", "template_version_id")
    op.drop_table("template_versions")
    op.drop_table("templates")
