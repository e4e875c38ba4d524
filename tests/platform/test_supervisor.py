"""`emobot run` and its supervisor: real child processes, a real embedded PostgreSQL."""

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cli.supervisor import SHIPPED_MODEL, Child, Supervisor
from db.blobs import S3BlobStore
from db.registry import list_models
from emobot.settings import Settings
from ml.inference import Classifier, flatbuffer_key, flatbuffer_path
from ml.keras_classifier import PARITY_TOLERANCE, parity_faces
from tests.conftest import child_env, free_port
from tests.platform.conftest import start_emobot_run

ROOT = Path(__file__).resolve().parents[2]


async def test_restarts_a_crashing_child_with_backoff_and_stops_the_rest() -> None:
    lines: list[tuple[str, str]] = []
    crash = Child(
        "crash", [sys.executable, "-c", "print('up'); raise SystemExit(3)"], dict(os.environ)
    )
    sleeper = Child(
        "sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], dict(os.environ)
    )
    supervisor = Supervisor(
        [crash, sleeper], base_backoff=0.2, on_output=lambda n, line: lines.append((n, line))
    )
    task = asyncio.create_task(supervisor.run())
    await asyncio.sleep(2.5)
    started = time.monotonic()
    supervisor.stop()
    await asyncio.wait_for(task, 10)

    # Backoff 0.2, 0.4, 0.8 s…: a few restarts in 2.5 s, not a busy loop.
    assert 3 <= crash.starts <= 6, crash.starts
    # Each start crashed; on a busy machine the last may still be starting when the stop
    # comes, and is ended by the SIGTERM instead.
    assert set(crash.exits[:-1]) == {3} and crash.exits[-1] in (3, -signal.SIGTERM)
    assert lines.count(("crash", "up")) == crash.starts
    # The healthy child ran once and was stopped by SIGTERM, promptly.
    assert sleeper.starts == 1
    assert sleeper.exits == [-signal.SIGTERM]
    assert time.monotonic() - started < 5


def _emobot(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def _platform_env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "BOT_TOKEN", "TELEGRAM_API_URL", "BLOB_STORE_URL")
    }
    return {**env, "DATA_DIR": str(tmp_path / "var"), "BLOB_STORE_URL": f"file://{tmp_path}/blobs"}


def _start_platform(tmp_path: Path, port: int) -> tuple[subprocess.Popen[str], list[str]]:
    """`emobot run` with no processes: the embedded database and the playground only."""
    return start_emobot_run(
        ["--processes=", "--port", str(port)], _platform_env(tmp_path), tmp_path, 60
    )


def _stop_platform(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)  # what Ctrl-C sends
    out, _ = process.communicate(timeout=30)
    assert process.returncode == 0, out
    return out


async def test_run_starts_embedded_database_and_playground_and_keeps_data(tmp_path: Path) -> None:
    port = free_port()
    pgdata = tmp_path / "var" / "pg"
    process, _ = _start_platform(tmp_path, port)
    try:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/") as r:
            page = await r.text()
        assert "emobot playground" in page
        db = await asyncpg.connect(host=str(pgdata), user="postgres", database="postgres")
        models = await db.fetch("SELECT version, is_active, blob_key FROM models")
        assert [(m["version"], m["is_active"]) for m in models] == [(1, True)]
        assert (tmp_path / "blobs" / models[0]["blob_key"]).is_file()
        await db.execute("INSERT INTO users (id, first_name) VALUES (777, 'kept')")
        await db.close()
    finally:
        out = _stop_platform(process)
    assert "platform stopped" in out
    # The embedded server was stopped with the supervisor.
    assert not (pgdata / "postmaster.pid").exists()

    process, _ = _start_platform(tmp_path, port)
    try:
        db = await asyncpg.connect(host=str(pgdata), user="postgres", database="postgres")
        assert await db.fetchval("SELECT first_name FROM users WHERE id = 777") == "kept"
        # The shipped model is registered once, not again on every start.
        assert await db.fetchval("SELECT count(*) FROM models") == 1
        await db.close()
    finally:
        _stop_platform(process)


def test_run_refuses_unknown_process_names() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cli", "run", "--processes", "bot,webserver"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert "unknown process webserver" in result.stdout


async def test_prepare_only_registers_the_shipped_model_once_in_postgres_and_s3(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    s3_store: S3BlobStore,
    tmp_path: Path,
) -> None:
    env = {
        **child_env(settings),
    }
    for _ in range(2):
        result = _emobot(env, "run", "--prepare-only")
        assert result.returncode == 0, result.stderr
    async with sessions() as session:
        models = await list_models(session)
    assert [(m.version, m.is_active) for m in models] == [(1, True)]
    assert await s3_store.get(models[0].blob_key) == SHIPPED_MODEL.read_bytes()
    lite_key = flatbuffer_key(models[0].blob_key)
    assert await s3_store.get(lite_key) == flatbuffer_path(SHIPPED_MODEL).read_bytes()

    # A model registered before serving ran LiteRT has no flatbuffer: preparing adds it.
    await s3_store.delete(lite_key)
    result = _emobot(env, "run", "--prepare-only")
    assert result.returncode == 0, result.stderr
    assert "model 1: LiteRT flatbuffer added" in result.stderr
    added = tmp_path / "added.tflite"
    added.write_bytes(await s3_store.get(lite_key))
    faces = parity_faces()
    expected = Classifier.load(SHIPPED_MODEL).predict(faces)
    assert np.abs(Classifier.load(added).predict(faces) - expected).max() <= PARITY_TOLERANCE


