"""The serving side runs the model through LiteRT: a worker process never loads TensorFlow or
Keras (hundreds of megabytes it would hold for nothing)."""

import os
import signal
from pathlib import Path

from db.engine import Storage
from emobot.settings import Settings
from playground.botapi import BotAPIEmulator, BotAPIServer
from tests.worker.conftest import enqueue_photo, photo, start_worker_process, wait_until

# Imported by Python at start when on the path: reports, as the process exits, which of the
# heavy packages it had loaded.
SITECUSTOMIZE = """
import atexit, os, sys

def _report():
    heavy = sorted({m.split(".")[0] for m in sys.modules} & {"tensorflow", "keras"})
    print("HEAVY MODULES:", ",".join(heavy) or "none", flush=True)

# A service ends with os._exit (emobot.logs.exit_now), which skips atexit.
_exit = os._exit

def _report_then_exit(code):
    _report()
    _exit(code)

os._exit = _report_then_exit
atexit.register(_report)
"""


async def test_a_worker_answers_without_loading_tensorflow_or_keras(
    worker_settings: Settings,
    storage: Storage,
    botapi: tuple[BotAPIEmulator, BotAPIServer],
    tmp_path: Path,
) -> None:
    emulator, _ = botapi
    (tmp_path / "sitecustomize.py").write_text(SITECUSTOMIZE)
    path = os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH")) if p)
    await enqueue_photo(storage, photo("astronaut.jpg"), chat_id=41_001)
    process = await start_worker_process(worker_settings, PYTHONPATH=path)

    async def answered() -> bool:
        return any(c.chat_id == 41_001 and c.is_message for c in emulator.calls)

    await wait_until(answered, process, within=60)
    process.send_signal(signal.SIGTERM)
    output = (await process.communicate())[0].decode(errors="replace")
    assert process.returncode == 0, output[-3000:]
    assert "HEAVY MODULES: none" in output, output[-3000:]
