"""Optional packages of the SDK (``pip install 'labelvault[sdk]'``): imported when a call needs them."""

from __future__ import annotations

import importlib
from types import ModuleType

from labelvault.sdk.errors import MissingDependency


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` or say plainly what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(
            f"{purpose} needs the package {module!r}: pip install 'labelvault[sdk]' (or pip install {module})"
        ) from exc


def loaded(module: str) -> ModuleType | None:
    """The module if the program has imported it already (to recognise its objects without importing it)."""
    import sys

    return sys.modules.get(module)
