"""The layers of DESIGN.md, read from the imports: parts (`ml/`, `db/`) import no process, the
processes import no other process, and the fake Telegram imports nothing of the platform."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PROCESSES = {"bot", "worker", "trainer"}
# What each package must not import (top-level names; relative imports stay in the package).
FORBIDDEN = {
    "ml": {"db", "aiogram", "playground"} | PROCESSES,
    "db": {"ml", "playground"} | PROCESSES,
    "bot": {"playground"} | PROCESSES - {"bot"},
    "worker": {"playground"} | PROCESSES - {"worker"},
    "trainer": {"playground"} | PROCESSES - {"trainer"},
    "playground": {"ml", "db", "emobot"} | PROCESSES,
}


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_climbs_a_layer(package: str) -> None:
    arrows = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for name in sorted(imported(path) & FORBIDDEN[package])
    ]
    assert arrows == []


def test_the_check_sees_an_arrow(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import os\nfrom db.engine import Storage\nfrom . import sibling\n")
    assert imported(module) == {"os", "db"}
