"""The playground chat page in real headless Chromium, against the real playground server.

The other side of the chat is driven through the Bot API with aiogram's `Bot`, as the bot and
the worker do; the whole platform answering a photo is in test_playground_platform.py.
"""

import base64
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllGroupChats,
    BotCommandScopeChat,
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    ReplyParameters,
)
from playwright.async_api import Page, async_playwright, expect

from playground.web import Playground
from runtime.telegram import PLAYGROUND_TOKEN
from tests.conftest import missing_tool

CHROMIUM = "/usr/bin/chromium"
PHOTOS = Path(__file__).parents[1] / "data" / "faces"


def chromium_path() -> str:
    path = shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).exists() else None)
    if path is None:
        missing_tool("Debian's chromium is not installed (.ci/run installs it)")
    return path


@pytest.fixture
async def playground() -> AsyncIterator[Playground]:
    server = Playground(port=0, user_id=1)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def bot(playground: Playground) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(playground.api_url))
    bot = Bot(PLAYGROUND_TOKEN, session=session)
    yield bot
    await bot.session.close()


@pytest.fixture
async def page(playground: Playground) -> AsyncIterator[Page]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        context = await browser.new_context(locale="en-US", viewport={"width": 900, "height": 900})
        page = await context.new_page()
        await page.goto(playground.page_url)
        yield page
        await browser.close()


async def drop_files(page: Page, files: dict[str, bytes]) -> None:
    """Drag-and-drop of files onto the chat, as a file manager does it."""
    encoded = {name: base64.b64encode(data).decode() for name, data in files.items()}
    await page.evaluate(
        """(files) => {
            const transfer = new DataTransfer();
            for (const [name, b64] of Object.entries(files)) {
                const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                transfer.items.add(new File([bytes], name, { type: "image/jpeg" }));
            }
            const target = document.getElementById("chat");
            for (const type of ["dragover", "drop"]) {
                const init = { dataTransfer: transfer, bubbles: true };
                target.dispatchEvent(new DragEvent(type, init));
            }
        }""",
        encoded,
    )


async def test_chat_page_messages_buttons_uploads_and_bot_files(
    playground: Playground, bot: Bot, page: Page, tmp_path: Path
) -> None:
    me = playground.user
    await bot.set_my_commands([BotCommand(command="start", description="start")])

    # A command from the command bar reaches the Bot API as a message update.
    await page.click("#commands button[data-command='/start']")
    updates = await bot.get_updates(timeout=5)
    assert [u.message.text for u in updates if u.message] == ["/start"]
    assert updates[0].message.from_user.id == me.id

    # A bot message with an inline keyboard is shown; pressing a button sends its data.
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(text="Happy", callback_data="label:happy"),
                InlineKeyboardButton(text="Neutral", callback_data="label:neutral"),
            ]
        ]
    )
    await bot.send_message(me.id, "Which emotion? <b>Pick one</b>", reply_markup=keyboard)
    await expect(page.locator(".msg.bot .text").last).to_have_text("Which emotion? Pick one")
    await page.click(".keyboard button:has-text('Happy')")
    updates = await bot.get_updates(offset=updates[-1].update_id + 1, timeout=5)
    assert [u.callback_query.data for u in updates if u.callback_query] == ["label:happy"]

    # A photo chosen with the file picker arrives as a photo message and shows in the chat.
    astronaut = (PHOTOS / "astronaut.jpg").read_bytes()
    await page.set_input_files("#file", str(PHOTOS / "astronaut.jpg"))
    updates = await bot.get_updates(offset=updates[-1].update_id + 1, timeout=5)
    assert len(updates) == 1 and updates[0].message.photo
    file = await bot.get_file(updates[0].message.photo[-1].file_id)
    assert (await bot.download_file(file.file_path)).read() == astronaut
    await expect(page.locator(".msg.user img")).to_have_count(1)

    # Two photos dropped on the page arrive as one album.
    three = (PHOTOS / "three_faces.jpg").read_bytes()
    await drop_files(page, {"a.jpg": astronaut, "b.jpg": three})
    updates = await bot.get_updates(offset=updates[-1].update_id + 1, timeout=5)
    groups = {u.message.media_group_id for u in updates}
    assert len(updates) == 2 and len(groups) == 1 and None not in groups
    await expect(page.locator(".msg.user img")).to_have_count(3)

    # A photo and a document from the bot are shown and can be opened.
    await bot.send_photo(me.id, BufferedInputFile(three, "faces.jpg"), caption="3 faces")
    await bot.send_document(me.id, BufferedInputFile(b"a,b\n1,2\n", "dataset.csv"))
    bot_photo = page.locator(".msg.bot img").last
    await expect(bot_photo).to_be_visible()
    assert await bot_photo.evaluate("img => img.complete && img.naturalWidth") > 0
    link = page.locator(".msg.bot a.doc").last
    await expect(link).to_have_text("dataset.csv")
    href = await link.get_attribute("href")
    body = await page.evaluate("url => fetch(url).then(r => r.text())", href)
    assert body == "a,b\n1,2\n"

    # Typing a message and pressing Enter sends it.
    await page.fill("#text", "/help")
    await page.press("#text", "Enter")
    updates = await bot.get_updates(offset=updates[-1].update_id + 1, timeout=5)
    assert [u.message.text for u in updates] == ["/help"]

    shot = tmp_path / "playground.png"
    await page.screenshot(path=str(shot))
    assert shot.read_bytes().startswith(b"\x89PNG")


