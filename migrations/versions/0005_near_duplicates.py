"""Perceptual hashes on samples, for near-duplicates

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 10:00:00.000000

`phash` (64 bits as a bigint) and `block_hash` (bit(256)) of each sample's face crop
(ml.near_dupes), and `near_conflict`: a near-copy of another sample with a different label.
No backfill here: the hashes need the images (blob store) and the face detector, which a
schema change should not depend on. Contributed photos get them when the platform is prepared
after the migrations (`emobot run`, compose's migrate: cli.importer.hash_old_contributions),
FER2013 rows when `emobot import-fer2013` runs again (it reads the archive anyway and fills in
what is missing). Rows without hashes are never matched.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("samples", sa.Column("phash", sa.BigInteger(), nullable=True))
    op.add_column("samples", sa.Column("block_hash", postgresql.BIT(256), nullable=True))
    op.add_column(
        "samples",
        sa.Column("near_conflict", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("samples", "near_conflict")
    op.drop_column("samples", "block_hash")
    op.drop_column("samples", "phash")
