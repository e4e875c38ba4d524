"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-24 11:20:55.824034
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Listeners (workers, trainer) wake on these channels, whichever process wrote the row.
NOTIFY_FUNCTION = """
CREATE FUNCTION notify_row() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_NAME, NEW.id::text);
    RETURN NEW;
END
$$ LANGUAGE plpgsql
"""
NOTIFY_TRIGGERS = {
    "prediction_requests": "AFTER INSERT",
    "training_runs": "AFTER INSERT",
    "models": "AFTER INSERT OR UPDATE OF is_active",
}


def upgrade() -> None:
    op.create_table(
        "fsm_states",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=True),
        sa.Column(
            "data",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_fsm_states")),
    )
    op.create_table(
        "models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("blob_key", sa.Text(), nullable=False),
        sa.Column("arch", sa.String(length=32), nullable=False),
        sa.Column(
            "metrics",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "artifacts",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("dataset_version", sa.String(length=64), nullable=True),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
        sa.UniqueConstraint("version", name=op.f("uq_models_version")),
    )
    op.create_index(
        "uq_models_active",
        "models",
        ["is_active"],
        unique=True,
        postgresql_where=sa.text("is_active"),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("username", sa.String(length=64), nullable=True),
        sa.Column("first_name", sa.String(length=128), nullable=True),
        sa.Column("language", sa.String(length=2), nullable=True),
        sa.Column("telegram_language", sa.String(length=16), nullable=True),
        sa.Column("consent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
    )
    op.create_table(
        "prediction_requests",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("blob_key", sa.Text(), nullable=False),
        sa.Column("whole", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="queued", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("locked_by", sa.String(length=64), nullable=True),
        sa.Column("result", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("model_version", sa.Integer(), nullable=True),
        sa.Column("timings", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("replied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('queued', 'processing', 'done', 'failed')",
            name=op.f("ck_prediction_requests_status"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_prediction_requests_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prediction_requests")),
    )
    op.create_index(
        "ix_prediction_requests_claim",
        "prediction_requests",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('queued', 'processing')"),
    )
    op.create_index(
        "ix_prediction_requests_user",
        "prediction_requests",
        ["user_id", "created_at"],
        unique=False,
    )
    op.create_table(
        "samples",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("blob_key", sa.Text(), nullable=False),
        sa.Column("label", sa.String(length=16), nullable=False),
        sa.Column("fer_emotion", sa.String(length=16), nullable=True),
        sa.Column("split", sa.String(length=8), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("contributor_id", sa.BigInteger(), nullable=True),
        sa.Column("face_box", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="active", nullable=False),
        sa.Column(
            "origins",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("leak", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("label_conflict", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("blank", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "fer_emotion IN ('angry', 'disgust', 'fear', 'happy', 'neutral', 'sad', 'surprise')",
            name=op.f("ck_samples_fer_emotion"),
        ),
        sa.CheckConstraint(
            "label IN ('negative', 'happy', 'surprise', 'neutral')", name=op.f("ck_samples_label")
        ),
        sa.CheckConstraint("source IN ('fer2013', 'telegram')", name=op.f("ck_samples_source")),
        sa.CheckConstraint("split IN ('train', 'test')", name=op.f("ck_samples_split")),
        sa.CheckConstraint("status IN ('active', 'deleted')", name=op.f("ck_samples_status")),
        sa.ForeignKeyConstraint(
            ["contributor_id"],
            ["users.id"],
            name=op.f("fk_samples_contributor_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_samples")),
        sa.UniqueConstraint("sha256", name=op.f("uq_samples_sha256")),
    )
    op.create_index(
        "ix_samples_contributor", "samples", ["contributor_id", "created_at"], unique=False
    )
    op.create_index("ix_samples_dataset", "samples", ["status", "split", "label"], unique=False)
    op.create_table(
        "training_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("requested_by", sa.BigInteger(), nullable=True),
        sa.Column("chat_id", sa.BigInteger(), nullable=True),
        sa.Column("progress_message_id", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="queued", nullable=False),
        sa.Column(
            "params",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "progress",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("model_id", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'done', 'failed')",
            name=op.f("ck_training_runs_status"),
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_training_runs_model_id_models"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["requested_by"],
            ["users.id"],
            name=op.f("fk_training_runs_requested_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_runs")),
    )
    op.execute(NOTIFY_FUNCTION)
    for table, when in NOTIFY_TRIGGERS.items():
        op.execute(
            f"CREATE TRIGGER {table}_notify {when} ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION notify_row()"
        )
    op.create_index(
        "uq_training_runs_one_active",
        "training_runs",
        [sa.literal_column("(true)")],
        unique=True,
        postgresql_where=sa.text("status IN ('queued', 'running')"),
    )


def downgrade() -> None:
    for table in NOTIFY_TRIGGERS:
        op.execute(f"DROP TRIGGER {table}_notify ON {table}")
    op.execute("DROP FUNCTION notify_row()")
    op.drop_index(
        "uq_training_runs_one_active",
        table_name="training_runs",
        postgresql_where=sa.text("status IN ('queued', 'running')"),
    )
    op.drop_table("training_runs")
    op.drop_index("ix_samples_dataset", table_name="samples")
    op.drop_index("ix_samples_contributor", table_name="samples")
    op.drop_table("samples")
    op.drop_index("ix_prediction_requests_user", table_name="prediction_requests")
    op.drop_index(
        "ix_prediction_requests_claim",
        table_name="prediction_requests",
        postgresql_where=sa.text("status IN ('queued', 'processing')"),
    )
    op.drop_table("prediction_requests")
    op.drop_table("users")
    op.drop_index("uq_models_active", table_name="models", postgresql_where=sa.text("is_active"))
    op.drop_table("models")
    op.drop_table("fsm_states")
