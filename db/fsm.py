"""aiogram FSM storage in PostgreSQL (`fsm_states`), so that dialogs survive a bot restart."""

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import (
    BaseStorage,
    DefaultKeyBuilder,
    KeyBuilder,
    StateType,
    StorageKey,
)
from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.current import current_session
from db.models import FsmState


async def delete_user_states(session: AsyncSession, user_id: int) -> int:
    """Delete every dialog of a user (as the user, or in their private chat); returns how many.

    Keys are DefaultKeyBuilder's `fsm:<chat>[:<thread>]:<user>:<destiny>`: the id is the
    second part (the chat) or the one before the last (the user).
    """
    user = int(user_id)
    mine = FsmState.key.regexp_match(f"^[^:]+:{user}:|:{user}:[^:]+$")
    result = await session.execute(delete(FsmState).where(mine).returning(FsmState.key))
    return len(result.all())


class PostgresStorage(BaseStorage):
    """One row per storage key holding the state and the data (JSON). A key with neither is
    deleted, so finished dialogs leave nothing behind.

    Inside an update (db.current) the storage works in the update's session and transaction,
    so an update holds one pooled connection at most and its dialog changes are committed with
    what else it wrote. Outside one (aiogram reads the state before our middlewares open the
    update's session; tests; tools) it uses a short session of its own."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        key_builder: KeyBuilder | None = None,
    ) -> None:
        self.sessions = sessions
        self.key_builder = key_builder or DefaultKeyBuilder(with_destiny=True)

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[AsyncSession]:
        session = current_session()
        if session is not None:
            yield session
            return
        async with self.sessions.begin() as own:
            yield own

    async def _row(self, key: StorageKey) -> FsmState | None:
        async with self._session() as session:
            # populate_existing: the update's session may hold this row from an earlier read.
            return await session.get(FsmState, self.key_builder.build(key), populate_existing=True)

    async def _save(self, key: StorageKey, **values: Any) -> None:
        name = self.key_builder.build(key)
        async with self._session() as session:
            await session.execute(
                insert(FsmState)
                .values(key=name, **values)
                .on_conflict_do_update(
                    index_elements=[FsmState.key], set_={**values, "updated_at": func.now()}
                )
            )
            # Idle keys are removed rather than kept as empty rows.
            await session.execute(
                delete(FsmState).where(
                    FsmState.key == name,
                    FsmState.state.is_(None),
                    FsmState.data == text("'{}'::jsonb"),
                )
            )

    async def lock(self, key: StorageKey) -> tuple[str | None, dict[str, Any]]:
        """The state and data of `key`, locked (SELECT … FOR UPDATE) until the update's
        transaction ends: a read-modify-write that other replicas cannot interleave with.
        Only inside an update, whose transaction holds the lock."""
        session = current_session()
        if session is None:
            raise RuntimeError("PostgresStorage.lock needs the update's session")
        row = await session.scalar(
            select(FsmState)
            .where(FsmState.key == self.key_builder.build(key))
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return (row.state, dict(row.data)) if row else (None, {})

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        value = state.state if isinstance(state, State) else state
        await self._save(key, state=value)

    async def get_state(self, key: StorageKey) -> str | None:
        row = await self._row(key)
        return row.state if row else None

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        await self._save(key, data=dict(data))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        row = await self._row(key)
        return dict(row.data) if row else {}

    async def close(self) -> None:
        """The session factory belongs to the caller, who disposes of the engine."""

    async def keys_with_state(self) -> list[str]:
        """Keys in a dialog now (for diagnostics and tests)."""
        async with self._session() as session:
            return list(
                await session.scalars(select(FsmState.key).where(FsmState.state.is_not(None)))
            )
