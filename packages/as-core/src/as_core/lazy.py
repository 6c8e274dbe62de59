"""Public names that resolve on first use, so that importing a package stays light.

A package's ``__init__`` lists which module holds each heavy name and installs the pair
of module functions this returns::

    __getattr__, __dir__ = lazy_exports(__name__, {"measure": "as_bench.engine"}, __all__)

``from as_bench import measure`` then imports ``as_bench.engine`` only at that moment.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, names: Mapping[str, str | tuple[str, str]], public: Iterable[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Build a module ``__getattr__`` and ``__dir__`` that import ``names`` on first use.

    Args:
        package: The importing module's ``__name__``.
        names: Public name → the module that defines it, or ``(module, attribute)`` when
            the attribute there has another name.
        public: Every public name (``__all__``), for ``dir()`` and completion.

    Returns:
        ``(__getattr__, __dir__)`` to assign at module level.
    """
    table = {
        name: target if isinstance(target, tuple) else (target, name)
        for name, target in names.items()
    }
    listed = sorted(set(public) | set(table))

    def __getattr__(name: str) -> Any:
        try:
            module_name, attribute = table[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(module_name), attribute)
        setattr(sys.modules[package], name, value)  # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(listed))

    return __getattr__, __dir__
