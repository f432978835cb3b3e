"""Package faces that load their names on first use (PEP 562), so importing a package for one light module does not
import its heavy siblings (``umsi.load`` and ``umsi-serve`` never import pytorch_lightning, albumentations or
torchmetrics)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_exports(
    package: str, modules: Mapping[str, Sequence[str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package``'s ``__init__``: ``modules`` maps each module to the
    public names it defines (a submodule exported by its own name lists itself: ``{"pkg.sub": ["sub"]}``).
    Unknown names raise ``AttributeError`` as usual."""
    exports = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        loaded = importlib.import_module(module)
        return loaded if module == f"{package}.{name}" else getattr(loaded, name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__, sorted(exports)
