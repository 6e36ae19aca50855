"""The file keyring: master key, per-client key-encryption keys, wrapped data keys.

Key hierarchy (envelope encryption)::

    master key            <keys_dir>/master.key (base64, 0600) or supplied by a secret manager
      └─ client KEK       <keys_dir>/clients/<client_id>.key, wrapped by the master key
           └─ data key    stored *wrapped* in the client's database rows (new_data_key)
                └─ data   DataCipher.seal / open, AAD "<client>|<kind>|<object id>"

The client KEKs live only in the key directory, never in the database. Destroying a client's
KEK file (``destroy_client_key``) therefore makes every copy of that client's data unreadable,
including database backups taken earlier: their wrapped data keys have nothing left to open
them (crypto-shredding). This only holds if the key directory itself is not kept in long-lived
backups next to the database; and overwriting a file does not guarantee the old blocks are gone
on SSDs or copy-on-write file systems, which is why the KEK never exists in plain form on disk.

Client key file (JSON, versioned, so other wrappings, e.g. a passphrase for export, can be added
as another ``wrapping.by`` without changing the rest)::

    {"format": "labelvault-client-key", "version": 1, "client_id": 7, "key_id": "<16 hex>",
     "created_at": "...", "wrapping": {"by": "master", "alg": "A256GCM", "master_id": "<16 hex>"},
     "nonce": "<b64>", "ciphertext": "<b64>"}

AAD of the wrapped KEK: ``labelvault/kek/v1/<client_id>/<key_id>``: a file renamed to another
client does not open. All writes are atomic (temp file in the same directory, 0600, fsync,
rename, fsync of the directory). Mutations (create, destroy, rotate) take an exclusive
``flock`` on ``<keys_dir>/.lock`` so that several server processes can share one key directory.

Several processes may hold keyrings on the same directory. A process notices a KEK destroyed or
replaced by another process within ``revalidate_seconds`` (it re-reads the file's key id), and
re-reads the master key from disk when a client file no longer opens under the master it holds
(``rotate_master`` in another process).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from labelvault.crypto.cipher import (
    DataCipher,
    check_key,
    new_key,
    unwrap,
    unwrap_data_key,
    wrap,
    wrap_data_key,
)
from labelvault.errors import CryptoError

try:  # POSIX: serialise key-directory mutations between processes
    import fcntl
except ImportError:  # pragma: no cover - Windows development machines: in-process locking only
    fcntl = None  # type: ignore[assignment]

__all__ = ["DataCipher", "Keyring"]

MASTER_FILE = "master.key"
MASTER_NEXT_FILE = "master.key.new"  # staged new master during rotation; its rename is the commit
MASTER_PREVIOUS_FILE = "master.key.previous"  # old master, kept while client files are mixed
CLIENTS_DIR = "clients"
LOCK_FILE = ".lock"
KEY_SUFFIX = ".key"
STAGED_SUFFIX = ".key.new"
TOMBSTONE_SUFFIX = ".destroyed"
CLIENT_FORMAT = "labelvault-client-key"
TOMBSTONE_FORMAT = "labelvault-client-key-tombstone"
CLIENT_VERSION = 1
_CLIENT_FILE_RE = re.compile(r"^(\d+)\.key$")
_MAX_CACHED_CIPHERS = 4096


@dataclass(frozen=True)
class _Master:
    id: str
    key: bytes = field(repr=False)  # kept to write master.key.previous during rotation
    aead: AESGCM = field(repr=False)

    @classmethod
    def of(cls, key: bytes) -> _Master:
        return cls(master_id(key), key, AESGCM(key))


@dataclass
class _Kek:
    key_id: str
    aead: AESGCM
    checked_at: float


def master_id(key: bytes) -> str:
    """A public fingerprint of a master key: says which master wrapped a file, reveals nothing."""
    return hashlib.sha256(b"labelvault/master-id/v1\x00" + key).hexdigest()[:16]


def _kek_aad(client_id: int, key_id: str) -> bytes:
    return b"labelvault/kek/v1/%d/%s" % (client_id, key_id.encode())


def _check_client_id(client_id: int) -> int:
    # The id becomes a file name: only non-negative integers, so no path tricks are possible.
    if isinstance(client_id, bool) or not isinstance(client_id, int) or client_id < 0:
        raise CryptoError(f"invalid client id {client_id!r}")
    return client_id


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


# -- durable file helpers ---------------------------------------------------------------------


def sync_to_disk(path: Path) -> None:
    """Flush a file, or a folder's entries, to disk (folders only on POSIX: Windows cannot)."""
    if os.name != "posix" and path.is_dir():  # pragma: no cover
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_dir(path: Path) -> None:
    if not path.is_dir():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)  # mkdir's mode is masked by the umask