def png_header(width: int, height: int) -> bytes:
    from tests.bot.test_bad_inputs import png_header as header

    return header(width, height)


async def test_page_follows_quotes_fades_lists_commands_and_explains_refused_uploads(
    playground: Playground, bot: Bot, page: Page, tmp_path: Path
) -> None:
    me = playground.user
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    shots = tmp_path / "screenshots"
    shots.mkdir()

    # Until the bot first asks for updates, the page says it is starting.
    await expect(page.locator("#starting")).to_be_visible()
    await page.screenshot(path=str(shots / "1-starting.png"))
    await bot.get_updates(timeout=0)
    await expect(page.locator("#starting")).to_be_hidden()

    # Every command the bot set for this user is on the bar, in the user's language.
    names = [
        "start",
        "help",
        "predict",
        "contribute",
        "mine",
        "language",
        "cancel",
        "stats",
        "export",
        "retrain",
        "models",
        "promote",
    ]
    await bot.set_my_commands([BotCommand(command="start", description="default")])
    await bot.set_my_commands(
        [BotCommand(command=n, description=n) for n in names],
        scope=BotCommandScopeChat(chat_id=me.id),
        language_code="en",
    )
    await expect(page.locator("#commands button")).to_have_text([f"/{n}" for n in names])

    # A photo, then enough messages to scroll; the page follows them to the bottom.
    await page.set_input_files("#file", str(PHOTOS / "astronaut.jpg"))
    [photo] = [u.message for u in await bot.get_updates(timeout=5) if u.message]
    for i in range(30):
        await bot.send_message(me.id, f"message {i}")
    await expect(page.locator(".msg.bot .text").last).to_have_text("message 29")
    assert await page.evaluate(
        "c => c.scrollHeight - c.scrollTop - c.clientHeight < 40",
        await page.query_selector("#chat"),
    )

    # A reply quotes the photo it answers.
    answer_to = ReplyParameters(message_id=photo.message_id)
    await bot.send_message(me.id, "happy 97%", reply_parameters=answer_to)
    quote = page.locator(".msg.bot", has_text="happy 97%").locator(".quote")
    await expect(quote).to_contain_text("You: Photo")
    assert await quote.locator("img").evaluate("img => img.complete && img.naturalWidth") > 0
    await page.screenshot(path=str(shots / "2-reply-quotes-the-photo.png"))

    # Scrolled up to read, a new message does not pull the page down: a button offers it.
    await page.evaluate("() => { const c = document.getElementById('chat'); c.scrollTop = 0; }")
    await page.wait_for_timeout(200)
    await bot.send_message(me.id, "while you read")
    await expect(page.locator("#newer")).to_be_visible()
    assert await page.evaluate("() => document.getElementById('chat').scrollTop") < 50
    await page.screenshot(path=str(shots / "3-new-messages-button.png"))
    await page.click("#newer")
    await expect(page.locator("#newer")).to_be_hidden()
    assert await page.evaluate(
        "() => { const c = document.getElementById('chat');"
        " return c.scrollHeight - c.scrollTop - c.clientHeight < 40; }"
    )

    # A button's notice shows, then fades away.
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Delete", callback_data="mine:delete")]]
    )
    await bot.send_message(me.id, "Your photos: 1", reply_markup=keyboard)
    await page.click(".keyboard button:has-text('Delete')")
    [pressed] = [u for u in await bot.get_updates(timeout=5) if u.callback_query]
    query = pressed.callback_query
    await bot.answer_callback_query(query.id, text="Photos deleted: 1.")
    await expect(page.locator("#notice")).to_have_text("Photos deleted: 1.")
    await expect(page.locator("#notice")).to_be_hidden(timeout=8000)

    # A photo Telegram would refuse: a clear 4xx from the server, said on the page.
    big = tmp_path / "huge.png"
    big.write_bytes(png_header(20000, 20000))
    async with page.expect_response("**/api/photos") as response_info:
        await page.set_input_files("#file", str(big))
    response = await response_info.value
    assert response.status == 413 and "too many pixels" in (await response.json())["error"]
    await expect(page.locator("#notice.error")).to_contain_text("huge.png has too many pixels")
    await page.screenshot(path=str(shots / "4-upload-refused.png"))
    assert await bot.get_updates(offset=pressed.update_id + 1, timeout=1) == []  # nothing sent
    assert errors == []


