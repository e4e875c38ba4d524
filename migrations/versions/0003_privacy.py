"""privacy: consent version, prediction photos purged after the answer

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PHOTO_KEPT = "status IN ('done', 'failed') AND photo_deleted_at IS NULL"


def upgrade() -> None:
    op.add_column("users", sa.Column("consent_version", sa.Integer(), nullable=True))
    # Consent given before versions were recorded was given to the first text.
    op.execute("UPDATE users SET consent_version = 1 WHERE consent_at IS NOT NULL")
    op.add_column(
        "prediction_requests",
        sa.Column("photo_deleted_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "ix_prediction_requests_photo_kept",
        "prediction_requests",
        ["finished_at"],
        unique=False,
        postgresql_where=sa.text(PHOTO_KEPT),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_prediction_requests_photo_kept",
        table_name="prediction_requests",
        postgresql_where=sa.text(PHOTO_KEPT),
    )
    op.drop_column("prediction_requests", "photo_deleted_at")
    op.drop_column("users", "consent_version")
