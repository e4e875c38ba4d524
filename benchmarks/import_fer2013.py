"""How long `emobot import-fer2013` takes for the whole archive, into the local store and
into S3 (moto's server on 127.0.0.1), each into a fresh database.

    .venv/bin/python -m benchmarks.import_fer2013 [--zip PATH] [--json out.json]

Needs PostgreSQL on 127.0.0.1:5432 (TEST_PG_DSN, as for the tests).
"""

import argparse
import asyncio
import json
import logging
import os
import platform
import socket
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
from moto.server import ThreadedMotoServer

from cli.importer import import_archive
from db.blobs import BlobStore, LocalBlobStore, S3BlobStore
from db.engine import make_engine, make_sessionmaker
from db.migrate import upgrade

logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto logs every request
PG_ADMIN_DSN = os.environ.get("TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


async def timed_import(archive: Path, store: BlobStore, concurrency: int) -> dict[str, float]:
    name = f"emobot_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    engine = make_engine(f"{base}/{name}")
    try:
        await upgrade(engine)
        sessions = make_sessionmaker(engine)
        async with store:
            started = time.perf_counter()
            first = await import_archive(archive, sessions, store, concurrency=concurrency)
            first_s = time.perf_counter() - started
            started = time.perf_counter()
            again = await import_archive(archive, sessions, store, concurrency=concurrency)
            again_s = time.perf_counter() - started
    finally:
        await engine.dispose()
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()
    return {
        "files": first.report.files,
        "added": first.added,
        "seconds": round(first_s, 1),
        "images_per_s": round(first.added / first_s, 1),
        "second_run_added": again.added,
        "second_run_seconds": round(again_s, 1),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zip", type=Path, default=Path("../shared/data/fer2013.zip"))
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["local"] = await timed_import(
            args.zip, LocalBlobStore(Path(tmp) / "blobs"), args.concurrency
        )
    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    try:
        store = S3BlobStore(
            "bench",
            endpoint_url=f"http://127.0.0.1:{port}",
            access_key_id="x",
            secret_access_key="x",
        )
        results["moto"] = await timed_import(args.zip, store, args.concurrency)
    finally:
        moto.stop()

    print(f"{'store':<6} {'files':>7} {'added':>7} {'seconds':>8} {'img/s':>8} {'2nd run s':>10}")
    for name, r in results.items():
        print(
            f"{name:<6} {r['files']:>7,} {r['added']:>7,} {r['seconds']:>8} "
            f"{r['images_per_s']:>8} {r['second_run_seconds']:>10}"
        )
    if args.json:
        meta = {"cpus": os.cpu_count(), "machine": platform.machine(), "load": os.getloadavg()}
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