def _write_new(path: Path, data: bytes) -> None:
    """Create ``path`` (0600) with ``data`` and fsync it; fails if it exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")


def _write_atomic(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    """Replace (or, if ``exclusive``, create) ``path`` so readers see the old or the new file."""
    tmp = _temp_path(path)
    _write_new(tmp, data)
    try:
        if exclusive:
            os.link(tmp, path)  # atomic create-if-absent
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    sync_to_disk(path.parent)


def _shred(path: Path) -> bool:
    """Overwrite with random bytes, fsync, unlink. The caller fsyncs the directory."""
    try:
        fd = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        return False
    try:
        size = os.fstat(fd).st_size
        os.write(fd, os.urandom(max(size, 1)))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.unlink(path)
    return True


def _encode_master(key: bytes) -> bytes:
    # One base64 line: the same text an operator would put into a secret manager.
    return base64.b64encode(key) + b"\n"


def _read_master(path: Path) -> bytes:
    try:
        text = path.read_bytes().strip()
        key = base64.b64decode(text, validate=True)
    except FileNotFoundError:
        raise
    except (OSError, binascii.Error, ValueError) as exc:
        raise CryptoError(f"master key file {path} is unreadable: {exc}") from None
    if len(key) != 32:
        raise CryptoError(f"master key file {path} does not hold a 32-byte key")
    return key


class Keyring:
    """Keys of all clients; build with :meth:`initialize` or :meth:`open`, share per process.

    Thread-safe. ``data_cipher`` is the hot path: after the first call it is a dict lookup.
    """

    def __init__(
        self,
        keys_dir: Path,
        masters: list[_Master],
        *,
        external_master: bool,
        revalidate_seconds: float = 1.0,
    ) -> None:
        self.keys_dir = keys_dir
        self.clients_dir = keys_dir / CLIENTS_DIR
        self._masters = masters  # [current] or [current, previous] mid-rotation; replaced, not mutated
        self._external = external_master
        self._revalidate = revalidate_seconds
        self._mutex = threading.RLock()
        self._keks: dict[int, _Kek] = {}
        self._ciphers: dict[tuple[int, bytes], DataCipher] = {}

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def initialize(cls, keys_dir: Path | str, *, revalidate_seconds: float = 1.0) -> Keyring:
        """Create the key directory (0700) and master key (0600) if absent; idempotent.

        Also finishes or rolls back a master rotation that a crash interrupted.
        """
        keys_dir = Path(keys_dir)
        _make_dir(keys_dir)
        _make_dir(keys_dir / CLIENTS_DIR)
        with _file_lock(keys_dir):
            master_path = keys_dir / MASTER_FILE
            if not master_path.exists():
                if any(_client_files(keys_dir / CLIENTS_DIR)) or (keys_dir / MASTER_PREVIOUS_FILE).exists():
                    # A new master would silently orphan every existing client key.
                    raise CryptoError(
                        f"{keys_dir} holds client keys but no {MASTER_FILE}; refusing to create a new "
                        "master key. Restore master.key or supply the master key from your secret manager."
                    )
                _write_atomic(master_path, _encode_master(new_key()), exclusive=True)
            keyring = cls.open(keys_dir, revalidate_seconds=revalidate_seconds)
            keyring._recover_locked()
        return keyring

    @classmethod
    def open(
        cls, keys_dir: Path | str, master_key: bytes | None = None, *, revalidate_seconds: float = 1.0
    ) -> Keyring:
        """Open an existing key directory.

        ``master_key``: the raw 32-byte master key from a secret manager (base64-decoded by the
        caller); then no ``master.key`` file is read or written.
        """
        keys_dir = Path(keys_dir)
        if master_key is not None:
            key = check_key(master_key, "master key")
            _make_dir(keys_dir)
            _make_dir(keys_dir / CLIENTS_DIR)
            return cls(
                keys_dir, [_Master.of(key)], external_master=True, revalidate_seconds=revalidate_seconds
            )
        keyring = cls(keys_dir, [], external_master=False, revalidate_seconds=revalidate_seconds)
        keyring._reload_masters()
        return keyring

    @property
    def master_key_id(self) -> str:
        """Fingerprint of the current master key (for status output and audit entries)."""
        return self._masters[0].id

    # -- client keys --------------------------------------------------------------------------

    def client_ids(self) -> list[int]:
        return sorted(_client_files(self.clients_dir))

    def has_client_key(self, client_id: int) -> bool:
        return self._client_path(client_id).exists()

    def create_client_key(self, client_id: int) -> None:
        """Give a client its own KEK; CryptoError if it has one already."""
        path = self._client_path(client_id)
        with self._locked():
            if path.exists():
                raise CryptoError(f"client {client_id} has a key already")
            key_id = os.urandom(8).hex()
            record = self._seal_record(client_id, key_id, new_key(), self._masters[0])
            try:
                _write_atomic(path, record, exclusive=True)
            except FileExistsError:
                raise CryptoError(f"client {client_id} has a key already") from None
            tombstone = self._tombstone_path(client_id)
            if tombstone.exists():  # the id is reused after an earlier client was offboarded
                tombstone.unlink()
                sync_to_disk(self.clients_dir)
            self._forget(client_id)

    def destroy_client_key(self, client_id: int) -> bool:
        """Crypto-shred a client: overwrite and delete its KEK file; True if there was one.

        Every data key wrapped under it, including copies in old database backups, becomes
        useless. Leaves a tombstone (no key material) so that every process can say "destroyed".
        """
        path = self._client_path(client_id)
        with self._locked():
            existed = _shred(path)
            # Copies that a crash could have left: staged rotation files and stale temp files.
            existed = _shred(self.clients_dir / f"{client_id}{STAGED_SUFFIX}") or existed
            for stale in self.clients_dir.glob(f".{client_id}{KEY_SUFFIX}.*.tmp"):
                _shred(stale)
            tombstone = self._tombstone_path(client_id)
            if existed or tombstone.exists():
                body = {
                    "format": TOMBSTONE_FORMAT,
                    "version": 1,
                    "client_id": client_id,
                    "destroyed_at": _now(),
                }
                _write_atomic(tombstone, json.dumps(body).encode())
            sync_to_disk(self.clients_dir)
            self._forget(client_id)
        return existed

    # -- data keys ----------------------------------------------------------------------------

    def new_data_key(self, client_id: int) -> bytes:
        """A fresh random data key, returned wrapped by the client's KEK (store it in the DB)."""
        with self._mutex:
            kek = self._kek(_check_client_id(client_id))
        return wrap_data_key(kek.aead, client_id, new_key())

    def data_cipher(self, client_id: int, wrapped_data_key: bytes) -> DataCipher:
        """The cipher for one wrapped data key of a client; cached, as it runs on every request."""
        if type(wrapped_data_key) is not bytes:  # memoryview from some DB drivers
            wrapped_data_key = bytes(wrapped_data_key)
        cipher = self._ciphers.get((client_id, wrapped_data_key))
        if cipher is not None:
            kek = self._keks.get(client_id)
            if kek is not None and time.monotonic() - kek.checked_at < self._revalidate:
                return cipher
        return self._data_cipher_slow(client_id, wrapped_data_key)

    def _data_cipher_slow(self, client_id: int, wrapped: bytes) -> DataCipher:
        with self._mutex:
            kek = self._kek(_check_client_id(client_id))  # revalidates; drops caches if replaced
            cipher = self._ciphers.get((client_id, wrapped))
            if cipher is not None:
                return cipher
            data_key = unwrap_data_key(kek.aead, client_id, wrapped)
            if data_key is None:
                raise CryptoError(f"data key does not open under the key of client {client_id}")
            cipher = DataCipher(client_id, data_key)
            if len(self._ciphers) >= _MAX_CACHED_CIPHERS:
                self._ciphers.clear()
            self._ciphers[(client_id, wrapped)] = cipher
            return cipher

    # -- master rotation ----------------------------------------------------------------------

    def rotate_master(self, new_master_key: bytes | None = None) -> None:
        """Replace the master key and re-wrap every client KEK under it, without downtime.

        The KEKs themselves do not change, so wrapped data keys in the database stay valid.

        Steps (under the directory lock):

        1. stage ``master.key.new`` and ``clients/<id>.key.new`` (new master) for every client;
        2. write ``master.key.previous`` (old master);
        3. ``os.replace(master.key.new, master.key)``: the commit point;
        4. ``os.replace`` every staged client file over the live one;
        5. shred ``master.key.previous``.

        Readers holding the old master in memory fail on a re-wrapped file, re-read
        ``master.key`` and ``master.key.previous`` from disk (in that order) and retry once;
        readers loading masters mid-rotation hold both and open either kind of file.

        A crash before step 3 leaves the old master in charge: the staged files are deleted on
        the next ``initialize``, create, destroy or rotation. A crash after step 3 leaves client
        files under both masters, which loaders open with the pair; the next such call moves
        the remaining staged files into place and retires the previous master.

        With a master key from a secret manager, pass the new key as ``new_master_key``; no
        master file is written, files already under the new key are skipped (so a crashed
        rotation is finished by running it again with the old key loaded), and other
        processes must be restarted with the new key.
        """
        new_key_bytes = check_key(new_master_key, "new master key") if new_master_key is not None else None
        with self._locked():
            if self._external:
                if new_key_bytes is None:
                    raise CryptoError(
                        "the master key comes from a secret manager: pass the new key to rotate_master "
                        "and store it there"
                    )
                self._rotate_external(_Master.of(new_key_bytes))
                return
            self._rotate_files(new_key_bytes or new_key())

    def _rotate_files(self, new_key_bytes: bytes) -> None:
        old, new = self._masters[0], _Master.of(new_key_bytes)
        next_path = self.keys_dir / MASTER_NEXT_FILE
        ids = self.client_ids()
        try:
            _write_new(next_path, _encode_master(new_key_bytes))
            for client_id in ids:  # 1. stage; nothing live changes yet
                key_id, kek = self._open_file_kek(client_id)
                _write_new(self._staged_path(client_id), self._seal_record(client_id, key_id, kek, new))
            sync_to_disk(self.clients_dir)
            sync_to_disk(self.keys_dir)
        except BaseException:
            self._discard_staged()
            raise
        # 2. keep the old master reachable for loaders while client files are mixed
        _write_atomic(self.keys_dir / MASTER_PREVIOUS_FILE, _encode_master(old.key))
        os.replace(next_path, self.keys_dir / MASTER_FILE)  # 3. commit
        sync_to_disk(self.keys_dir)
        self._masters = [new, old]
        self._finish_rotation(ids)

    def _rotate_external(self, new: _Master) -> None:
        for client_id in self.client_ids():
            record = self._read_record(client_id)
            if record["wrapping"].get("master_id") == new.id:
                continue  # done by an earlier, interrupted run
            key_id, kek = self._open_file_kek(client_id)
            _write_atomic(self._client_path(client_id), self._seal_record(client_id, key_id, kek, new))
        self._masters = [new]

    def _finish_rotation(self, ids: list[int]) -> None:
        """After the commit: swap staged client files in, re-wrap stragglers, retire the old master."""
        current = self._masters[0]
        for client_id in ids:  # 4.
            staged = self._staged_path(client_id)
            if not staged.exists():
                continue
            if self._read_staged_master_id(staged) == current.id:
                os.replace(staged, self._client_path(client_id))
            else:  # not under the committed master: never let it replace a good file
                _shred(staged)
        sync_to_disk(self.clients_dir)
        for client_id in self.client_ids():  # files a crash left under the previous master
            if self._read_record(client_id)["wrapping"].get("master_id") != current.id:
                key_id, kek = self._open_file_kek(client_id)
                _write_atomic(
                    self._client_path(client_id), self._seal_record(client_id, key_id, kek, current)
                )
        _shred(self.keys_dir / MASTER_PREVIOUS_FILE)  # 5.
        sync_to_disk(self.keys_dir)
        self._masters = [current]

    def _recover_locked(self) -> None:
        """Finish (after the commit) or roll back (before it) a rotation a crash interrupted."""
        if self._external:
            return
        self._reload_masters()
        for stale in [*self.keys_dir.glob(".*.tmp"), *self.clients_dir.glob(".*.tmp")]:
            _shred(stale)  # writers hold the lock, so temp files seen now are leftovers
        if (self.keys_dir / MASTER_NEXT_FILE).exists():
            self._discard_staged()  # crashed before the commit: the old master is still current
            previous = self.keys_dir / MASTER_PREVIOUS_FILE
            if previous.exists() and master_id(_read_master(previous)) == self._masters[0].id:
                _shred(previous)
                sync_to_disk(self.keys_dir)
            self._reload_masters()
        staged = [int(p.name[: -len(STAGED_SUFFIX)]) for p in self.clients_dir.glob(f"*{STAGED_SUFFIX}")]
        if staged or (self.keys_dir / MASTER_PREVIOUS_FILE).exists():
            self._finish_rotation(sorted(staged))

    @staticmethod
    def _read_staged_master_id(path: Path) -> str | None:
        try:
            wrapping = json.loads(path.read_bytes()).get("wrapping", {})
        except (OSError, ValueError, AttributeError):
            return None
        return wrapping.get("master_id") if isinstance(wrapping, dict) else None

    def _discard_staged(self) -> None:
        # Client files first: staged client files without master.key.new would read as committed.
        for path in self.clients_dir.glob(f"*{STAGED_SUFFIX}"):
            _shred(path)
        sync_to_disk(self.clients_dir)
        _shred(self.keys_dir / MASTER_NEXT_FILE)
        sync_to_disk(self.keys_dir)

    # -- internals ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Thread and process exclusion for mutations; works on the master as found on disk."""
        with self._mutex, _file_lock(self.keys_dir):
            self._recover_locked()
            yield

    def _reload_masters(self) -> None:
        if self._external:
            return
        # Current first, then previous: a rotation renames the new master in before it shreds
        # the previous one, so this order never misses the master of a client file.
        path = self.keys_dir / MASTER_FILE
        try:
            masters = [_Master.of(_read_master(path))]
        except FileNotFoundError:
            raise CryptoError(
                f"no master key at {path}: run `labelvault init` to create the key directory, or "
                "supply the master key (base64) from your secret manager in LABELVAULT_MASTER_KEY"
            ) from None
        with contextlib.suppress(FileNotFoundError):
            previous = _Master.of(_read_master(self.keys_dir / MASTER_PREVIOUS_FILE))
            if previous.id != masters[0].id:
                masters.append(previous)
        self._masters = masters

    def _client_path(self, client_id: int) -> Path:
        return self.clients_dir / f"{_check_client_id(client_id)}{KEY_SUFFIX}"

    def _staged_path(self, client_id: int) -> Path:
        return self.clients_dir / f"{client_id}{STAGED_SUFFIX}"

    def _tombstone_path(self, client_id: int) -> Path:
        return self.clients_dir / f"{client_id}{TOMBSTONE_SUFFIX}"

    def _forget(self, client_id: int) -> None:
        with self._mutex:
            self._keks.pop(client_id, None)
            for key in [k for k in self._ciphers if k[0] == client_id]:
                del self._ciphers[key]

    def _seal_record(self, client_id: int, key_id: str, kek: bytes, master: _Master) -> bytes:
        nonce, ciphertext = wrap(master.aead, kek, _kek_aad(client_id, key_id))
        record = {
            "format": CLIENT_FORMAT,
            "version": CLIENT_VERSION,
            "client_id": client_id,
            "key_id": key_id,
            "created_at": _now(),
            "wrapping": {"by": "master", "alg": "A256GCM", "master_id": master.id},
            "nonce": base64.b64encode(nonce).decode(),
            "ciphertext": base64.b64encode(ciphertext).decode(),
        }
        return json.dumps(record, indent=1).encode() + b"\n"

    def _read_record(self, client_id: int) -> dict[str, Any]:
        path = self._client_path(client_id)
        try:
            record = json.loads(path.read_bytes())
        except FileNotFoundError:
            if self._tombstone_path(client_id).exists():
                raise CryptoError(f"key of client {client_id} has been destroyed") from None
            raise CryptoError(f"no key for client {client_id}") from None
        except (OSError, ValueError):
            raise CryptoError(f"key file of client {client_id} is unreadable") from None
        if (
            not isinstance(record, dict)
            or record.get("format") != CLIENT_FORMAT
            or record.get("version") != CLIENT_VERSION
            or record.get("client_id") != client_id
            or not isinstance(record.get("key_id"), str)
            or not isinstance(record.get("wrapping"), dict)
        ):
            raise CryptoError(
                f"key file of client {client_id} has an unknown format or belongs to another client"
            )
        return record

    def _unwrap_record(self, record: dict[str, Any]) -> bytes | None:
        if record["wrapping"].get("by") != "master":
            return None
        try:
            nonce = base64.b64decode(record["nonce"], validate=True)
            ciphertext = base64.b64decode(record["ciphertext"], validate=True)
        except (KeyError, TypeError, ValueError):
            return None
        aad = _kek_aad(record["client_id"], record["key_id"])
        wanted = record["wrapping"].get("master_id")
        # The master named in the file first; the others too, in case the id scheme ever changes.
        for master in sorted(self._masters, key=lambda m: m.id != wanted):
            kek = unwrap(master.aead, nonce, ciphertext, aad)
            if kek is not None:
                return kek
        return None

    def _open_file_kek(self, client_id: int) -> tuple[str, bytes]:
        """(key id, KEK bytes) from the client file; re-reads the master once if it does not open."""
        for attempt in range(2):
            record = self._read_record(client_id)
            kek = self._unwrap_record(record)
            if kek is not None:
                return record["key_id"], kek
            if attempt == 0 and not self._external:
                self._reload_masters()  # another process may have rotated the master
            else:
                break
        raise CryptoError(
            f"key of client {client_id} does not open under the master key"
            " (wrong master key or tampered file)"
        )

    def _kek(self, client_id: int) -> _Kek:
        """The client's KEK, cached; re-checked against the file every ``revalidate_seconds``."""
        now = time.monotonic()
        kek = self._keks.get(client_id)
        if kek is not None:
            if now - kek.checked_at < self._revalidate:
                return kek
            try:
                key_id = self._read_record(client_id)["key_id"]
            except CryptoError:
                self._forget(client_id)  # destroyed or damaged by another process
                raise
            if key_id == kek.key_id:
                kek.checked_at = now
                return kek
            self._forget(client_id)  # replaced (destroyed, id reused): nothing cached may survive
        key_id, key = self._open_file_kek(client_id)
        kek = _Kek(key_id, AESGCM(key), now)
        self._keks[client_id] = kek
        return kek


def _client_files(clients_dir: Path) -> Iterator[int]:
    if not clients_dir.is_dir():
        return
    with os.scandir(clients_dir) as entries:  # closed even when the caller stops early (any())
        names = [entry.name for entry in entries]
    for name in names:
        match = _CLIENT_FILE_RE.match(name)
        if match:
            yield int(match.group(1))


@contextlib.contextmanager
def _file_lock(keys_dir: Path) -> Iterator[None]:
    fd = os.open(keys_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock
