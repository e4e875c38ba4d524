"""Filters shared by routers."""

from aiogram.filters import Filter
from aiogram.types import TelegramObject


class IsAdmin(Filter):
    """The sender is in ADMIN_IDS (`is_admin` is set by the Database middleware)."""

    async def __call__(self, event: TelegramObject, is_admin: bool = False) -> bool:
        return is_admin
