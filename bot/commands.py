"""The bot's commands, in the order menus and /help list them."""

from emobot.i18n import t

USER_COMMANDS = (
    "start",
    "help",
    "predict",
    "contribute",
    "mine",
    "language",
    "cancel",
    "privacy",
    "forget",
)
# The menu in group chats: the rest opens the private chat.
GROUP_COMMANDS = ("predict", "help")
ADMIN_COMMANDS = ("stats", "export", "retrain", "models", "promote")


def command_list(lang: str, admin: bool = False) -> str:
    commands = USER_COMMANDS + (ADMIN_COMMANDS if admin else ())
    return "\n".join(f"/{c} — {t(lang, f'cmd.{c}')}" for c in commands)
