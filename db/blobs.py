"""Blob storage: one async interface over S3 (aiobotocore) and a local folder.

Images are stored under content-addressed keys (`images/ab/abcdef…`), so the same bytes are
stored once however often they are sent.
"""

import asyncio
import contextlib
import hashlib
import os
import tempfile
from abc import ABC, abstractmethod
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlparse

from emobot.settings import Settings


class BlobNotFound(KeyError):
    """No blob under that key."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def content_key(sha256: str, prefix: str = "images") -> str:
    return f"{prefix}/{sha256[:2]}/{sha256}"


class BlobStore(ABC):
    @abstractmethod
    async def put(self, key: str, data: bytes, content_type: str | None = None) -> None: ...

    @abstractmethod
    async def get(self, key: str) -> bytes:
        """The blob's bytes; raises BlobNotFound."""

    @abstractmethod
    async def exists(self, key: str) -> bool: ...

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove the blob; removing a missing blob is not an error."""

    @abstractmethod
    async def list(self, prefix: str = "") -> list[str]:
        """Keys starting with `prefix`, sorted."""

    async def list_modified(self, prefix: str = "") -> dict[str, datetime]:
        """Keys starting with `prefix`, with when each was last written (UTC)."""
        raise NotImplementedError

    async def url(self, key: str, expires_s: int = 3600) -> str | None:
        """A URL anyone can download the blob from for a while, where the backend has one."""
        return None

    async def fetch_to(self, key: str, path: Path) -> Path:
        """The blob as a local file at `path`, downloaded unless already there (processes
        sharing the folder, such as workers' model caches, download it once)."""
        if not await asyncio.to_thread(path.is_file):
            await asyncio.to_thread(write_atomically, path, await self.get(key))
        return path

    async def put_content(
        self, data: bytes, prefix: str = "images", content_type: str | None = None
    ) -> tuple[str, str]:
        """Store bytes under their content hash unless already there; returns (sha256, key)."""
        sha = sha256_hex(data)
        key = content_key(sha, prefix)
        if not await self.exists(key):
            await self.put(key, data, content_type)
        return sha, key

    @abstractmethod
    async def open(self) -> None:
        """Acquire connections or folders; called by `async with`."""

    @abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename: a process reading `path` (or
    one killed while writing) never leaves or sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_key(key: str) -> str:
    if not key or key.startswith("/") or ".." in key.split("/"):
        raise ValueError(f"invalid blob key: {key!r}")
    return key


class LocalBlobStore(BlobStore):
    """Blobs as files below a folder; writes are atomic (temporary file, then rename)."""

    def __init__(self, root: Path):
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    async def open(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    async def close(self) -> None:
        """Nothing to release: every call opens and closes its own file."""

    async def put(self, key: str, data: bytes, content_type: str | None = None) -> None:
        await asyncio.to_thread(write_atomically, self._path(key), data)

    async def get(self, key: str) -> bytes:
        try:
            return await asyncio.to_thread(self._path(key).read_bytes)
        except (FileNotFoundError, IsADirectoryError):
            raise BlobNotFound(key) from None

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, missing_ok=True)

    def _list(self, prefix: str) -> list[str]:
        if not self.root.exists():
            return []
        keys = (
            p.relative_to(self.root).as_posix()
            for p in self.root.rglob("*")
            if p.is_file() and not p.name.startswith(".tmp-")
        )
        return sorted(k for k in keys if k.startswith(prefix))

    async def list(self, prefix: str = "") -> list[str]:
        return await asyncio.to_thread(self._list, prefix)

    def _list_modified(self, prefix: str) -> dict[str, datetime]:
        modified = {}
        for key in self._list(prefix):
            with contextlib.suppress(FileNotFoundError):  # removed meanwhile
                stamp = self._path(key).stat().st_mtime
                modified[key] = datetime.fromtimestamp(stamp, UTC)
        return modified

    async def list_modified(self, prefix: str = "") -> dict[str, datetime]:
        return await asyncio.to_thread(self._list_modified, prefix)


class S3BlobStore(BlobStore):
    """Blobs in an S3 bucket (AWS, MinIO, moto); the bucket is created when missing."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        max_connections: int = 32,
    ):
        self.bucket = bucket
        self._client_args: dict[str, Any] = {
            "region_name": region,
            "endpoint_url": endpoint_url,
            "aws_access_key_id": access_key_id,
            "aws_secret_access_key": secret_access_key,
        }
        self._max_connections = max_connections
        self._stack: AsyncExitStack | None = None
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            raise RuntimeError("S3BlobStore used outside `async with`")
        return self._client

    async def open(self) -> None:
        # Imported here: botocore costs a process about 35 MB, and a platform on a local
        # folder (the default) never needs it.
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session
        from botocore.exceptions import ClientError

        config = AioConfig(max_pool_connections=self._max_connections)
        self._stack = AsyncExitStack()
        self._client = await self._stack.enter_async_context(
            get_session().create_client("s3", config=config, **self._client_args)
        )
        try:
            await self._client.head_bucket(Bucket=self.bucket)
        except ClientError:
            await self._client.create_bucket(Bucket=self.bucket)

    async def close(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()
        self._stack = self._client = None

    async def put(self, key: str, data: bytes, content_type: str | None = None) -> None:
        extra = {"ContentType": content_type} if content_type else {}
        await self.client.put_object(Bucket=self.bucket, Key=_check_key(key), Body=data, **extra)

    async def get(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            response = await self.client.get_object(Bucket=self.bucket, Key=_check_key(key))
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
                raise BlobNotFound(key) from None
            raise
        async with response["Body"] as stream:
            return await stream.read()

    async def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            await self.client.head_object(Bucket=self.bucket, Key=_check_key(key))
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
                return False
            raise
        return True

    async def delete(self, key: str) -> None:
        await self.client.delete_object(Bucket=self.bucket, Key=_check_key(key))

    async def list(self, prefix: str = "") -> list[str]:
        keys: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            keys.extend(item["Key"] for item in page.get("Contents", []))
        return sorted(keys)

    async def list_modified(self, prefix: str = "") -> dict[str, datetime]:
        modified: dict[str, datetime] = {}
        paginator = self.client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                modified[item["Key"]] = item["LastModified"]
        return modified

    async def url(self, key: str, expires_s: int = 3600) -> str | None:
        return await self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": _check_key(key)},
            ExpiresIn=expires_s,
        )


def blob_store_from_settings(settings: Settings) -> BlobStore:
    """The store named by BLOB_STORE_URL: `s3://bucket` or `file:///path` (`file://var/blobs`
    is relative to the working folder)."""
    parsed = urlparse(settings.blob_store_url)
    if parsed.scheme == "s3":
        secret = settings.aws_secret_access_key
        return S3BlobStore(
            parsed.netloc,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.aws_region,
            access_key_id=settings.aws_access_key_id,
            secret_access_key=secret.get_secret_value() if secret else None,
        )
    return LocalBlobStore(Path(parsed.netloc + parsed.path))
