"""Group chats in the fake Bot API: groups, supergroups and forum topics with several members.

    group = FakeGroup(emulator, -100123, "Friends", forum=True)
    group.add_bot(alice)                                  # a my_chat_member update
    photo = group.send_photo(alice, data, caption="@emobot_playground_bot", thread_id=7)
    group.send_text(bob, "/predict", reply_to=photo)      # a reply asking about Alice's photo

As Telegram does with the bot's privacy mode on (its default), the bot gets only the messages
it is meant to see: those starting with `/`, those mentioning it by username, and replies to
its own messages; `privacy_mode=False` (or a bot that is an admin) gets everything. Every
message is kept in the chat either way (a reply quotes the photo it answers, delivered or
not). Text gets Telegram's entities: `bot_command` for a leading `/word`, `mention` for each
`@username`. A message in a forum topic carries `message_thread_id` and `is_topic_message`;
the bot's answers land in the topic they are sent to (`message_thread_id`), or in that of the
message they reply to.
"""

import re
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playground.botapi import BotAPIEmulator, FakeUser

Json = dict[str, Any]

MENTION = re.compile(r"@[A-Za-z0-9_]{5,32}")
COMMAND = re.compile(r"^/[A-Za-z0-9_]{1,32}(@[A-Za-z0-9_]{5,32})?")


def entities(text: str) -> list[Json]:
    """Telegram's entities for the commands and @mentions in a text (offsets in UTF-16 code
    units, as Telegram counts them)."""

    def units(s: str) -> int:
        return len(s.encode("utf-16-le")) // 2

    found: list[Json] = []
    if command := COMMAND.match(text):
        found.append({"type": "bot_command", "offset": 0, "length": units(command.group())})
    for mention in MENTION.finditer(text):
        if command and mention.start() < command.end():
            continue  # the @bot of /command@bot belongs to the command
        found.append(
            {
                "type": "mention",
                "offset": units(text[: mention.start()]),
                "length": units(mention.group()),
            }
        )
    return found


class FakeGroup:
    """A group chat (negative id) with the bot in it; members are the emulator's users."""

    def __init__(
        self,
        emulator: "BotAPIEmulator",
        chat_id: int,
        title: str,
        *,
        kind: str = "supergroup",
        forum: bool = False,
        privacy_mode: bool = True,
    ) -> None:
        if chat_id >= 0:
            raise ValueError("group chat ids are negative")
        self.emulator = emulator
        self.id = chat_id
        self.title = title
        self.kind = kind
        self.forum = forum
        self.privacy_mode = privacy_mode
        self.chat = emulator.chat(chat_id)
        self.chat.info = self.chat_json()
        emulator.groups[chat_id] = self

    def chat_json(self) -> Json:
        chat: Json = {"id": self.id, "type": self.kind, "title": self.title}
        if self.forum:
            chat["is_forum"] = True
        return chat

    # Membership -------------------------------------------------------------------------

    def _membership(self, by: "FakeUser", old: str, new: str) -> Json:
        bot = self.emulator.bot_json(self.emulator.token)
        update = {
            "my_chat_member": {
                "chat": self.chat_json(),
                "from": by.as_json(),
                "date": int(time.time()),
                "old_chat_member": {"status": old, "user": bot},
                "new_chat_member": {"status": new, "user": bot},
            }
        }
        return self.emulator.push_update(update, chat_id=self.id)

    def add_bot(self, by: "FakeUser") -> Json:
        return self._membership(by, "left", "member")

    def remove_bot(self, by: "FakeUser") -> Json:
        return self._membership(by, "member", "left")

    # Messages ---------------------------------------------------------------------------

    def send_text(
        self,
        member: "FakeUser",
        text: str,
        *,
        thread_id: int | None = None,
        reply_to: Json | None = None,
    ) -> Json:
        return self.post(member, {"text": text, "entities": entities(text)}, thread_id, reply_to)

    def send_photo(
        self,
        member: "FakeUser",
        data: bytes,
        *,
        caption: str | None = None,
        thread_id: int | None = None,
        reply_to: Json | None = None,
    ) -> Json:
        content: Json = {"photo": [self.emulator.photo_size(data)]}
        if caption:
            content["caption"] = caption
            content["caption_entities"] = entities(caption)
        return self.post(member, content, thread_id, reply_to)

    def post(
        self,
        member: "FakeUser",
        content: Json,
        thread_id: int | None = None,
        reply_to: Json | None = None,
    ) -> Json:
        """A member's message: kept in the chat, delivered to the bot if it may see it."""
        message: Json = {
            "message_id": next(self.chat.message_ids),
            "date": int(time.time()),
            "chat": self.chat_json(),
            "from": member.as_json(),
            **{k: v for k, v in content.items() if v},
        }
        if reply_to is not None:
            quoted = {k: v for k, v in reply_to.items() if k != "reply_to_message"}
            message["reply_to_message"] = quoted
            thread_id = thread_id or reply_to.get("message_thread_id")
        if self.forum and thread_id is not None:
            message["message_thread_id"] = thread_id
            message["is_topic_message"] = True
        self.chat.messages[message["message_id"]] = message
        if self.delivered(message):
            self.emulator.push_update({"message": message}, chat_id=self.id)
        return message

    def delivered(self, message: Json) -> bool:
        """Whether the bot gets this message (Telegram's privacy mode)."""
        if not self.privacy_mode:
            return True
        text = message.get("text") or message.get("caption") or ""
        if text.startswith("/"):
            return True
        name = f"@{self.emulator.bot_username}".lower()
        if any(m.group().lower() == name for m in MENTION.finditer(text)):
            return True
        replied = message.get("reply_to_message") or {}
        return bool(replied.get("from", {}).get("is_bot"))
