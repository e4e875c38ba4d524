"""The serving side runs the model through LiteRT and talks to Telegram through
runtime.botclient: a worker process never loads TensorFlow, Keras or aiogram, nor an idle trainer
aiogram (hundreds of megabytes they would hold for nothing)."""

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from db.engine import Storage
from emobot.settings import Settings
from playground.botapi import BotAPIEmulator, BotAPIServer
from tests.conftest import child_env
from tests.worker.conftest import ROOT, enqueue_photo, photo, start_worker_process, wait_until

# Imported by Python at start when on the path: reports, as the process exits, which of the
# heavy packages it had loaded.
SITECUSTOMIZE = """
import atexit, os, sys

def _report():
    heavy = sorted({m.split(".")[0] for m in sys.modules} & {"tensorflow", "keras", "aiogram"})
    print("HEAVY MODULES:", ",".join(heavy) or "none", flush=True)

# A service ends with os._exit (emobot.logs.exit_now), which skips atexit.
_exit = os._exit

def _report_then_exit(code):
    _report()
    _exit(code)

os._exit = _report_then_exit
atexit.register(_report)
"""


def _path_with_report(folder: Path) -> str:
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH")) if p)


async def test_a_worker_answers_without_loading_tensorflow_keras_or_aiogram(
    worker_settings: Settings,
    storage: Storage,
    botapi: tuple[BotAPIEmulator, BotAPIServer],
    tmp_path: Path,
) -> None:
    emulator, _ = botapi
    path = _path_with_report(tmp_path)
    await enqueue_photo(storage, photo("astronaut.jpg"), chat_id=41_001)
    process = await start_worker_process(worker_settings, PYTHONPATH=path)

    async def answered() -> bool:
        return any(c.chat_id == 41_001 and c.is_message for c in emulator.calls)

    await wait_until(answered, process, within=60)
    process.send_signal(signal.SIGTERM)
    output = (await process.communicate())[0].decode(errors="replace")
    assert process.returncode == 0, output[-3000:]
    assert "HEAVY MODULES: none" in output, output[-3000:]


async def test_an_idle_trainer_does_not_load_aiogram(
    settings: Settings, botapi: tuple[BotAPIEmulator, BotAPIServer], tmp_path: Path
) -> None:
    """The trainer reports through the small client too (tests/trainer/test_service.py sends
    its reports against the fake Bot API); TensorFlow comes with its first run."""
    env = child_env(
        settings,
        TELEGRAM_API_URL=botapi[1].url,
        DATA_DIR=str(tmp_path / "var"),
        PYTHONPATH=_path_with_report(tmp_path),
    )
    trainer = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "cli", "trainer"],
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert trainer.stdout is not None
    lines: list[bytes] = []
    try:
        async with asyncio.timeout(60):
            while b"trainer: started" not in (line := await trainer.stdout.readline()):
                assert line, b"".join(lines).decode(errors="replace")[-3000:]  # it exited
                lines.append(line)
        trainer.send_signal(signal.SIGTERM)
        output = (await trainer.communicate())[0].decode(errors="replace")
    finally:
        if trainer.returncode is None:
            trainer.kill()
    assert trainer.returncode == 0, output[-3000:]
    assert "HEAVY MODULES: none" in output, output[-3000:]
