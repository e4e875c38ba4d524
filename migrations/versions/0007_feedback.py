"""Groups and feedback: a request's topic and photo file id, verdicts on answers, feedback samples

Revision ID: 0007_feedback
Revises: 0006
Create Date: 2026-12-05 19:00:00.000000

- `prediction_requests.thread_id`: the forum topic a group's photo was sent in (the answer goes
  there); `file_id`: Telegram's id of the photo, to fetch it again when its sender turns the
  answer into a sample (the stored photo is gone by then); an index on (chat_id, created_at)
  for the per-group rate limit.
- `users.feedback_asked_version`: the consent text version a person was asked under after a
  verdict, so that someone who said no is not asked after every answer.
- `feedback`: one verdict per face of an answer (what the model said, what the person says),
  with the sample it became when they consented.
- `samples.source` takes `feedback`.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_feedback"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CLASSES = "('negative', 'happy', 'surprise', 'neutral')"


def upgrade() -> None:
    op.add_column("prediction_requests", sa.Column("thread_id", sa.BigInteger(), nullable=True))
    op.add_column("prediction_requests", sa.Column("file_id", sa.Text(), nullable=True))
    op.create_index("ix_prediction_requests_chat", "prediction_requests", ["chat_id", "created_at"])
    op.add_column("users", sa.Column("feedback_asked_version", sa.Integer(), nullable=True))
    op.drop_constraint(op.f("ck_samples_source"), "samples", type_="check")
    op.create_check_constraint(
        op.f("ck_samples_source"), "samples", "source IN ('fer2013', 'telegram', 'feedback')"
    )
    op.create_table(
        "feedback",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("request_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("face", sa.Integer(), nullable=False),
        sa.Column("predicted", sa.String(16), nullable=False),
        sa.Column("actual", sa.String(16), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=True),
        sa.Column("sample_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(f"predicted IN {CLASSES}", name=op.f("ck_feedback_predicted")),
        sa.CheckConstraint(f"actual IN {CLASSES}", name=op.f("ck_feedback_actual")),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["prediction_requests.id"],
            name=op.f("fk_feedback_request_id_prediction_requests"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_feedback_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["sample_id"],
            ["samples.id"],
            name=op.f("fk_feedback_sample_id_samples"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
        sa.UniqueConstraint("request_id", "face", name=op.f("uq_feedback_request_id")),
    )
    op.create_index("ix_feedback_recent", "feedback", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_feedback_recent", "feedback")
    op.drop_table("feedback")
    op.execute("DELETE FROM samples WHERE source = 'feedback'")
    op.drop_constraint(op.f("ck_samples_source"), "samples", type_="check")
    op.create_check_constraint(
        op.f("ck_samples_source"), "samples", "source IN ('fer2013', 'telegram')"
    )
    op.drop_column("users", "feedback_asked_version")
    op.drop_index("ix_prediction_requests_chat", "prediction_requests")
    op.drop_column("prediction_requests", "file_id")
    op.drop_column("prediction_requests", "thread_id")
