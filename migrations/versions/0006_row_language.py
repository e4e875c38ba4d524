"""The language of a prediction request and of a training run, on its row

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 10:00:00.000000

Decided once, when the row is created (emobot.i18n.pick_language over the user's choice and
Telegram client), so that the worker's reply and the trainer's report speak the language the
person was spoken to in when they asked. Rows from before take their user's language now.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Table and the column naming the user who asked.
ASKED_BY = {"prediction_requests": "user_id", "training_runs": "requested_by"}
# emobot.i18n.pick_language in SQL, frozen as it was at this revision.
PICK = """
CASE WHEN u.language IN ('ru', 'en') THEN u.language
     WHEN lower(left(u.telegram_language, 2)) IN ('ru', 'en')
         THEN lower(left(u.telegram_language, 2))
     ELSE 'ru' END
"""


def upgrade() -> None:
    for table, user in ASKED_BY.items():
        op.add_column(table, sa.Column("language", sa.String(2), server_default="ru"))
        op.execute(
            f"UPDATE {table} AS r SET language = {PICK} FROM users AS u WHERE u.id = r.{user}"
        )
        op.alter_column(table, "language", nullable=False)


def downgrade() -> None:
    for table in ASKED_BY:
        op.drop_column(table, "language")
