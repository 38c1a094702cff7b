"""Server: resumable multipart blob uploads.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blob_uploads",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("part_size", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False, server_default=""),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_blob_uploads"),
    )
    op.create_index("ix_blob_uploads_expires_at", "blob_uploads", ["expires_at"])
    op.create_table(
        "blob_upload_parts",
        sa.Column("upload_id", sa.String(32), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("received_at", sa.BigInteger, nullable=False),
        sa.ForeignKeyConstraint(["upload_id"], ["blob_uploads.id"], ondelete="CASCADE",
                                name="fk_blob_upload_parts_upload_id_blob_uploads"),
        sa.PrimaryKeyConstraint("upload_id", "number", name="pk_blob_upload_parts"),
    )


def downgrade() -> None:
    op.drop_table("blob_upload_parts")
    op.drop_index("ix_blob_uploads_expires_at", table_name="blob_uploads")
    op.drop_table("blob_uploads")
