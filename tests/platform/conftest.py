"""Starting `emobot run` as a user does, for the platform tests."""

import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path


def start_emobot_run(
    args: Sequence[str], env: dict[str, str], cwd: Path, timeout_s: float
) -> tuple[subprocess.Popen[str], list[str]]:
    """`python -m cli run ARGS`, returned once it says "platform up"; the lines read so far
    come back too, and fail the test if it exits or takes longer than `timeout_s`."""
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "run", *args],
        env=env,
        cwd=cwd,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert process.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    for line in process.stdout:
        seen.append(line)
        if "platform up" in line:
            return process, seen
        assert time.monotonic() < deadline, "".join(seen)
    raise AssertionError("emobot run exited early:\n" + "".join(seen))
