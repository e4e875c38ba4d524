"""Group chats in the fake Bot API (privacy mode, entities, topics, membership) and the
playground page's group chat, through its HTTP endpoints."""

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from playground.botapi import BotAPIEmulator
from playground.groups import entities
from playground.web import Playground
from runtime.telegram import PLAYGROUND_TOKEN

PHOTO = (Path(__file__).parents[1] / "data" / "faces" / "astronaut.jpg").read_bytes()


def test_entities_mark_commands_and_mentions_in_utf16_units() -> None:
    assert entities("/predict@emobot_playground_bot hi @alice_s") == [
        {"type": "bot_command", "offset": 0, "length": 30},
        {"type": "mention", "offset": 34, "length": 8},
    ]
    assert entities("😄 @emobot_playground_bot") == [{"type": "mention", "offset": 3, "length": 22}]


def test_privacy_mode_delivers_commands_mentions_and_replies_to_the_bot() -> None:
    emulator = BotAPIEmulator()
    group = emulator.group(-5, "G", forum=True)
    alice = emulator.user(2, "Alice")
    photo = group.send_photo(alice, PHOTO, thread_id=9)
    group.send_text(alice, "hello")
    group.send_text(alice, "/predict", reply_to=photo)
    group.send_photo(alice, PHOTO, caption="@EMOBOT_playground_bot")
    delivered = [u["message"] for u in emulator.updates]
    assert [m.get("text") or m.get("caption") for m in delivered] == [
        "/predict",
        "@EMOBOT_playground_bot",
    ]
    # The reply quotes the photo (never delivered itself) and stays in its topic.
    reply = delivered[0]
    assert reply["reply_to_message"]["photo"] == photo["photo"]
    assert (reply["message_thread_id"], reply["is_topic_message"]) == (9, True)
    assert reply["chat"] == {"id": -5, "type": "supergroup", "title": "G", "is_forum": True}
    group.add_bot(alice)
    update = emulator.updates[-1]["my_chat_member"]
    assert (update["old_chat_member"]["status"], update["new_chat_member"]["status"]) == (
        "left",
        "member",
    )
    with pytest.raises(ValueError, match="negative"):
        emulator.group(5, "not a group")


@pytest.fixture
async def playground() -> AsyncIterator[Playground]:
    server = Playground(port=0, user_id=1)
    await server.start()
    yield server
    await server.stop()


async def test_the_page_sends_to_the_group_as_any_member_and_shows_it(
    playground: Playground,
) -> None:
    url = playground.page_url
    async with aiohttp.ClientSession() as http:
        sent = await http.post(
            f"{url}api/send", json={"text": "/help@emobot_playground_bot", "chat": "group", "as": 2}
        )
        assert sent.status == 200
        form = aiohttp.FormData()
        form.add_field("photo", PHOTO, filename="a.jpg", content_type="image/jpeg")
        photos = await http.post(
            f"{url}api/photos?chat=group&as=1&caption=%40emobot_playground_bot", data=form
        )
        assert photos.status == 200
        # The bot answers in the group: a reply with a deep link button.
        session = AiohttpSession(api=TelegramAPIServer.from_base(playground.api_url))
        bot = Bot(PLAYGROUND_TOKEN, session=session)
        try:
            await bot.send_message(-1001, "answer", reply_parameters={"message_id": 1})
        finally:
            await bot.session.close()
        snapshot = await (await http.get(f"{url}api/chat?chat=group")).json()
        private = await (await http.get(f"{url}api/chat")).json()
    assert snapshot["title"] == "Playground group"
    assert [m["name"] for m in snapshot["members"]] == ["You", "Alice", "Борис"]
    texts = [
        (m["from"]["first_name"], m.get("text") or m.get("caption")) for m in snapshot["messages"]
    ]
    assert texts == [
        ("Alice", "/help@emobot_playground_bot"),
        ("You", "@emobot_playground_bot"),
        ("Emobot", "answer"),
    ]
    assert private["messages"] == []
    assert all(m["chat"]["id"] == -1001 for m in snapshot["messages"])
