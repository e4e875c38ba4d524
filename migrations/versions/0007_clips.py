"""Clips in the prediction queue: what kind of file a request holds

Revision ID: 0007_clips
Revises: 0007_feedback
Create Date: 2026-12-05 19:00:00.000000

A request is a photo or a clip (a video note, a GIF, a video); the worker claims the two kinds
in separate lanes, so that a long clip never holds up the photos. Rows from before are photos.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_clips"
down_revision: str | None = "0007_feedback"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "prediction_requests",
        sa.Column("kind", sa.String(8), server_default="photo", nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_prediction_requests_kind"), "prediction_requests", "kind IN ('photo', 'video')"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_prediction_requests_kind"), "prediction_requests", type_="check")
    op.drop_column("prediction_requests", "kind")
