"""What the README promises about the bot's commands and the FER2013 import."""

import re
from pathlib import Path

from bot.commands import ADMIN_COMMANDS, USER_COMMANDS

README = (Path(__file__).parents[1] / "README.md").read_text()


def section(title: str) -> str:
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def test_the_page_description_names_every_command() -> None:
    # The playground's local user is an admin: the command bar shows every command.
    named = set(re.findall(r"`/(\w+)`", section("What you see")))
    assert set(USER_COMMANDS + ADMIN_COMMANDS) <= named


def test_one_section_says_how_to_import_fer2013() -> None:
    titles = re.findall(r"^#+ (.*)$", README, re.MULTILINE)
    assert [t for t in titles if "FER2013" in t] == ["Import FER2013"]