def big_picture() -> bytes:
    """A 1400×900 picture: the chat shows it at most 240 px high."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (1400, 900), (40, 120, 200)).save(buffer, "JPEG")
    return buffer.getvalue()


async def test_a_picture_opens_full_size_and_an_old_notice_is_not_shown_again(
    playground: Playground, bot: Bot, page: Page
) -> None:
    me = playground.user
    # A click on a picture shows it at its own size; a click (or Esc) closes it.
    await bot.send_photo(me.id, BufferedInputFile(big_picture(), "matrix.jpg"), caption="big")
    picture = page.locator(".msg.bot img").last
    await expect(picture).to_be_visible()
    assert (await picture.bounding_box() or {"height": 0})["height"] <= 240
    await picture.click()
    shown = page.locator("#viewer img")
    await expect(shown).to_be_visible()
    assert await shown.evaluate("img => [img.naturalWidth, img.width]") == [1400, 1400]
    await page.keyboard.press("Escape")
    await expect(page.locator("#viewer")).to_be_hidden()
    await picture.click()
    await page.click("#viewer")
    await expect(page.locator("#viewer")).to_be_hidden()

    # A button's answer shows once: not again on every load of the page.
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Delete", callback_data="mine:delete")]]
    )
    await bot.send_message(me.id, "Your photos", reply_markup=keyboard)
    await page.click(".keyboard button:has-text('Delete')")
    updates = await bot.get_updates(timeout=5)
    [query] = [u.callback_query for u in updates if u.callback_query]
    await bot.answer_callback_query(query.id, text="Photos deleted: 1.")
    await expect(page.locator("#notice")).to_have_text("Photos deleted: 1.")
    await page.reload()
    await expect(page.locator(".msg")).to_have_count(2)  # the chat is rendered again
    await expect(page.locator("#notice")).to_be_hidden()


async def test_the_group_tab_sends_as_a_member_with_a_caption_and_follows_deep_links(
    playground: Playground, bot: Bot, page: Page
) -> None:
    me = playground.user
    group = playground.group
    await bot.set_my_commands(
        [BotCommand(command="predict", description="predict")],
        scope=BotCommandScopeAllGroupChats(),
    )
    await page.click("#chats button[data-chat='group']")
    await expect(page.locator("#commands button")).to_have_text(["/predict"])
    await expect(page.locator(".hint")).to_contain_text("@emobot_playground_bot")

    # Chatter not addressed to the bot stays in the group, undelivered (privacy mode).
    await page.select_option("#as", label="Alice")
    await page.fill("#text", "hello all")
    await page.press("#text", "Enter")
    await expect(page.locator(".msg.member .who")).to_have_text(["Alice"])
    # The text typed goes with the photo as its caption: the bot gets it.
    await page.fill("#text", "@emobot_playground_bot who is this?")
    await page.set_input_files("#file", str(PHOTOS / "astronaut.jpg"))
    updates = await bot.get_updates(timeout=5)
    assert [(u.message.chat.id, u.message.from_user.first_name) for u in updates] == [
        (group.id, "Alice")
    ]
    assert updates[0].message.photo and updates[0].message.caption_entities[0].type == "mention"
    await expect(page.locator(".msg.member img")).to_have_count(1)

    # A deep link button in the group opens the private tab and starts that dialog there.
    link = InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text="Open", url="https://t.me/emobot_playground_bot?start=mine")]
        ]
    )
    await bot.send_message(
        group.id,
        "personal",
        reply_markup=link,
        reply_parameters=ReplyParameters(message_id=updates[0].message.message_id),
    )
    await expect(page.locator(".msg.bot .quote")).to_contain_text("Alice")
    await page.click(".keyboard a:has-text('Open')")
    await expect(page.locator("#chats button.current")).to_have_text("Private chat")
    updates = await bot.get_updates(offset=updates[-1].update_id + 1, timeout=5)
    assert [(u.message.chat.id, u.message.text) for u in updates] == [(me.id, "/start mine")]
    await expect(page.locator(".msg.user .text")).to_have_text(["/start mine"])


async def test_clips_are_sent_with_the_paper_clip_or_dropped_and_answers_show(
    playground: Playground, bot: Bot, page: Page, tmp_path: Path
) -> None:
    from tests.clips import make_clip

    me = playground.user
    note = tmp_path / "note.mp4"
    note.write_bytes(make_clip(["happy", "neutral"], kind="note", size=(256, 256)))
    # The paper clip: a square video goes as a round video note.
    await page.set_input_files("#file", str(note))
    [update] = await bot.get_updates(timeout=5)
    assert update.message.video_note is not None and update.message.video_note.duration == 2
    await expect(page.locator(".msg.user video.note")).to_have_count(1)

    # Dropped on the page: a GIF goes as an animation (with its document, as Telegram does).
    gif = make_clip(["happy"], kind="gif", size=(64, 64))
    encoded = base64.b64encode(gif).decode()
    await page.evaluate(
        """(b64) => {
            const transfer = new DataTransfer();
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            transfer.items.add(new File([bytes], "cat.gif", { type: "image/gif" }));
            const target = document.getElementById("chat");
            const init = { dataTransfer: transfer, bubbles: true };
            for (const type of ["dragover", "drop"]) {
                target.dispatchEvent(new DragEvent(type, init));
            }
        }""",
        encoded,
    )
    updates = await bot.get_updates(offset=update.update_id + 1, timeout=5)
    assert len(updates) == 1 and updates[0].message.animation is not None
    await expect(page.locator(".msg.user video.clip")).to_have_count(1)

    # The answer: a chart as a reply, and a reaction on the clip.
    chart = (PHOTOS / "astronaut.jpg").read_bytes()
    await bot.send_photo(
        me.id,
        BufferedInputFile(chart, "emotions.png"),
        caption="Mostly happy (62%)",
        reply_parameters=ReplyParameters(message_id=update.message.message_id),
    )
    await bot.set_message_reaction(
        chat_id=me.id,
        message_id=update.message.message_id,
        reaction=[{"type": "emoji", "emoji": "😁"}],
    )
    await expect(page.locator(".msg.bot .quote").last).to_contain_text("Video message")
    await expect(page.locator(".msg.user .reactions")).to_have_text("😁")