class Output:
    """The rest of a child's output, read in a thread so that its pipe never fills up."""

    def __init__(self, process: subprocess.Popen[str], seen: list[str]) -> None:
        self.lines = list(seen)
        assert process.stdout is not None
        self._thread = threading.Thread(
            target=lambda: self.lines.extend(process.stdout or ()), daemon=True
        )
        self._thread.start()

    def text(self) -> str:
        return "".join(self.lines)

    async def wait_for(self, part: str, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                while part not in self.text():  # noqa: ASYNC110 - lines come from a thread
                    await asyncio.sleep(0.1)
        except TimeoutError:
            raise AssertionError(
                f"{part!r} not seen in {seconds} s:\n{self.text()[-4000:]}"
            ) from None


async def _chat(http: aiohttp.ClientSession, port: int) -> dict[str, Any]:
    async with http.get(f"http://127.0.0.1:{port}/api/chat") as response:
        return await response.json()


async def _bot_answers(http: aiohttp.ClientSession, port: int, text: str, seconds: float) -> None:
    """Sends `text` from the page and waits for one more message from the bot."""

    def from_bot(chat: dict[str, Any]) -> int:
        return sum(bool(m.get("from", {}).get("is_bot")) for m in chat["messages"])

    before = from_bot(await _chat(http, port))
    async with http.post(f"http://127.0.0.1:{port}/api/send", json={"text": text}) as r:
        assert r.status == 200
    async with asyncio.timeout(seconds):
        while from_bot(await _chat(http, port)) == before:  # noqa: ASYNC110 - over HTTP
            await asyncio.sleep(0.2)


def _postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().split()[0])


async def test_run_starts_a_killed_embedded_postgres_again_and_the_bot_answers(
    tmp_path: Path,
) -> None:
    port = free_port()
    pgdata = tmp_path / "var" / "pg"
    process, seen = start_emobot_run(
        ["--processes=bot", "--port", str(port)], _platform_env(tmp_path), tmp_path, 60
    )
    output = Output(process, seen)
    try:
        async with aiohttp.ClientSession() as http:
            async with asyncio.timeout(90):
                while not (await _chat(http, port))["bot_ready"]:
                    assert process.poll() is None, output.text()
                    await asyncio.sleep(0.2)
            await _bot_answers(http, port, "/help", 30)

            first = _postmaster_pid(pgdata)
            os.kill(first, signal.SIGKILL)
            await output.wait_for("the embedded PostgreSQL is running again", 60)
            assert _postmaster_pid(pgdata) != first
            db = await asyncpg.connect(host=str(pgdata), user="postgres", database="postgres")
            assert await db.fetchval("SELECT count(*) FROM models") == 1  # the same data
            await db.close()
            # The bot reconnects on its own (the pool's pre-ping): answered as before.
            try:
                await _bot_answers(http, port, "/help", 30)
            except TimeoutError:
                raise AssertionError(
                    "no answer after the restart:\n" + output.text()[-4000:]
                ) from None
    finally:
        process.send_signal(signal.SIGINT)
        code = await asyncio.to_thread(process.wait, 30)
    assert code == 0, output.text()[-3000:]
    assert "not running; starting it again" in output.text()
    assert not (pgdata / "postmaster.pid").exists()  # the restarted one stopped with the rest


async def test_ctrl_c_stops_an_idle_platform_promptly(tmp_path: Path) -> None:
    """Every process, and the page's long poll open as a browser holds it: nothing may wait
    for it. The bound is generous (a busy machine); the time is printed (`-s`)."""
    port = free_port()
    process, seen = start_emobot_run(["--port", str(port)], _platform_env(tmp_path), tmp_path, 90)
    output = Output(process, seen)
    poll: asyncio.Task[aiohttp.ClientResponse] | None = None
    async with aiohttp.ClientSession() as http:
        try:
            for name in ("bot", "worker", "trainer"):
                await output.wait_for(f"{name}: started", 120)
            # The bot's start-up (its first poll, its menus) changes the chat after "started":
            # open the long poll again until one is left waiting, as on an idle page.
            for _ in range(30):
                version = (await _chat(http, port))["version"]
                poll = asyncio.create_task(
                    http.get(f"http://127.0.0.1:{port}/api/chat?since={version}")
                )
                await asyncio.sleep(1)
                if not poll.done():
                    break
                (await poll).release()
            assert not poll.done()
        finally:
            started = time.monotonic()
            process.send_signal(signal.SIGINT)  # what Ctrl-C sends
            code = await asyncio.to_thread(process.wait, 60)
            took = time.monotonic() - started
        if poll is not None:
            poll.cancel()
    print(f"Ctrl-C to exit: {took:.2f} s")
    assert code == 0, output.text()[-3000:]
    for name in ("bot", "worker", "trainer"):
        assert f"{name} stopped (exit 0)" in output.text()
    assert output.lines[-1].rstrip().endswith("platform stopped")
    assert took < 10, output.text()[-3000:]
