"""The layers of DESIGN.md, read from the imports. From the bottom up:

- the kernel (`emobot/`: settings, labels, i18n, logs, face_hash), imported by everything;
- the parts (`ml/`, `db/` with its `migrations/`), which know nothing of each other;
- the runtime (`runtime/`: start-up and shutdown, operations endpoint, Bot API client, report);
- the processes (`bot/`, `worker/`, `trainer/`), none importing another;
- the entry points (`cli/`: the `emobot` command, its supervisor and the importer).

A package imports nothing of a layer above its own, and the fake Telegram (`playground/`)
imports nothing of the platform; only the entry points may serve it (`emobot run`)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
LAYERS = [
    {"emobot"},
    {"ml", "db", "migrations"},
    {"runtime"},
    {"bot", "worker", "trainer"},
    {"cli"},
]
PLATFORM = set().union(*LAYERS)
# Side by side in one layer, yet not to import each other.
STRANGERS = {"ml": {"db", "migrations"}, "db": {"ml", "migrations"}} | {
    process: {"bot", "worker", "trainer"} - {process} for process in ("bot", "worker", "trainer")
}
# Folders that are no layer of the platform: they may import anything of it.
OUTSIDE = {"tests", "benchmarks"}


def forbidden(package: str) -> set[str]:
    """The top-level names `package` must not import."""
    if package == "playground":
        return PLATFORM
    rank = next(i for i, layer in enumerate(LAYERS) if package in layer)
    above = set().union(*LAYERS[rank + 1 :])
    names = above | STRANGERS.get(package, set())
    if package != "cli":
        names.add("playground")
    if package == "ml":
        names.add("aiogram")  # the model runs without Telegram (emobot predict, the trainer)
    return names


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(PLATFORM | {"playground"}))
def test_no_import_climbs_a_layer(package: str) -> None:
    arrows = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for name in sorted(imported(path) & forbidden(package))
    ]
    assert arrows == []


def test_every_package_has_a_layer() -> None:
    """A new top-level package is placed in a layer (or declared outside) before it lands."""
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert packages == PLATFORM | {"playground"} | OUTSIDE


def test_the_layers_forbid_what_they_should() -> None:
    assert forbidden("emobot") >= {"ml", "db", "runtime", "bot", "cli", "playground"}
    assert forbidden("db") >= {"ml", "runtime", "worker", "cli"} and "emobot" not in forbidden("db")
    assert forbidden("runtime") >= {"bot", "worker", "trainer", "cli"}
    assert forbidden("bot") >= {"worker", "trainer", "cli", "playground"}
    assert "runtime" not in forbidden("bot") and "bot" not in forbidden("cli")
    assert forbidden("playground") >= {"emobot", "ml", "db", "runtime", "bot", "cli"}


def test_the_check_sees_an_arrow(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import os\nfrom db.engine import Storage\nfrom . import sibling\n")
    assert imported(module) == {"os", "db"}


def test_no_source_file_does_several_jobs_in_over_500_lines() -> None:
    """Past this a module is doing more than one job: split it along them (issue 26)."""
    folders = PLATFORM | {"playground"} | OUTSIDE
    long = {
        str(path.relative_to(ROOT)): lines
        for folder in folders
        for path in (ROOT / folder).rglob("*.py")
        if (lines := len(path.read_text().splitlines())) > 500
    }
    assert long == {}
