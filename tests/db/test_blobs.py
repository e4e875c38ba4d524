"""One contract, two backends: a local folder and S3 (moto's server on 127.0.0.1)."""

import pytest

from db.blobs import BlobNotFound, BlobStore, LocalBlobStore, S3BlobStore, content_key, sha256_hex


async def test_put_get_exists_delete(blob_store: BlobStore) -> None:
    assert not await blob_store.exists("a/b.bin")
    await blob_store.put("a/b.bin", b"\x00\x01payload", "application/octet-stream")
    assert await blob_store.exists("a/b.bin")
    assert await blob_store.get("a/b.bin") == b"\x00\x01payload"
    await blob_store.put("a/b.bin", b"new")  # overwrite
    assert await blob_store.get("a/b.bin") == b"new"
    await blob_store.delete("a/b.bin")
    assert not await blob_store.exists("a/b.bin")
    await blob_store.delete("a/b.bin")  # deleting twice is fine


async def test_get_missing_raises_blob_not_found(blob_store: BlobStore) -> None:
    with pytest.raises(BlobNotFound):
        await blob_store.get("missing/key")


async def test_list_by_prefix_is_sorted(blob_store: BlobStore) -> None:
    for key in ("x/2", "x/1", "y/1", "x/sub/3"):
        await blob_store.put(key, key.encode())
    assert await blob_store.list("x/") == ["x/1", "x/2", "x/sub/3"]
    assert await blob_store.list("z/") == []
    assert len(await blob_store.list()) == 4


async def test_content_addressed_put_stores_once(blob_store: BlobStore) -> None:
    sha, key = await blob_store.put_content(b"same bytes")
    assert sha == sha256_hex(b"same bytes") and key == content_key(sha)
    assert await blob_store.put_content(b"same bytes") == (sha, key)
    assert await blob_store.list("images/") == [key]


async def test_rejects_keys_that_escape(blob_store: BlobStore) -> None:
    for key in ("../etc/passwd", "/abs", ""):
        with pytest.raises(ValueError):
            await blob_store.put(key, b"x")


async def test_download_url(s3_store: S3BlobStore, local_store: LocalBlobStore) -> None:
    import aiohttp

    await s3_store.put("doc/export.zip", b"zip bytes")
    url = await s3_store.url("doc/export.zip")
    assert url is not None
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        assert await response.read() == b"zip bytes"
    assert await local_store.url("doc/export.zip") is None


async def test_local_writes_leave_no_temporary_files(local_store: LocalBlobStore) -> None:
    await local_store.put("k/1", b"x" * 100_000)
    assert [p.name for p in (local_store.root / "k").iterdir()] == ["1"]
