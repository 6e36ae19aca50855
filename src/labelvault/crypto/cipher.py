"""AES-256-GCM primitives: per-object data ciphers and key wrapping.

Every ciphertext carries associated data (AAD) naming its client and object, so a ciphertext
copied into another client's row, another object or another field does not open: the
authentication tag covers where the bytes belong, not only the bytes.

Nonces are 96 random bits per message. That is safe for about 2**32 messages per key (NIST
SP 800-38D); callers that seal more than that under one data key should add a new data key.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from labelvault.errors import CryptoError

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # 96-bit GCM nonce
TAG_BYTES = 16
# A wrapped data key: version byte || nonce || AES-GCM(data key) || tag. The version byte lets a
# later format (other algorithm, other wrapping) live next to this one in the same column.
WRAPPED_DATA_KEY_V1 = b"\x01"
WRAPPED_DATA_KEY_BYTES = 1 + NONCE_BYTES + KEY_BYTES + TAG_BYTES

ObjectId = int | str

# Random nonces are drawn from the OS in blocks: one getrandom call per nonce costs about as much
# as the encryption itself. list.pop is atomic, so no two threads get the same nonce; a forked
# child drops the pool it inherited, so parent and child never share one either.
_NONCE_BLOCK = 4096
_nonce_pool: list[bytes] = []
_pop_nonce = _nonce_pool.pop
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_nonce_pool.clear)


def _refill_and_pop_nonce() -> bytes:
    while True:
        block = os.urandom(NONCE_BYTES * _NONCE_BLOCK)
        _nonce_pool.extend([block[i : i + NONCE_BYTES] for i in range(0, len(block), NONCE_BYTES)])
        try:
            return _pop_nonce()
        except IndexError:  # other threads drained the fresh block first
            continue


def new_key() -> bytes:
    """32 bytes from the OS CSPRNG."""
    return os.urandom(KEY_BYTES)


def check_key(key: bytes, what: str) -> bytes:
    if not isinstance(key, bytes | bytearray | memoryview) or len(key) != KEY_BYTES:
        raise CryptoError(f"{what} must be {KEY_BYTES} bytes")
    return bytes(key)


def wrap(wrapping: AESGCM, secret: bytes, aad: bytes) -> tuple[bytes, bytes]:
    """Encrypt a key under another key; returns (nonce, ciphertext+tag)."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce, wrapping.encrypt(nonce, secret, aad)


def unwrap(wrapping: AESGCM, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes | None:
    """The wrapped key, or None when it does not open (wrong key, wrong AAD, tampered)."""
    try:
        secret = wrapping.decrypt(nonce, ciphertext, aad)
    except (InvalidTag, ValueError, TypeError):
        return None
    return secret if len(secret) == KEY_BYTES else None


def data_key_aad(client_id: int) -> bytes:
    return b"labelvault/dek/v1/%d" % client_id


def wrap_data_key(kek: AESGCM, client_id: int, data_key: bytes) -> bytes:
    nonce, ciphertext = wrap(kek, data_key, data_key_aad(client_id))
    return WRAPPED_DATA_KEY_V1 + nonce + ciphertext


def unwrap_data_key(kek: AESGCM, client_id: int, wrapped: bytes) -> bytes | None:
    if len(wrapped) != WRAPPED_DATA_KEY_BYTES or wrapped[:1] != WRAPPED_DATA_KEY_V1:
        return None
    return unwrap(kek, wrapped[1 : 1 + NONCE_BYTES], wrapped[1 + NONCE_BYTES :], data_key_aad(client_id))


class DataCipher:
    """Seals and opens one client's objects under one data key.

    Blob layout: nonce (12 bytes) || ciphertext || tag (16 bytes).
    AAD: ``f"{client_id}|{kind}|{object_id}"``; ``kind`` may not contain ``|``, so the AAD splits
    one way only (client ids are integers, the object id is the remainder).

    Safe to share between threads: the AESGCM object keeps no per-call state.
    """

    __slots__ = ("_decrypt", "_encrypt", "_prefix", "client_id")

    def __init__(self, client_id: int, data_key: bytes) -> None:
        aead = AESGCM(check_key(data_key, "data key"))
        self.client_id = client_id
        # Bound methods and the AAD prefix are looked up once: seal is on the import hot path.
        self._encrypt = aead.encrypt
        self._decrypt = aead.decrypt
        self._prefix = f"{client_id}|"

    def __repr__(self) -> str:  # never show key material
        return f"DataCipher(client_id={self.client_id})"

    def _aad(self, kind: str, object_id: ObjectId) -> bytes:
        if "|" in kind:
            raise CryptoError(f"kind {kind!r} may not contain '|'")
        return f"{self._prefix}{kind}|{object_id}".encode()

    def seal(self, kind: str, object_id: ObjectId, plaintext: bytes) -> bytes:
        # AAD built inline rather than through _aad: this is the import hot path.
        if "|" in kind:
            raise CryptoError(f"kind {kind!r} may not contain '|'")
        try:
            nonce = _pop_nonce()
        except IndexError:
            nonce = _refill_and_pop_nonce()
        return nonce + self._encrypt(nonce, plaintext, f"{self._prefix}{kind}|{object_id}".encode())

    def open(self, kind: str, object_id: ObjectId, blob: bytes) -> bytes:
        aad = self._aad(kind, object_id)
        if len(blob) < NONCE_BYTES + TAG_BYTES:
            raise self._failed(kind, object_id)
        try:
            return self._decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
        except (InvalidTag, ValueError, TypeError):
            raise self._failed(kind, object_id) from None

    def seal_many(self, kind: str, items: Iterable[tuple[ObjectId, bytes]]) -> list[bytes]:
        """Seal a batch: saves the per-call overhead of ``seal``; one getrandom call for all nonces."""
        if "|" in kind:
            raise CryptoError(f"kind {kind!r} may not contain '|'")
        items = items if isinstance(items, list | tuple) else list(items)
        randomness = os.urandom(NONCE_BYTES * len(items))
        encrypt, head = self._encrypt, f"{self._prefix}{kind}|"
        out: list[bytes] = []
        append = out.append
        offset = 0
        for object_id, plaintext in items:
            nonce = randomness[offset : offset + NONCE_BYTES]
            offset += NONCE_BYTES
            append(nonce + encrypt(nonce, plaintext, f"{head}{object_id}".encode()))
        return out

    def open_many(self, kind: str, items: Iterable[tuple[ObjectId, bytes]]) -> list[bytes]:
        """Open a batch; fails on the first blob that does not open, naming it."""
        if "|" in kind:
            raise CryptoError(f"kind {kind!r} may not contain '|'")
        decrypt, head = self._decrypt, f"{self._prefix}{kind}|"
        out: list[bytes] = []
        for object_id, blob in items:
            try:
                if len(blob) < NONCE_BYTES + TAG_BYTES:
                    raise ValueError("short blob")
                out.append(decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], f"{head}{object_id}".encode()))
            except (InvalidTag, ValueError, TypeError):
                raise self._failed(kind, object_id) from None
        return out

    def _failed(self, kind: str, object_id: ObjectId) -> CryptoError:
        return CryptoError(f"cannot decrypt {kind} {object_id} of client {self.client_id}")
