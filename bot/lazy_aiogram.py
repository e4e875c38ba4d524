"""aiogram's types built when the bot first meets them, not all of them at import.

aiogram declares its ~300 types with pydantic's `defer_build`, then rebuilds every one at import
(aiogram/types/__init__.py) to resolve their forward references: pydantic-core builds a
validator and a serializer for each, each holding the schemas of every type it nests. That is
about 70 MB and 3 s of start on a 2-core machine (aiogram issue #1513), mostly for types the
bot never receives. Run before the first import of aiogram (bot/__init__.py does), `load()`
makes that rebuild only put the names the forward references need into the types' modules;
pydantic then builds each type, with those names at hand, the first time one is validated or
dumped (tests/bot/test_lazy_aiogram.py builds every type that way).
"""

import sys
from typing import Any

import pydantic


def load() -> None:
    """Import aiogram with its types left to build lazily (nothing to do once imported)."""
    if "aiogram" in sys.modules:
        return
    rebuild = pydantic.BaseModel.__dict__["model_rebuild"]

    def names_only(
        cls: type[pydantic.BaseModel],
        *,
        _types_namespace: dict[str, Any] | None = None,
        _parent_namespace_depth: int = 2,
        **kwargs: Any,
    ) -> bool | None:
        if _types_namespace is None or not cls.__module__.startswith("aiogram.types."):
            return rebuild.__func__(  # type: ignore[no-any-return]
                cls,
                _types_namespace=_types_namespace,
                _parent_namespace_depth=_parent_namespace_depth + 1,
                **kwargs,
            )
        module = vars(sys.modules[cls.__module__])
        for name, value in _types_namespace.items():
            module.setdefault(name, value)
        return None

    pydantic.BaseModel.model_rebuild = classmethod(names_only)  # type: ignore[assignment]
    try:
        import aiogram  # noqa: F401
    finally:
        pydantic.BaseModel.model_rebuild = rebuild  # type: ignore[method-assign]
