"""How much memory the platform holds, run as a newcomer runs it (`emobot run`, no settings).

`emobot run` starts with an embedded PostgreSQL and the playground in a fresh folder; the
benchmark then reads each process's resident memory (VmRSS, and VmHWM, its peak) from /proc:
1. idle, once the bot has answered /start and the worker has loaded its model;
2. after N photos (1280×960, one face each) sent through the playground page's endpoint
   and answered by the worker;
3. the worker's start to first answer: the worker is killed, the supervisor starts a new one,
   a photo is sent as soon as it runs, and the time from the new process's start to the
   answer in the chat is measured;
4. with `--train`, the trainer while it trains (FER2013 imported, `/retrain epochs=1
   balance=200`), sampled every half second;
5. what the serving and the training install add to Python (`emobot[serve]`, `emobot[train]`:
   the installed files of every distribution they bring, from this environment's metadata), the
   images' size less their base image, as no Docker engine runs here.

    .venv/bin/python -m benchmarks.memory [--photos 1000] [--rate 20] [--train] [--json PATH]
"""

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "tests" / "data" / "faces" / "group_one.jpg"  # public domain, 1280×960
SHARED = ROOT.parent / "shared" / "data"
PROCESSES = ("bot", "worker", "trainer")
RECEIPT = "Got it"  # the bot's "working on it" note, not the answer (English)
MB = 1024


