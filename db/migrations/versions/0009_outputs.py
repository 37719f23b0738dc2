"""outputs of every kind: an image row is any output file (image, animation, video, audio, text)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08 02:15:00

`images.kind` says what the output is; `batch_index` its place in its node's batch (each output says
its seed and batch index); `frames` and `duration_s` measure animations, videos and audio; `filename`
is ComfyUI's name of the file. Width and height become nullable: a sound or a text has neither. Rows
written before this revision are images (the defaults).
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("images", sa.Column("kind", sa.String(16), nullable=False, server_default="image"))
    op.add_column("images", sa.Column("batch_index", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("images", sa.Column("duration_s", sa.Float(), nullable=True))
    op.add_column("images", sa.Column("frames", sa.Integer(), nullable=True))
    op.add_column("images", sa.Column("filename", sa.String(200), nullable=False, server_default=""))
    op.alter_column("images", "width", existing_type=sa.Integer(), nullable=True)
    op.alter_column("images", "height", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    # Outputs without a size (audio, text) cannot stay in a table that requires one.
    op.execute("DELETE FROM images WHERE width IS NULL OR height IS NULL")
    op.alter_column("images", "height", existing_type=sa.Integer(), nullable=False)
    op.alter_column("images", "width", existing_type=sa.Integer(), nullable=False)
    for column in ("filename", "frames", "duration_s", "batch_index", "kind"):
        op.drop_column("images", column)
