"""The dependency groups: serving (bot, worker) installs without TensorFlow or Keras."""

from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

HEAVY = ("tensorflow", "keras")


def closure(name: str, extras: frozenset[str] = frozenset()) -> set[str]:
    """Every distribution `pip install name[extras]` brings in, read from the installed
    metadata (markers evaluated for this interpreter and the extras asked for)."""
    done: set[tuple[str, frozenset[str]]] = set()
    todo = [(name, extras)]
    while todo:
        current, wanted = todo.pop()
        if (canonicalize_name(current), wanted) in done:
            continue
        done.add((canonicalize_name(current), wanted))
        for line in metadata.requires(current) or []:
            requirement = Requirement(line)
            marker = requirement.marker
            if marker is None or any(marker.evaluate({"extra": e}) for e in {"", *wanted}):
                todo.append((requirement.name, frozenset(requirement.extras)))
    return {key for key, _ in done}


def test_serving_installs_neither_tensorflow_nor_keras() -> None:
    for extras in (frozenset(), frozenset({"serve"})):
        installed = closure("emobot", extras)
        assert "aiogram" in installed and "ai-edge-litert" in installed
        assert not [d for d in installed if d.startswith(HEAVY)], sorted(installed)


def test_training_brings_tensorflow_and_keras() -> None:
    installed = closure("emobot", frozenset({"train"}))
    assert {"tensorflow-cpu", "keras"} <= installed
