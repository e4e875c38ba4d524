"""The bot imports aiogram with its types left to build when first used (bot/lazy_aiogram.py).
In a process of its own (here aiogram is imported already): none is built at import, and every
one of them builds when first used."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]

CHECK = """
import json, pydantic
import bot.app
import aiogram.types

models = [
    m for m in vars(aiogram.types).values()
    if isinstance(m, type) and issubclass(m, pydantic.BaseModel)
    and m.__module__.startswith("aiogram.types.")
]
at_import = sum(m.__pydantic_complete__ for m in models)

def use(model):
    # Until built these are placeholders that build the type when touched, or raise.
    model.__pydantic_validator__.validate_python
    model.__pydantic_serializer__.to_python

def use_all():  # pydantic reads a namespace a few frames above the one that uses a type
    failed = {}
    for model in models:
        try:
            use(model)
        except pydantic.PydanticUserError as exc:
            failed[model.__name__] = str(exc)[:200]
    return failed

failed = use_all()
print(json.dumps({"types": len(models), "at_import": at_import, "failed": failed,
                  "built": sum(m.__pydantic_complete__ for m in models)}))
"""


def test_no_type_is_built_at_import_and_every_type_builds_when_used() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["types"] > 300 and result["at_import"] == 0
    assert result["failed"] == {}
    assert result["built"] == result["types"]


def test_update_and_a_method_work_with_types_built_lazily() -> None:
    script = """
import bot.app
from aiogram.methods import SendMessage
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update

def run():
    update = Update.model_validate({"update_id": 1, "message": {
        "message_id": 5, "date": 0, "chat": {"id": 7, "type": "private"},
        "from": {"id": 7, "is_bot": False, "first_name": "A"},
        "photo": [{"file_id": "f", "file_unique_id": "u", "width": 640, "height": 480}]}})
    assert isinstance(update.message, Message) and update.message.photo[0].width == 640
    markup = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Yes", callback_data="y")]])
    call = SendMessage(chat_id=7, text="hi", reply_markup=markup)
    dumped = call.model_dump(exclude_none=True)["reply_markup"]
    assert dumped == {"inline_keyboard": [[{"text": "Yes", "callback_data": "y"}]]}, dumped
    print("ok")

run()
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
