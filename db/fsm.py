"""aiogram FSM storage in PostgreSQL (`fsm_states`), so that dialogs survive a bot restart."""

from collections.abc import Mapping
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
    deleted, so finished dialogs leave nothing behind."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        key_builder: KeyBuilder | None = None,
    ) -> None:
        self.sessions = sessions
        self.key_builder = key_builder or DefaultKeyBuilder(with_destiny=True)

    async def _row(self, key: StorageKey) -> FsmState | None:
        async with self.sessions() as session:
            return await session.get(FsmState, self.key_builder.build(key))

    async def _save(self, key: StorageKey, **values: Any) -> None:
        name = self.key_builder.build(key)
        async with self.sessions.begin() as session:
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
        async with self.sessions() as session:
            return list(
                await session.scalars(select(FsmState.key).where(FsmState.state.is_not(None)))
            )
