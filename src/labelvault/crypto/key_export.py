"""Key backup: the key directory sealed under a passphrase, kept apart from database backups.

A database backup holds only ciphertext and wrapped data keys; the key directory (master key,
client key-encryption keys, audit signing key) is what opens them. It is exported as one file:
the directory's key files, encrypted with AES-256-GCM under a key derived from a passphrase with
argon2id (memory-hard, so a stolen export resists guessing). Destroyed client keys are not in the
key directory, so they are not in any export made afterwards.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from labelvault.crypto.keyring import sync_to_disk
from labelvault.errors import CryptoError, InvalidInput

FORMAT = "labelvault-keys/v1"
# argon2id: 64 MiB, 3 passes: a deliberate second of work per guess on this class of machine.
KDF_PARAMS = {"memory_kib": 65536, "time_cost": 3, "parallelism": 1}
MIN_PASSPHRASE = 12
_SKIP_SUFFIXES = (".tmp", ".new", ".destroyed", ".previous", ".lock")


def _derive(passphrase: str, salt: bytes, params: dict[str, int]) -> bytes:
    return hash_secret_raw(
        passphrase.encode(),
        salt,
        time_cost=params["time_cost"],
        memory_cost=params["memory_kib"],
        parallelism=params["parallelism"],
        hash_len=32,
        type=Type.ID,
    )


def _key_files(keys_dir: Path) -> dict[str, bytes]:
    files = {}
    for path in sorted(keys_dir.rglob("*")):
        if path.is_file() and not path.name.startswith(".") and not path.name.endswith(_SKIP_SUFFIXES):
            files[path.relative_to(keys_dir).as_posix()] = path.read_bytes()
    if "master.key" not in files:
        raise CryptoError(f"no master.key in {keys_dir}: a master key from a secret manager is backed up there")
    return files


def export_keys(keys_dir: Path, target: Path, passphrase: str) -> int:
    """Write the sealed key file; returns how many key files it holds."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise InvalidInput(
            f"the passphrase must have at least {MIN_PASSPHRASE} characters", details={"field": "passphrase"}
        )
    files = _key_files(keys_dir)
    salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    plaintext = json.dumps({name: base64.b64encode(data).decode() for name, data in files.items()}).encode()
    header = {
        "format": FORMAT,
        "kdf": "argon2id",
        **KDF_PARAMS,
        "salt": base64.b64encode(salt).decode(),
        "nonce": base64.b64encode(nonce).decode(),
    }
    aad = json.dumps(header, sort_keys=True).encode()
    sealed = AESGCM(_derive(passphrase, salt, KDF_PARAMS)).encrypt(nonce, plaintext, aad)
    document = {**header, "ciphertext": base64.b64encode(sealed).decode()}
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(document, handle)
    return len(files)


def unseal_keys(source: Path, passphrase: str) -> dict[str, bytes]:
    """The key files of a key export (path in the key directory -> content), opened in memory:
    nothing is written, so a wrong passphrase or a bad export leaves the key directory alone."""
    try:
        document = json.loads(source.read_text())
        header = {k: v for k, v in document.items() if k != "ciphertext"}
        if header.get("format") != FORMAT:
            raise ValueError("unknown format")
        params = {k: int(header[k]) for k in KDF_PARAMS}
        key = _derive(passphrase, base64.b64decode(header["salt"]), params)
        plaintext = AESGCM(key).decrypt(
            base64.b64decode(header["nonce"]),
            base64.b64decode(document["ciphertext"]),
            json.dumps(header, sort_keys=True).encode(),
        )
    except InvalidTag:
        raise CryptoError("wrong passphrase, or the key file was changed") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(f"{source} is not a LabelVault key export ({exc})") from None
    files = {name: base64.b64decode(data) for name, data in json.loads(plaintext).items()}
    for name in files:
        if ".." in Path(name).parts or Path(name).is_absolute():
            raise InvalidInput(f"bad path {name!r} in the key export")
    return files


def check_empty_keys_dir(keys_dir: Path) -> None:
    if keys_dir.exists() and any(keys_dir.iterdir()):
        raise InvalidInput(f"{keys_dir} is not empty: restore keys into an empty key directory")


def write_keys(files: dict[str, bytes], keys_dir: Path) -> int:
    """Write unsealed key files into an empty key directory, each file and folder synced to disk
    (a restore renames the directory into place and may then be the only copy but the export);
    returns how many were written."""
    check_empty_keys_dir(keys_dir)
    folders = {keys_dir}
    for name, data in files.items():
        path = keys_dir / name
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        folders.update(folder for folder in path.parents if folder.is_relative_to(keys_dir))
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    keys_dir.chmod(0o700)
    for folder in folders:
        sync_to_disk(folder)
    return len(files)
