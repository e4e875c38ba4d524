"""The bot in group chats, through the real Dispatcher and the fake Bot API's groups: only what
is addressed to it is answered, in its topic; personal commands link to the private chat; no
group photo becomes a contribution."""

import asyncio

from sqlalchemy import func, select

from db.models import PredictionRequest, User
from tests.bot.conftest import BotHarness, Photos, text_has
from worker.replies import Reply, send_reply

BOT = "@emobot_playground_bot"


async def requests(harness: BotHarness) -> list[PredictionRequest]:
    async with harness.storage.sessions() as session:
        return list(await session.scalars(select(PredictionRequest).order_by(PredictionRequest.id)))


async def user_ids(harness: BotHarness) -> set[int]:
    async with harness.storage.sessions() as session:
        return set(await session.scalars(select(User.id)))


async def test_a_photo_without_a_mention_is_ignored_and_its_sender_not_stored(
    harness: BotHarness, photos: Photos
) -> None:
    # Privacy mode off (or the bot an admin): every message reaches the bot.
    group = harness.emulator.group(-1001, "Friends", privacy_mode=False)
    alice = harness.user(51, "Alice", "en")
    group.add_bot(alice)
    group.send_photo(alice, photos.one_face, caption="look at this")
    group.send_text(alice, "hello all")
    group.send_photo(alice, photos.one_face)
    assert await harness.emulator.collect(group.id, 1.5) == []
    assert await requests(harness) == []
    # Neither the chatter nor who added the bot has spoken to it: nothing stored about them.
    assert 51 not in await user_ids(harness)


async def test_a_captioned_mention_is_queued_and_answered_in_its_topic(
    harness: BotHarness, photos: Photos
) -> None:
    group = harness.emulator.group(-1002, "Forum", forum=True)
    alice = harness.user(52, "Alice", "en")
    message = group.send_photo(alice, photos.one_face, caption=f"{BOT} who is this?", thread_id=7)
    async with asyncio.timeout(10):
        while not (queued := await requests(harness)):  # noqa: ASYNC110 - a row, no event
            await asyncio.sleep(0.05)
    [request] = queued
    assert (request.chat_id, request.user_id, request.message_id, request.thread_id) == (
        -1002,
        52,
        message["message_id"],
        7,
    )
    # No "working on it" in a group: the answer alone.
    assert [c for c in harness.emulator.calls_in(group.id) if c.is_message] == []
    # The worker's reply lands in the topic, as a reply to the photo.
    assert harness.bot is not None
    await send_reply(
        harness.bot, request.chat_id, request.message_id, Reply("😄"), thread_id=request.thread_id
    )
    answer = await harness.emulator.wait_for(group.id, text_has("😄"))
    sent = harness.emulator.message(group.id, answer.message_id)
    assert sent["message_thread_id"] == 7
    assert sent["reply_to_message"]["message_id"] == message["message_id"]


async def test_a_reply_with_predict_asks_about_the_photo_it_answers(
    harness: BotHarness, photos: Photos
) -> None:
    group = harness.emulator.group(-1003, "Forum", forum=True)
    alice = harness.user(53, "Alice", "en")
    bob = harness.user(54, "Bob", "ru")
    # Not delivered (privacy mode): the bot sees it only through Bob's reply.
    photo = group.send_photo(alice, photos.three_faces, thread_id=3)
    ask = group.send_text(bob, f"/predict{BOT}", reply_to=photo)
    async with asyncio.timeout(10):
        while not (queued := await requests(harness)):  # noqa: ASYNC110 - a row, no event
            await asyncio.sleep(0.05)
    [request] = queued
    assert (request.user_id, request.message_id, request.thread_id) == (54, ask["message_id"], 3)
    assert await harness.storage.blobs.get(request.blob_key) == photos.three_faces
    # A mention in a reply works the same; a command for another bot does nothing.
    group.send_text(alice, f"{BOT} and this?", reply_to=photo)
    group.send_text(bob, "/predict@other_bot", reply_to=photo)
    async with asyncio.timeout(10):
        while len(await requests(harness)) < 2:  # noqa: ASYNC110 - a row, no event
            await asyncio.sleep(0.05)
    await asyncio.sleep(1)
    assert [r.user_id for r in await requests(harness)] == [54, 53]


