"""What the README promises about the bot's commands, the FER2013 import and the layout."""

import re
from fnmatch import fnmatch
from pathlib import Path

from bot.commands import ADMIN_COMMANDS, USER_COMMANDS
from tests.test_layers import LAYERS, OUTSIDE, PLATFORM

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()


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


# The layout table's layer column, in tests/test_layers.py's order (bottom up).
LAYER_NAMES = ("kernel", "parts", "runtime", "process", "entry points")


def layout_table() -> dict[str, str]:
    """Folder -> layer, from the README's layout table."""
    rows = re.findall(r"^\| `([\w.-]+)/` \| ([^|]+?) \|", section("Layout"), re.MULTILINE)
    return dict(rows)


def test_the_layout_table_names_every_folder() -> None:
    ignored = [
        line.strip().strip("/")
        for line in (ROOT / ".gitignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    folders = {
        p.name
        for p in ROOT.iterdir()
        if p.is_dir()
        and not p.name.startswith(".")
        and not any(fnmatch(p.name, pattern) for pattern in ignored)
    }
    assert set(layout_table()) == folders


def test_the_layout_table_gives_each_package_its_layer() -> None:
    table = layout_table()
    for name, layer in zip(LAYER_NAMES, LAYERS, strict=True):
        assert {folder for folder, said in table.items() if said == name} == layer, name
    assert {folder for folder in table if folder not in PLATFORM} == OUTSIDE | {
        "playground",
        "deploy",
        "docs",
    }