def status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in kB (zeros when it is gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {"VmRSS": 0, "VmHWM": 0}
    values = dict(line.split(":", 1) for line in lines if ":" in line)
    return {k: int(values[k].split()[0]) for k in ("VmRSS", "VmHWM")}


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def started_at(pid: int) -> float:
    """The wall-clock time a process started (from /proc, in clock ticks after boot)."""
    ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    boot = next(
        int(line.split()[1])
        for line in Path("/proc/stat").read_text().splitlines()
        if line.startswith("btime")
    )
    return boot + ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class Platform:
    """`emobot run` in a folder of its own, and the pids of what it started."""

    folder: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.folder / "run.log"

    def start(self, extra: dict[str, str]) -> None:
        env = {
            **os.environ,
            "DATA_DIR": str(self.folder / "var"),
            "BLOB_STORE_URL": f"file://{self.folder / 'var' / 'blobs'}",
            "FER2013_ZIP": str(SHARED / "fer2013.zip"),
            "FERPLUS_CSV": str(SHARED / "ferplus" / "fer2013_ferplus_votes.csv"),
            "REAL_PHOTOS": str(self.folder / "none"),  # no protocol runs after a training
            **extra,
        }
        for name in ("DATABASE_URL", "BOT_TOKEN", "METRICS_PORT"):
            env.pop(name, None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli", "run", "--port", str(self.port)],
            cwd=ROOT,
            env=env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )

    def pids(self) -> dict[str, int]:
        """bot, worker, trainer: their pids; postgres: the server's processes (summed)."""
        assert self.process is not None
        found: dict[str, int] = {"supervisor": self.process.pid}
        for pid in children(self.process.pid):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            words = [a.decode(errors="replace") for a in argv]
            for name in PROCESSES:
                if name in words:
                    found[name] = pid
        return found

    def postgres_kb(self) -> int:
        """Resident memory of the embedded server's processes: its postmaster (found by its
        data folder) and the postmaster's children. They share pages, so this overstates;
        reported apart from ours."""
        pgdata = str(self.folder / "var" / "pg").encode()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                if pgdata in (proc / "cmdline").read_bytes():
                    master = int(proc.name)
                    return sum(status(p)["VmRSS"] for p in [master, *children(master)])
            except OSError:
                continue
        return 0

    def stop(self) -> float:
        assert self.process is not None
        started = time.perf_counter()
        self.process.send_signal(signal.SIGINT)
        self.process.wait(60)
        return time.perf_counter() - started


class Chat:
    """The playground page's endpoints, as the page uses them."""

    def __init__(self, session: aiohttp.ClientSession, base: str):
        self.session = session
        self.base = base
        self.headers = {"Accept-Language": "en"}

    async def snapshot(self) -> dict[str, Any]:
        async with self.session.get(f"{self.base}/api/chat") as response:
            return await response.json()

    async def send(self, text: str) -> None:
        async with self.session.post(
            f"{self.base}/api/send", json={"text": text}, headers=self.headers
        ) as response:
            response.raise_for_status()

    async def photo(self, data: bytes) -> None:
        form = aiohttp.FormData()
        form.add_field("photo", data, filename="photo.jpg", content_type="image/jpeg")
        async with self.session.post(
            f"{self.base}/api/photos", data=form, headers=self.headers
        ) as response:
            response.raise_for_status()

    async def answers(self) -> int:
        """Bot messages that reply to a photo and are not the receipt."""
        count = 0
        for message in (await self.snapshot())["messages"]:
            quoted = message.get("reply_to_message") or {}
            text = message.get("text") or message.get("caption") or ""
            if message["from"]["is_bot"] and "photo" in quoted and not text.startswith(RECEIPT):
                count += 1
        return count

    async def wait_for(self, predicate: Any, within: float, what: str) -> None:
        deadline = time.monotonic() + within
        while not await predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {what} within {within:.0f} s")
            await asyncio.sleep(0.5)


def sample(run: Platform) -> dict[str, dict[str, float]]:
    out = {name: status(pid) for name, pid in run.pids().items()}
    table = {
        name: {"rss_mb": v["VmRSS"] / MB, "peak_mb": v["VmHWM"] / MB} for name, v in out.items()
    }
    table["postgres"] = {"rss_mb": run.postgres_kb() / MB, "peak_mb": float("nan")}
    return table


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="emobot-memory-") as tmp:
        run = Platform(Path(tmp), args.port)
        run.start({"MAX_QUEUED_PER_USER": str(args.photos + 10), "LOG_LEVEL": "WARNING"})
        result: dict[str, Any] = {}
        try:
            async with aiohttp.ClientSession(f"http://127.0.0.1:{args.port}") as session:
                chat = Chat(session, "")
                await asyncio.sleep(2)

                async def page_up() -> bool:
                    try:
                        return bool((await chat.snapshot())["bot_ready"])
                    except aiohttp.ClientError:
                        return False

                await chat.wait_for(page_up, 180, "playground")
                await chat.send("/start")

                async def greeted() -> bool:
                    return any(m["from"]["is_bot"] for m in (await chat.snapshot())["messages"])

                await chat.wait_for(greeted, 60, "answer to /start")
                await asyncio.sleep(args.settle)
                result["idle"] = sample(run)
                print_table("idle", result["idle"])

                photo = PHOTO.read_bytes()
                started = time.perf_counter()
                for i in range(args.photos):
                    await chat.photo(photo)
                    await asyncio.sleep(
                        max(0.0, started + (i + 1) / args.rate - time.perf_counter())
                    )

                async def all_answered() -> bool:
                    return await chat.answers() >= args.photos

                await chat.wait_for(all_answered, 600, f"{args.photos} answers")
                result["answered_in_s"] = round(time.perf_counter() - started, 1)
                await asyncio.sleep(args.settle)
                result[f"after_{args.photos}_photos"] = sample(run)
                print_table(f"after {args.photos} photos", result[f"after_{args.photos}_photos"])

                result["worker_start_to_first_answer_s"] = await first_answer(run, chat, photo)
                print(f"worker start → first answer: {result['worker_start_to_first_answer_s']} s")
                if args.train:
                    result["training"] = await during_training(run, chat)
                    print_table("while training", result["training"])
        finally:
            result["stop_seconds"] = round(run.stop(), 1)
        return result


