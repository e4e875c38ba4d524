"""Shared fixtures: a real PostgreSQL database per test session, moto's S3 server, blob
stores, the small FER2013-layout fixture archive and settings pointing at all of them."""

import logging
import os
import socket
import tempfile
import uuid
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import NoReturn

import asyncpg
import pytest
from moto.server import ThreadedMotoServer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db.blobs import BlobStore, LocalBlobStore, S3BlobStore
from db.engine import Storage, make_engine, make_sessionmaker
from db.migrate import upgrade
from db.models import Base
from emobot.settings import Settings
from playground.botapi import BotAPIEmulator, BotAPIServer
from tests.make_fixture_archive import build

# moto's server logs every request at INFO; failures are easier to read without them.
logging.getLogger("werkzeug").setLevel(logging.WARNING)

FER2013_ZIP = Path(
    os.environ.get("FER2013_ZIP", Path(__file__).parents[2] / "shared" / "data" / "fer2013.zip")
)
# Built for each test session by `fer_small` (FER2013 is not committed); one per process, so
# that sessions in several checkouts at once do not overwrite each other's.
FIXTURE_ARCHIVE = Path(tempfile.gettempdir()) / f"emobot-fer_small-{os.getpid()}.zip"
# The server the test databases are created on (trust auth on the development machines).
PG_ADMIN_DSN = os.environ.get("TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def missing_tool(message: str) -> NoReturn:
    """A program a test needs is absent: skipped on a developer's machine, a failure in CI,
    where .ci/run installs it and a skip would hide a broken install."""
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session", autouse=True)
def fer_small() -> Iterator[Path]:
    """FIXTURE_ARCHIVE, from the real FER2013 archive when it is at hand, synthetic faces in
    the same layout otherwise (tests/make_fixture_archive.py)."""
    yield build(FIXTURE_ARCHIVE, FER2013_ZIP)
    FIXTURE_ARCHIVE.unlink(missing_ok=True)


def first_image(folder: str) -> str:
    """The name of the first image under `folder` (`train/happy`) in the fixture archive."""
    with zipfile.ZipFile(FIXTURE_ARCHIVE) as archive:
        return min(n for n in archive.namelist() if n.startswith(folder + "/"))


def fer_face() -> bytes:
    """A 48×48 face of the fixture archive: classified whole."""
    with zipfile.ZipFile(FIXTURE_ARCHIVE) as archive:
        return archive.read(first_image("train/happy"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    """A fresh database for this test session, dropped at the end."""
    name = f"emobot_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {PG_ADMIN_DSN} ({exc}). Start it with "
            "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` "
            "or point TEST_PG_DSN at a server.",
            pytrace=False,
        )
    await admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    yield f"{base}/{name}"
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(database_url)
    await upgrade(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
async def sessions(engine: AsyncEngine) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A session factory over an emptied database: every test starts with no rows."""
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    yield make_sessionmaker(engine)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3-protocol server on 127.0.0.1, for the whole test session."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
async def s3_store(s3_endpoint: str) -> AsyncIterator[S3BlobStore]:
    store = S3BlobStore(
        f"test-{uuid.uuid4().hex[:12]}",
        endpoint_url=s3_endpoint,
        access_key_id="testing",
        secret_access_key="testing",
    )
    async with store:
        yield store


@pytest.fixture
async def local_store(tmp_path: Path) -> AsyncIterator[LocalBlobStore]:
    async with LocalBlobStore(tmp_path / "blobs") as store:
        yield store


@pytest.fixture(params=["local", "s3"])
def blob_store(request: pytest.FixtureRequest) -> BlobStore:
    """Each contract test runs against both backends (a sync fixture: it only picks one)."""
    return request.getfixturevalue(f"{request.param}_store")


@pytest.fixture
def storage(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], s3_store: S3BlobStore
) -> Storage:
    return Storage(engine, sessions, s3_store)


@pytest.fixture
def settings(
    database_url: str, s3_endpoint: str, s3_store: S3BlobStore, tmp_path: Path
) -> Settings:
    """Settings for code under test: the test database, the test bucket, a temporary folder."""
    return Settings(
        _env_file=None,
        database_url=database_url,
        blob_store_url=f"s3://{s3_store.bucket}",
        s3_endpoint_url=s3_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        data_dir=tmp_path / "var",
        admin_ids="1000",
        # The fixed protocol's data only where a test gives it: none is read from ../shared.
        fer2013_zip=tmp_path / "absent" / "fer2013.zip",
        ferplus_csv=tmp_path / "absent" / "votes.csv",
        real_photos=tmp_path / "absent" / "photos",
        # The fixture archive holds at least 2 trainable and 3 test images of every class.
        min_train_per_class=2,
        min_test_per_class=3,
    )


@pytest.fixture(scope="session")
def fer2013_zip() -> Path:
    if not FER2013_ZIP.is_file():
        # CI has shared/ beside its clone: there a missing archive is a failure, not a skip.
        missing_tool(f"the FER2013 archive is not at {FER2013_ZIP} (set FER2013_ZIP)")
    return FER2013_ZIP


def child_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a `python -m cli …` child process: the test database and bucket."""
    return {
        **os.environ,
        "DATABASE_URL": settings.database_url or "",
        "BLOB_STORE_URL": settings.blob_store_url,
        "S3_ENDPOINT_URL": settings.s3_endpoint_url or "",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "FER2013_ZIP": str(settings.fer2013_zip),
        "FERPLUS_CSV": str(settings.ferplus_csv),
        "REAL_PHOTOS": str(settings.real_photos),
        "MIN_TRAIN_PER_CLASS": str(settings.min_train_per_class),
        "MIN_TEST_PER_CLASS": str(settings.min_test_per_class),
        **extra,
    }


@pytest.fixture
async def botapi() -> AsyncIterator[tuple[BotAPIEmulator, BotAPIServer]]:
    """The fake Telegram Bot API on a free port, and the emulator to act as users through."""
    emulator = BotAPIEmulator()
    async with BotAPIServer(emulator) as server:
        yield emulator, server
