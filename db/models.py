"""SQLAlchemy models: the only description of the schema besides the Alembic revisions."""

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import BIT, JSONB, BitString
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from emobot.labels import CLASSES, FER_EMOTIONS

# Stable constraint names, so that Alembic revisions can name what they drop.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSONB,
        list[Any]: JSONB,
        datetime: DateTime(timezone=True),
    }


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class User(TimestampMixin, Base):
    """A Telegram user; the id is Telegram's."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    username: Mapped[str | None] = mapped_column(String(64))
    first_name: Mapped[str | None] = mapped_column(String(128))
    # Chosen with /language; None means "follow the Telegram client's language".
    language: Mapped[str | None] = mapped_column(String(2))
    telegram_language: Mapped[str | None] = mapped_column(String(16))
    # When the user agreed to their photos being used, and to which version of the consent text
    # (bot.services.privacy.CONSENT_VERSION): a newer text is asked for again.
    consent_at: Mapped[datetime | None]
    consent_version: Mapped[int | None] = mapped_column(Integer)
    # The consent text version they were asked under after a verdict on an answer (feedback):
    # someone who said no is not asked again after every answer, only under a newer text.
    feedback_asked_version: Mapped[int | None] = mapped_column(Integer)


class Bits(TypeDecorator[bytes]):
    """A fixed-length PostgreSQL bit string, seen from Python as bytes: bit strings, unlike
    bytea, have XOR (`#`) and `bit_count`, which near-duplicate lookups need."""

    impl = BIT
    cache_ok = True

    def __init__(self, length: int) -> None:
        super().__init__(length)
        self.length = length

    def process_bind_param(self, value: bytes | None, dialect: Dialect) -> Any:
        return None if value is None else BitString.from_bytes(value, self.length)

    def process_result_value(self, value: Any, dialect: Dialect) -> bytes | None:
        return None if value is None else BitString(value).to_bytes(self.length // 8)


SAMPLE_STATUSES = ("active", "deleted")
# telegram: contributed with /contribute; feedback: a face of an answer its sender confirmed or
# corrected, with their consent.
SAMPLE_SOURCES = ("fer2013", "telegram", "feedback")


class Sample(TimestampMixin, Base):
    """One distinct labelled image of the dataset."""

    __tablename__ = "samples"
    __table_args__ = (
        CheckConstraint(_one_of("label", CLASSES), name="label"),
        CheckConstraint(_one_of("fer_emotion", FER_EMOTIONS), name="fer_emotion"),
        CheckConstraint(_one_of("split", ("train", "test")), name="split"),
        CheckConstraint(_one_of("source", SAMPLE_SOURCES), name="source"),
        CheckConstraint(_one_of("status", SAMPLE_STATUSES), name="status"),
        Index("ix_samples_contributor", "contributor_id", "created_at"),
        Index("ix_samples_dataset", "status", "split", "label"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    blob_key: Mapped[str] = mapped_column(Text)
    label: Mapped[str] = mapped_column(String(16))
    fer_emotion: Mapped[str | None] = mapped_column(String(16))
    split: Mapped[str] = mapped_column(String(8))
    source: Mapped[str] = mapped_column(String(16))
    contributor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    face_box: Mapped[list[Any] | None]  # [x, y, w, h] in the stored image
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), server_default="active")
    # Where the bytes came from: every archive path holding them (several for FER2013's
    # byte-identical copies), or the Telegram file id.
    origins: Mapped[list[Any]] = mapped_column(server_default=text("'[]'::jsonb"))
    # Flaws found on import: a copy in both train and test (kept as test: never trained on),
    # copies with different labels, a blank image.
    leak: Mapped[bool] = mapped_column(server_default=text("false"))
    label_conflict: Mapped[bool] = mapped_column(server_default=text("false"))
    blank: Mapped[bool] = mapped_column(server_default=text("false"))
    # FER+ crowd votes of a FER2013 image, per archive path (byte-identical copies were voted
    # on one by one): {path: [10 counts in ml.ferplus.COLUMNS order]}; None when not known.
    ferplus_votes: Mapped[dict[str, Any] | None]
    # Perceptual hashes of the face crop (ml.near_dupes), to find re-encoded, resized or lightly
    # edited copies; None where not computed (a large photo re-imported from an export).
    phash: Mapped[int | None] = mapped_column(BigInteger)
    block_hash: Mapped[bytes | None] = mapped_column(Bits(256))
    # A near-copy of another sample with a different label: both are left out of training.
    near_conflict: Mapped[bool] = mapped_column(server_default=text("false"))


REQUEST_STATUSES = ("queued", "processing", "done", "failed")
# A photo, or a clip (video note, GIF, video: ml/clips.py).
REQUEST_KINDS = ("photo", "video")


class PredictionRequest(TimestampMixin, Base):
    """A photo waiting for, or answered with, the emotions of its faces."""

    __tablename__ = "prediction_requests"
    __table_args__ = (
        CheckConstraint(_one_of("status", REQUEST_STATUSES), name="status"),
        CheckConstraint(_one_of("kind", REQUEST_KINDS), name="kind"),
        # The claim query: oldest claimable first, among the few unfinished rows only.
        Index(
            "ix_prediction_requests_claim",
            "created_at",
            postgresql_where=text("status IN ('queued', 'processing')"),
        ),
        Index("ix_prediction_requests_user", "user_id", "created_at"),
        # The per-group rate limit: a chat's requests of the last minute.
        Index("ix_prediction_requests_chat", "chat_id", "created_at"),
        # The purge query: answered requests whose photo is still kept.
        Index(
            "ix_prediction_requests_photo_kept",
            "finished_at",
            postgresql_where=text("status IN ('done', 'failed') AND photo_deleted_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    # The forum topic of a group's photo: the answer goes there.
    thread_id: Mapped[int | None] = mapped_column(BigInteger)
    blob_key: Mapped[str] = mapped_column(Text)
    # Telegram's id of the photo: fetched again if its sender turns the answer into a sample
    # (feedback), since the stored photo is deleted once answered.
    file_id: Mapped[str | None] = mapped_column(Text)
    whole: Mapped[bool] = mapped_column(server_default=text("false"))
    kind: Mapped[str] = mapped_column(String(8), server_default="photo")
    # The reply's language, decided when the request was made (emobot.i18n.pick_language).
    language: Mapped[str] = mapped_column(String(2), server_default="ru")
    status: Mapped[str] = mapped_column(String(16), server_default="queued")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    locked_until: Mapped[datetime | None]
    locked_by: Mapped[str | None] = mapped_column(String(64))
    result: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    model_version: Mapped[int | None] = mapped_column(Integer)
    timings: Mapped[dict[str, Any] | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    replied_at: Mapped[datetime | None]
    # When the photo stopped being kept for this request (see db.retention); the result stays.
    photo_deleted_at: Mapped[datetime | None]


class Feedback(TimestampMixin, Base):
    """A person's verdict on one face of an answer: what the model said and what they say.
    With their consent the face became a sample (`sample_id`); without, only this is kept."""

    __tablename__ = "feedback"
    __table_args__ = (
        CheckConstraint(_one_of("predicted", CLASSES), name="predicted"),
        CheckConstraint(_one_of("actual", CLASSES), name="actual"),
        UniqueConstraint("request_id", "face"),
        Index("ix_feedback_recent", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("prediction_requests.id", ondelete="CASCADE")
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    face: Mapped[int] = mapped_column(Integer)  # 0-based, numbered from 1 on the picture
    predicted: Mapped[str] = mapped_column(String(16))
    actual: Mapped[str] = mapped_column(String(16))
    model_version: Mapped[int | None] = mapped_column(Integer)
    sample_id: Mapped[int | None] = mapped_column(ForeignKey("samples.id", ondelete="SET NULL"))


class ModelVersion(Base):
    """A trained model in the registry; at most one is active."""

    __tablename__ = "models"
    __table_args__ = (
        Index("uq_models_active", "is_active", unique=True, postgresql_where=text("is_active")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    blob_key: Mapped[str] = mapped_column(Text)
    arch: Mapped[str] = mapped_column(String(32))
    metrics: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    # Blob keys of the learning-curve and confusion-matrix pictures, the model card, ….
    artifacts: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    dataset_version: Mapped[str | None] = mapped_column(String(64))
    is_active: Mapped[bool] = mapped_column(server_default=text("false"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    activated_at: Mapped[datetime | None]


RUN_STATUSES = ("queued", "running", "done", "failed")


class TrainingRun(TimestampMixin, Base):
    __tablename__ = "training_runs"
    __table_args__ = (
        CheckConstraint(_one_of("status", RUN_STATUSES), name="status"),
        # One run at a time, enforced by the database rather than by a check-then-insert race.
        Index(
            "uq_training_runs_one_active",
            text("(true)"),
            unique=True,
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    requested_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    progress_message_id: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), server_default="queued")
    params: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    # The report's language, decided when the run was queued.
    language: Mapped[str] = mapped_column(String(2), server_default="ru")
    progress: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id", ondelete="SET NULL"))
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    reported_at: Mapped[datetime | None]


class FsmState(Base):
    """aiogram FSM state and data, one row per storage key."""

    __tablename__ = "fsm_states"

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    state: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class SeenUpdate(Base):
    """A Telegram update a bot process has taken (committed with what handling it wrote), so
    that no other bot process handles it again: Telegram may deliver an update twice, and with
    several webhook replicas the two deliveries reach different processes."""

    __tablename__ = "seen_updates"

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    seen_at: Mapped[datetime] = mapped_column(server_default=func.now(), index=True)