async def test_contribute_in_a_group_links_to_the_private_chat_and_stores_nothing(
    harness: BotHarness, photos: Photos
) -> None:
    group = harness.emulator.group(-1004, "Friends")
    alice = harness.user(55, "Alice", "en")
    group.send_text(alice, f"/contribute{BOT}")
    answer = await harness.emulator.wait_for(group.id, text_has("/contribute"))
    [button] = answer.buttons
    assert button["url"] == "https://t.me/emobot_playground_bot?start=contribute"
    assert "callback_data" not in button
    # A photo captioned to the bot right after is a prediction, never a contribution.
    group.send_photo(alice, photos.one_face, caption=f"{BOT}")
    async with asyncio.timeout(10):
        while not await requests(harness):  # noqa: ASYNC110 - a row, no event
            await asyncio.sleep(0.05)
    assert await harness.samples() == []
    # The link opens the private chat at the dialog: the consent question, asked there.
    alice.send_text("/start contribute")
    consent = await harness.reply(alice, text_has("Do you agree?"))
    assert consent.chat_id == 55


async def test_personal_and_admin_commands_link_and_strangers_admin_commands_are_quiet(
    harness: BotHarness,
) -> None:
    group = harness.emulator.group(-1005, "Friends", kind="group")
    alice = harness.user(56, "Alice", "en")
    admin = harness.user(1000, "Admin", "en")
    for command in ("mine", "privacy", "forget"):
        group.send_text(alice, f"/{command}")
        answer = await harness.emulator.wait_for(group.id, text_has(f"/{command}"))
        assert answer.buttons[0]["url"].endswith(f"?start={command}")
    group.send_text(alice, "/stats")
    asked = group.send_text(admin, "/stats")
    answer = await harness.emulator.wait_for(group.id, text_has("/stats"))
    assert answer.buttons[0]["url"].endswith("?start=stats")
    # The admin's answered, Alice's not.
    assert answer.params["reply_parameters"]["message_id"] == asked["message_id"]
    # /start stats opens the admin's statistics in the private chat; for anyone else, /start.
    admin.send_text("/start stats")
    assert (await harness.reply(admin)).chat_id == 1000
    alice.send_text("/start stats")
    assert "/contribute" in (await harness.reply(alice)).text


async def test_rate_limit_per_group(harness: BotHarness, photos: Photos) -> None:
    harness.settings = harness.settings.model_copy(update={"group_photos_per_minute": 2})
    await harness.restart()
    group = harness.emulator.group(-1006, "Busy")
    members = [harness.user(60 + i, f"M{i}", "en") for i in range(3)]
    for member in members:
        group.send_photo(member, photos.one_face, caption=BOT)
    notice = await harness.emulator.wait_for(group.id, text_has("limit"))
    # Updates are handled concurrently, so any one of the three may be the one over the limit.
    queued = [r.message_id for r in await requests(harness)]
    assert len(queued) == 2
    assert sorted([*queued, notice.params["reply_parameters"]["message_id"]]) == [1, 2, 3]
    # One notice a minute, however many photos follow.
    group.send_photo(members[0], photos.one_face, caption=BOT)
    await asyncio.sleep(1)
    assert len([c for c in harness.emulator.calls if c.chat_id == group.id]) == 1


async def test_channel_posts_and_membership_changes_are_quiet(harness: BotHarness) -> None:
    group = harness.emulator.group(-1007, "Friends")
    alice = harness.user(57, "Alice", "en")
    group.add_bot(alice)
    group.remove_bot(alice)
    harness.emulator.push_update(
        {
            "channel_post": {
                "message_id": 1,
                "date": 0,
                "chat": {"id": -1008, "type": "channel", "title": "News"},
                "text": "/start",
            }
        }
    )
    await asyncio.sleep(1.5)
    assert [c for c in harness.emulator.calls if c.chat_id in (-1007, -1008)] == []
    async with harness.storage.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(User)) == 0


async def test_menus_per_scope(harness: BotHarness) -> None:
    commands = harness.emulator.commands
    assert [c["command"] for c in commands["all_group_chats"]] == ["predict", "help"]
    assert "contribute" in [c["command"] for c in commands["default"]]
