"""FER+ votes on samples

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 09:00:00.000000

One nullable JSONB object per sample, `{archive path: [10 vote counts]}`, in FER+ column order
(ml.ferplus.COLUMNS). Per path rather than summed: a stored image may be several byte-identical
archive files, FER+ voted on each, and training averages the copies' vote shares exactly as
ml.dataset.load_archive does. NULL: no votes known (contributed photos, an import without them).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "samples",
        sa.Column("ferplus_votes", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("samples", "ferplus_votes")
