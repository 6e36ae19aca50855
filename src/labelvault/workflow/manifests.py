"""Manifests that index a directory's files by hash (an offboarding bundle's, a backup's), checked
for what is read of them before anything of the directory is trusted or written anywhere.

A malformed manifest is refused with ``InvalidInput`` naming the manifest file and the field:
``"<file>: <what is wrong>"``, ``details={"file": <file>, "field": <field or None>}``. A listed file
that is missing or whose hash differs is refused naming that file (``check_file``),
``details={"file": <its path in the directory>, "field": None}``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from labelvault.errors import InvalidInput

_SHA256 = re.compile(r"[0-9a-f]{64}")
_KINDS: dict[type, str] = {str: "a text", dict: "an object"}


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file in hex, read a megabyte at a time (a database dump may be large)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_inside_path(name: str) -> bool:
    """A relative path inside the directory (read as ``directory / name``): no absolute path, drive,
    backslash, ``.`` or ``..`` step, nor empty step."""
    parts = name.split("/")
    return bool(name) and "\\" not in name and ":" not in parts[0] and all(p not in ("", ".", "..") for p in parts)


@dataclass(frozen=True, slots=True)
class ManifestChecker:
    name: str  # the manifest's file name, as refusals name it
    inside: str  # what its file paths lie in, as refusals say it: "the bundle", "the backup"

    def refuse(self, field: str | None, message: str) -> InvalidInput:
        return InvalidInput(f"{self.name}: {message}", details={"file": self.name, "field": field})

    def load(self, data: bytes) -> dict[str, Any]:
        """The manifest's JSON object."""
        try:
            manifest = orjson.loads(data)
        except orjson.JSONDecodeError:
            manifest = None
        if not isinstance(manifest, dict):
            raise self.refuse(None, "not a JSON object")
        return manifest

    def field(self, manifest: dict[str, Any], field: str, wanted: type) -> Any:
        """A field that must be there, of the type ``wanted`` (``str`` or ``dict``)."""
        if field not in manifest:
            raise self.refuse(field, f"{field} is missing")
        if not isinstance(manifest[field], wanted):
            raise self.refuse(field, f"{field} is not {_KINDS[wanted]}")
        return manifest[field]

    def files(self, manifest: dict[str, Any]) -> dict[str, str]:
        """The ``files`` index: an object of paths inside the directory and their SHA-256 in hex."""
        index: dict[str, Any] = self.field(manifest, "files", dict)
        for file_name, digest in index.items():
            if not is_inside_path(file_name):
                raise self.refuse("files", f"files: {file_name!r} is not a path inside {self.inside}")
            if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
                raise self.refuse(f"files.{file_name}", f"files: the hash of {file_name} is not a SHA-256 in hex")
        return index

    def check_file(self, directory: Path, name: str, expected: str) -> None:
        """The file ``name`` the manifest lists (a path inside ``directory``, checked by ``files``)
        is there and its SHA-256 is ``expected``; else refused naming it."""
        path = directory / name
        if not path.is_file():
            raise InvalidInput(f"{name} is missing from {self.inside}, though {self.name} lists it",
                               details={"file": name, "field": None})
        if file_sha256(path) != expected:
            raise InvalidInput(f"{name} in {self.inside} is damaged: its SHA-256 does not match {self.name}",
                               details={"file": name, "field": None})
