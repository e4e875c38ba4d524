"""The one settings class of the platform, read from the environment and `.env`."""

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlparse

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

WEBHOOK_SECRET_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,256}")
WEBHOOK_SECRET_MISSING = (
    "WEBHOOK_SECRET must be set when WEBHOOK_URL is set: without it the webhook accepts "
    "updates from anyone who can reach it"
)


# After its grace period (SHUTDOWN_GRACE_SECONDS) a service gets this much longer to return
# before it is cancelled: the service's own grace (an HTTP server's shutdown timeout) ends first
# and it closes cleanly. The supervisor waits for both before it kills a child.
CANCEL_MARGIN_SECONDS = 5.0


class Settings(BaseSettings):
    # An empty variable (`BOT_TOKEN=` in .env or compose) means "not set": the default applies.
    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", case_sensitive=False, env_ignore_empty=True
    )

    # Storage. No DATABASE_URL: an embedded PostgreSQL under DATA_DIR/pg is started.
    database_url: str | None = None
    blob_store_url: str = "file://var/blobs"
    s3_endpoint_url: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: SecretStr | None = None
    aws_region: str = "us-east-1"
    data_dir: Path = Path("var")
    # Database connections of each process: the pool (SQLAlchemy's defaults) and how long a
    # request for a connection waits when all are taken.
    db_pool_size: int = Field(5, ge=1)
    db_max_overflow: int = Field(10, ge=0)
    db_pool_timeout_seconds: float = Field(30, gt=0)
    # The bot's transactions: PostgreSQL cancels a statement running longer than this and
    # ends a session left idle inside a transaction longer than this (seconds; 0: no limit).
    db_statement_timeout_seconds: float = Field(30, ge=0)
    db_idle_in_transaction_timeout_seconds: float = Field(60, ge=0)
    # While PostgreSQL is unreachable the bot keeps an update and retries it this long before
    # asking the person to send it again.
    db_outage_retry_seconds: float = Field(120, ge=0)
    # Updates the bot handles at once. Unset: DB_POOL_SIZE - 1, so the handlers never take the
    # whole pool (each holds one connection at most) and dialog-state reads always find one.
    bot_concurrency: int | None = Field(None, ge=1)

    # Telegram. No BOT_TOKEN: the local playground Bot API is used.
    bot_token: SecretStr | None = None
    telegram_api_url: str | None = None
    admin_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    # Webhook mode (WEBHOOK_URL set) needs WEBHOOK_SECRET: without it anyone who can reach the
    # port could post updates as any user, admins included. Telegram allows 1-256 characters
    # A-Z, a-z, 0-9, _ and -.
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    # All interfaces: in a container the pod's address is the way in.
    webhook_host: str = "0.0.0.0"
    webhook_port: int = Field(8081, ge=1, le=65535)
    max_photo_bytes: int = Field(20 * 1024 * 1024, ge=1)
    max_photo_pixels: int = Field(40_000_000, ge=1)
    # Clips (video notes, GIFs, videos): the Bot API's getFile serves at most 20 MB, so larger
    # ones are refused before downloading; the first CLIP_MAX_SECONDS are analysed, sampled at
    # CLIP_FPS frames a second (at most CLIP_MAX_FRAMES), within CLIP_TIME_LIMIT_SECONDS of
    # work per clip (what was read by then is answered).
    max_clip_bytes: int = Field(20 * 1024 * 1024, ge=1)
    clip_max_seconds: float = Field(60, gt=0)
    clip_fps: float = Field(4, gt=0, le=30)
    clip_max_frames: int = Field(240, ge=1)
    clip_time_limit_seconds: float = Field(20, gt=0)
    # Photos a user may have waiting for the worker; more are refused (and counted) at once
    # rather than queued behind everyone else's.
    max_queued_per_user: int = Field(20, ge=1)
    # Photos a group chat may have queued per minute (all its members together): a busy group
    # is not flooded with answers, nor does it crowd out everyone else's.
    group_photos_per_minute: int = Field(10, ge=1)
    # Exports up to this size are sent as a document (the Bot API takes 50 MB), bigger ones
    # as a download link from the blob store.
    export_document_bytes: int = Field(50 * 1024 * 1024, ge=1)

    # Worker.
    batch_size: int = Field(32, ge=1, le=1024)
    batch_wait_ms: int = Field(50, ge=0, le=60_000)
    # A worker renews its claims every sixth of this (a heartbeat), so a killed worker's
    # requests are claimed again this long after its last renewal, and a live one would have
    # to miss six renewals in a row to lose them.
    lease_seconds: int = Field(3, ge=1)
    max_attempts: int = Field(3, ge=1)
    # Telegram's flood control for one chat: the worker's answer goes back to the queue for as
    # long as Telegram asks, and the bot waits before sending again, up to this; a longer wait
    # gives the message up (nothing reaches that chat).
    flood_wait_max_seconds: int = Field(60, ge=1)
    poll_seconds: float = Field(5.0, gt=0)
    model_path: Path | None = None
    # A face whose top probability (calibrated: ml/calibration.py) is below this gets an
    # unsure answer with its two most likely emotions: for a model without a threshold of its
    # own. Every model a training packages has one, chosen on validation data and registered
    # with it (the shipped model's card: calibration.unsure_below, 0.54).
    unsure_below: float = Field(0.54, ge=0, le=1)

    # The fixed evaluation protocol after each training run and in `emobot evaluate`: the
    # FER2013 archive (test-4), FER+ votes (ferplus-test; also training targets) and labelled
    # real photos. A file that is not there leaves its part out.
    fer2013_zip: Path = Path("../shared/data/fer2013.zip")
    ferplus_csv: Path = Path("../shared/data/ferplus/fer2013_ferplus_votes.csv")
    real_photos: Path = Path("../shared/data/realphotos-dev.zip")

    # Operations: /metrics, /healthz and /readyz on this port; unset, no server. Under
    # `emobot run` it is the first of three: bot, worker and trainer get PORT, +1 and +2.
    metrics_port: int | None = Field(None, ge=1, le=65535)

    # Privacy. Hours a photo sent for prediction is kept after its answer (0: deleted at once);
    # how often a worker purges what is past that; the key of the pseudonyms exports give
    # contributors (unset: a random key per export, so pseudonyms differ between exports).
    prediction_retention_hours: float = Field(0, ge=0)
    purge_interval_seconds: float = Field(60, gt=0)
    pseudonym_key: SecretStr | None = None
    # A training run refuses to start with fewer trainable images than this in any class, or
    # fewer test images: a model measured on nothing is never registered.
    min_train_per_class: int = Field(100, ge=1)
    min_test_per_class: int = Field(10, ge=1)

    # SIGTERM (a rollout) or Ctrl-C: a process stops taking new work and gives what it has in
    # hand this long to finish, then hands the rest back. Below Kubernetes' default 30 s
    # terminationGracePeriodSeconds, so it exits before it is killed.
    shutdown_grace_seconds: float = Field(20, gt=0, lt=30)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(int(part) for part in value.replace(" ", "").split(",") if part)
        if isinstance(value, int):
            return frozenset({value})
        return value

    @field_validator("database_url")
    @classmethod
    def _asyncpg_url(cls, value: str | None) -> str | None:
        if value and not value.startswith("postgresql+asyncpg://"):
            raise ValueError("must start with postgresql+asyncpg://")
        return value or None

    @field_validator("webhook_secret")
    @classmethod
    def _telegram_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not WEBHOOK_SECRET_PATTERN.fullmatch(value.get_secret_value()):
            raise ValueError("must be 1-256 characters A-Z, a-z, 0-9, _ or - (Telegram's rule)")
        return value

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> "Settings":
        if self.webhook_url and self.webhook_secret is None:
            raise ValueError(WEBHOOK_SECRET_MISSING)
        return self

    @field_validator("blob_store_url")
    @classmethod
    def _blob_url(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme not in ("s3", "file") or not (parsed.netloc or parsed.path):
            raise ValueError("must be s3://bucket or file:///path")
        return value

    @property
    def handler_concurrency(self) -> int:
        return self.bot_concurrency or max(1, self.db_pool_size - 1)

    def model_file(self, version: int) -> Path:
        """Where a registered model version's flatbuffer is cached: LiteRT loads from a file,
        and the processes sharing DATA_DIR download each version once."""
        return self.data_dir / "models" / f"v{version}.tflite"


class SettingsError(SystemExit):
    """Raised at start when the environment holds an invalid setting; names the variable."""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        # A rule over several settings (a model validator) has no location: its message
        # names the variables itself.
        lines = [
            f"  {'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            if err["loc"]
            else f"  {err['msg']}"
            for err in exc.errors()
        ]
        raise SettingsError("Invalid settings:\n" + "\n".join(lines)) from None
