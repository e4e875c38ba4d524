"""A worker process's /metrics, /healthz and /readyz (METRICS_PORT): counters and histograms
move while it answers; it turns unready when its PostgreSQL stops, and ready again after."""

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from db.engine import Storage, make_engine
from db.migrate import upgrade
from emobot.settings import Settings
from playground.botapi import BotAPIEmulator, BotAPIServer
from tests.conftest import free_port
from tests.worker.conftest import enqueue_key, enqueue_photo, photo, start_worker_process

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(http: aiohttp.ClientSession, port: int) -> Samples:
    async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
        assert response.status == 200
        body = await response.text()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def get_json(http: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, Any]]:
    async with http.get(url) as response:
        return response.status, await response.json()


async def wait_ready(
    http: aiohttp.ClientSession, port: int, process: asyncio.subprocess.Process, want: int
) -> dict[str, Any]:
    """Poll /readyz until it answers `want` (the worker imports TensorFlow first)."""
    body: dict[str, Any] = {}
    async with asyncio.timeout(60):
        while True:
            assert process.returncode is None, (await process.communicate())[0].decode()[-3000:]
            try:
                status, body = await get_json(http, f"http://127.0.0.1:{port}/readyz")
            except aiohttp.ClientConnectionError:
                status = 0
            if status == want:
                return body
            await asyncio.sleep(0.2)


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.communicate(), 30)


async def test_metrics_move_while_a_worker_process_answers(
    worker_settings: Settings, storage: Storage, botapi: tuple[BotAPIEmulator, BotAPIServer]
) -> None:
    emulator, _ = botapi
    # A retry waiting an hour: counted as queued, claimed by nobody during the test.
    _, key = await storage.blobs.put_content(photo("astronaut.jpg"))
    waiting = await enqueue_key(storage.sessions, key, chat_id=1)
    async with storage.sessions.begin() as session:
        await session.execute(
            text(
                "UPDATE prediction_requests SET locked_until = now() + interval '1 hour', "
                "created_at = now() - interval '90 seconds' WHERE id = :id"
            ),
            {"id": waiting},
        )

    port = free_port()
    process = await start_worker_process(worker_settings, METRICS_PORT=port)
    try:
        async with aiohttp.ClientSession() as http:
            ready = await wait_ready(http, port, process, 200)
            assert ready["checks"] == {"database": "ok", "model": "ok"}
            assert (await get_json(http, f"http://127.0.0.1:{port}/healthz"))[0] == 200
            before = await scrape(http, port)
            assert value(before, "emobot_queue_depth", status="queued") == 1
            assert 90 <= value(before, "emobot_queue_oldest_age_seconds") < 200
            assert value(before, "emobot_worker_model_version") == 0  # MODEL_PATH, no registry

            one_face = [
                await enqueue_photo(storage, photo("astronaut.jpg"), chat_id=chat)
                for chat in (11, 12, 13)
            ]
            await enqueue_photo(storage, photo("coffee.jpg"), chat_id=14)
            await enqueue_key(storage.sessions, "photos/missing.jpg", chat_id=15)
            for chat in (11, 12, 13, 14, 15):
                await emulator.wait_for(chat, lambda call: call.is_message, 30)
            await asyncio.sleep(0.5)  # the last reply's record, and its counter
            after = await scrape(http, port)
    finally:
        await stop(process)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("emobot_worker_requests_total", outcome="answered") == len(one_face)
    assert moved("emobot_worker_requests_total", outcome="no_face") == 1
    assert moved("emobot_worker_requests_total", outcome="unreadable") == 1
    assert moved("emobot_worker_request_duration_seconds_count") == 4
    # Every request went through some batch; each batch through every stage.
    assert moved("emobot_worker_batch_size_sum") == 5
    batches = moved("emobot_worker_batch_size_count")
    assert batches >= 1
    for stage in ("fetch", "detect", "model", "save", "reply"):
        assert moved("emobot_worker_stage_duration_seconds_count", stage=stage) == batches
        assert moved("emobot_worker_stage_duration_seconds_sum", stage=stage) > 0
    # Photos through the model: three with one face, one with none.
    assert moved("emobot_worker_faces_per_photo_count") == 4
    assert moved("emobot_worker_faces_per_photo_sum") == 3
    assert moved("emobot_worker_faces_per_photo_bucket", le="0.0") == 1
    assert value(after, "emobot_queue_depth", status="queued") == 1  # the one still waiting
    assert value(after, "emobot_queue_depth", status="processing") == 0
    assert value(after, "process_resident_memory_bytes") > 0


async def embedded_postgres(pgdata: Path, action: str) -> str:
    """Start or stop the embedded server in `pgdata`, each time from a process of its own, as
    `emobot run` does: the library keeps one handle per folder and process, which does not
    start again once stopped. Stopping takes a handle to the running server first."""
    steps = {"start": "print(server.start())", "stop": "server.start(); server.stop()"}
    script = (
        "import sys; from pathlib import Path; from cli.supervisor import EmbeddedPostgres; "
        f"server = EmbeddedPostgres(Path(sys.argv[1])); {steps[action]}"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, str(pgdata), stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    assert process.returncode == 0
    return out.decode().strip()


async def test_readyz_turns_unready_when_postgresql_stops(
    worker_settings: Settings, tmp_path: Path
) -> None:
    """The worker's own PostgreSQL (embedded, in tmp_path), stopped and started again."""
    pgdata = tmp_path / "pg"
    url = await embedded_postgres(pgdata, "start")
    try:
        engine = make_engine(url)
        await upgrade(engine)
        await engine.dispose()
        port = free_port()
        process = await start_worker_process(
            worker_settings, DATABASE_URL=url, METRICS_PORT=port, POLL_SECONDS=0.2
        )
        try:
            async with aiohttp.ClientSession() as http:
                await wait_ready(http, port, process, 200)
                await embedded_postgres(pgdata, "stop")
                body = await wait_ready(http, port, process, 503)
                assert body["status"] == "unready"
                assert body["checks"]["model"] == "ok"
                assert body["checks"]["database"] != "ok"
                # Alive all the same: no reason to restart it.
                assert (await get_json(http, f"http://127.0.0.1:{port}/healthz"))[0] == 200
                # The queue metrics are left out rather than stale; the scrape still works.
                samples = await scrape(http, port)
                assert ("emobot_queue_depth", frozenset({("status", "queued")})) not in samples
                assert "emobot_worker_model_version" in {name for name, _ in samples}

                assert await embedded_postgres(pgdata, "start") == url
                body = await wait_ready(http, port, process, 200)
                assert body["checks"] == {"database": "ok", "model": "ok"}
        finally:
            await stop(process)
    finally:
        await embedded_postgres(pgdata, "stop")
