"""The session of the update being handled, for code that the update reaches without being
handed it: the FSM storage (so an update holds one pooled connection, not two) and the commit
before each request to Telegram."""

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from sqlalchemy.ext.asyncio import AsyncSession

# The session and the task handling the update: a task the handler starts (a notice sent
# later) inherits the variable, but must not use a session that is not its own.
_CURRENT: ContextVar[tuple[AsyncSession, asyncio.Task[object] | None] | None] = ContextVar(
    "emobot_update_session", default=None
)


@contextmanager
def update_session(session: AsyncSession) -> Iterator[AsyncSession]:
    """Make `session` the current task's update session inside the block."""
    token = _CURRENT.set((session, asyncio.current_task()))
    try:
        yield session
    finally:
        _CURRENT.reset(token)


def current_session() -> AsyncSession | None:
    """The update session of the current task, if it has one."""
    value = _CURRENT.get()
    if value is None or value[1] is not asyncio.current_task():
        return None
    return value[0]