async def first_answer(run: Platform, chat: Chat, photo: bytes) -> float:
    """Kill the worker, send a photo as soon as the supervisor's new worker runs, and time
    the answer from that process's start."""
    before = await chat.answers()
    old = run.pids()["worker"]
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while (new := run.pids().get("worker")) in (None, old):
        if time.monotonic() > deadline:
            raise TimeoutError("the supervisor did not start a new worker")
        await asyncio.sleep(0.01)
    await chat.photo(photo)

    async def answered() -> bool:
        return await chat.answers() > before

    await chat.wait_for(answered, 120, "answer from the new worker")
    return round(time.time() - started_at(new), 2)


async def during_training(run: Platform, chat: Chat) -> dict[str, dict[str, float]]:
    """Import FER2013 into the platform's database, ask for a short training, and keep the
    largest resident memory of each process seen while it runs."""
    url = f"postgresql+asyncpg://postgres@/postgres?host={run.folder / 'var' / 'pg'}"
    env = {**os.environ, "DATABASE_URL": url, "DATA_DIR": str(run.folder / "var")}
    env["BLOB_STORE_URL"] = f"file://{run.folder / 'var' / 'blobs'}"
    importer = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "cli", "import-fer2013", str(SHARED / "fer2013.zip")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    assert await importer.wait() == 0, "the FER2013 import failed"
    await chat.send("/retrain epochs=1 balance=200")
    peak: dict[str, dict[str, float]] = {}
    deadline = time.monotonic() + 1200
    while time.monotonic() < deadline:
        for name, values in sample(run).items():
            if values["rss_mb"] >= peak.get(name, {"rss_mb": -1.0})["rss_mb"]:
                peak[name] = values
        texts = [
            m.get("text") or m.get("caption") or "" for m in (await chat.snapshot())["messages"]
        ]
        if any("balanced accuracy" in t.lower() or "failed" in t.lower() for t in texts[-3:]):
            break
        await asyncio.sleep(0.5)
    return peak


def install_sizes() -> dict[str, dict[str, float]]:
    """Megabytes of installed files that `pip install emobot[extra]` brings, per extra, and
    its largest distributions."""
    from importlib import metadata

    from tests.test_packaging import closure

    def size(name: str) -> int:
        files = metadata.distribution(name).files or []
        return sum(f.locate().stat().st_size for f in files if f.locate().is_file())

    sizes = {}
    for extra in ("serve", "train"):
        names = closure("emobot", frozenset({extra})) - {"emobot"}
        each = {name: size(name) / 2**20 for name in names}
        largest = dict(sorted(each.items(), key=lambda kv: -kv[1])[:5])
        sizes[extra] = {
            "mb": round(sum(each.values())),
            **{k: round(v) for k, v in largest.items()},
        }
    return sizes


def print_table(title: str, rows: dict[str, dict[str, float]]) -> None:
    ours = sum(rows[name]["rss_mb"] for name in ("supervisor", *PROCESSES) if name in rows)
    print(f"\n{title}")
    print("| process | RSS MB | peak MB |\n|---|---|---|")
    for name, values in rows.items():
        print(f"| {name} | {values['rss_mb']:.0f} | {values['peak_mb']:.0f} |")
    print(f"| **our processes together** | **{ours:.0f}** | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0, help="photos sent per second")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds before sampling")
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--train", action="store_true", help="also measure during a training")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    sizes = install_sizes()
    for extra, row in sizes.items():
        print(
            f"emobot[{extra}] installs {row['mb']} MB: "
            + ", ".join(f"{name} {mb}" for name, mb in row.items() if name != "mb")
        )
    # Resident memory does not depend on the machine's load, the times do: both are kept.
    load_before = os.getloadavg()
    result = asyncio.run(measure(args))
    result["load_average"] = {"before": load_before, "after": os.getloadavg()}
    result["install_mb"] = sizes
    result["machine"] = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    result["photos"] = args.photos
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
