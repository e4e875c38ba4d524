"""The whole platform behind the playground page: `emobot run` (embedded PostgreSQL, local
blobs, the playground because BOT_TOKEN is empty) with the real bot and worker processes, and a
face photo uploaded in headless Chromium answered by the worker."""

import contextlib
import os
import signal
import socket
import subprocess
from pathlib import Path

import aiohttp
from playwright.async_api import async_playwright, expect

from tests.conftest import free_port
from tests.platform.conftest import start_emobot_run
from tests.platform.test_playground_page import chromium_path

PHOTOS = Path(__file__).parents[1] / "data" / "faces"


def free_port_range(count: int) -> int:
    """The first of `count` consecutive free ports."""
    while True:
        base = free_port()
        try:
            with contextlib.ExitStack() as stack:
                for port in range(base, base + count):
                    stack.enter_context(socket.create_server(("127.0.0.1", port)))
        except OSError:
            continue
        return base


def start_platform(tmp_path: Path, port: int, metrics_port: int) -> subprocess.Popen[str]:
    """`emobot run` with bot and worker, started as `make run` does, with no settings at all
    but an empty BOT_TOKEN (as an `.env` copied from `.env.example` has it) and METRICS_PORT."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "TELEGRAM_API_URL", "BLOB_STORE_URL", "ADMIN_IDS")
    }
    env.update(
        BOT_TOKEN="",
        DATA_DIR=str(tmp_path / "var"),
        BLOB_STORE_URL="file://var/blobs",
        METRICS_PORT=str(metrics_port),
    )
    process, _ = start_emobot_run(
        ["--processes", "bot,worker", "--port", str(port)], env, tmp_path, 90
    )
    return process


async def get_text(http: aiohttp.ClientSession, port: int, path: str) -> str:
    async with http.get(f"http://127.0.0.1:{port}{path}") as response:
        assert response.status == 200, path
        return await response.text()


async def test_a_photo_uploaded_in_the_browser_gets_the_workers_answer(tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port_range(2)
    chromium = chromium_path()
    process = start_platform(tmp_path, port, metrics_port)
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            context = await browser.new_context(
                locale="en-US", viewport={"width": 900, "height": 900}
            )
            page = await context.new_page()
            await page.goto(f"http://127.0.0.1:{port}/")

            # The bot process answers a command typed on the page.
            await page.click("#commands button[data-command='/start']")
            await expect(page.locator(".msg.bot")).not_to_have_count(0, timeout=30_000)

            # A one-face photo: the bot queues it, the worker answers with all four classes.
            await page.set_input_files("#file", str(PHOTOS / "astronaut.jpg"))
            answer = page.locator(".msg.bot .text", has_text="%")
            await expect(answer).to_have_count(1, timeout=90_000)
            assert (await answer.inner_text()).count("%") == 4

            # Three faces: an annotated picture from the worker.
            pictures = page.locator(".msg.bot > img")  # not the quoted photos of replies
            await page.set_input_files("#file", str(PHOTOS / "three_faces.jpg"))
            await expect(pictures).to_have_count(1, timeout=90_000)
            assert await pictures.evaluate("img => img.complete && img.naturalWidth") > 0

            shot = tmp_path / "playground-platform.png"
            await page.screenshot(path=str(shot), full_page=True)
            assert shot.read_bytes().startswith(b"\x89PNG")
            await browser.close()

        # Each child on its own port: the bot's on METRICS_PORT, the worker's on the next.
        async with aiohttp.ClientSession() as http:
            bot_metrics = await get_text(http, metrics_port, "/metrics")
            worker_metrics = await get_text(http, metrics_port + 1, "/metrics")
            assert await get_text(http, metrics_port + 1, "/readyz")
        assert 'emobot_bot_updates_total{type="message"}' in bot_metrics
        assert "emobot_worker_" not in bot_metrics
        assert 'emobot_worker_requests_total{outcome="answered"} 2.0' in worker_metrics
    finally:
        process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        out, _ = process.communicate(timeout=60)
    assert process.returncode == 0, out
    assert "platform stopped" in out
