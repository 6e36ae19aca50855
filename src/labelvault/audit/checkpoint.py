"""Signed checkpoints of the audit log and verification of a stored log against them.

A checkpoint commits to the whole log at one size: (install, size, Merkle root, time), signed with an
Ed25519 key that lives in a file *outside* the database. A client keeps checkpoints outside too; a
later verify then detects any change, deletion or reordering of an entry before the checkpoint, and
truncation below it, even by someone who can rewrite every database row (RFC 9162 §2.1.4: the
checkpoint root must be the root of the first ``size`` leaves of today's log).

Text form
---------
A C2SP signed note (c2sp.org/signed-note) whose text follows c2sp.org/tlog-checkpoint, so standard
transparency tooling can read it::

    labelvault-audit/v1/<install id>
    <tree size, decimal>
    <base64 root hash>
    <RFC 3339 UTC time, seconds>

    — labelvault-audit/v1/<install id> <base64(4-byte key id || 64-byte Ed25519 signature)>

The signature covers the text up to and including the newline after the time. The key name is the
origin line and the key id is SHA-256(name || 0x0A || 0x01 || raw public key)[:4] (signed-note,
"Ed25519 signatures"), so a checkpoint from another key or another install never matches.

Storage contract (what the storage layer stores and streams to ``verify_log``)
--------------------------------------------------------------------------------
One append-only log per install (or per client, if trails are kept per client). Each row holds:

* ``seq``: the leaf index, 0-based, contiguous, unique (primary key). Entry ``seq`` is leaf ``seq``.
* ``entry``: the exact bytes of ``merkle.encode_entry(fields)``; the fields include ``"seq"`` again,
  so moving an entry to another row is visible even if its hashes move with it. Never plaintext:
  hashes of ciphertexts only (``merkle.ciphertext_digest``), so the log stays verifiable after a
  client's keys are destroyed.
* ``leaf_hash``: ``merkle.leaf_hash(entry)`` (32 bytes).
* ``root``: the running root, MTH of leaves 0..seq (32 bytes). It equals the root of any checkpoint of
  size ``seq + 1``, so a checkpoint a client brings back can be matched with one row lookup.

Appending (``append_record``) must be serialised: in one transaction, lock the log head row (``SELECT
... FOR UPDATE`` on PostgreSQL; SQLite has one writer), resume ``MerkleTree.from_frontier(size,
frontier)`` from it, build the record, insert it and store the new (size, frontier) in the head. Never
keep the tree in process memory between requests: other server processes append too.

Periodically (every N entries or minutes) and on demand the server signs a checkpoint with
``AuditSigner`` and stores it; clients may fetch and keep them. The signing key file is not in the
database or its backups, so rewriting rows cannot produce a matching signed checkpoint.

``verify_log`` streams rows in ``seq`` order (``ORDER BY seq``; O(log n) memory for any size) and,
for each row, in this order:

1. ``seq`` equals the expected next index, otherwise **deleted** (a gap: the first missing seq is
   named) or **reordered** (the expected seq comes right after, or a seq repeats).
2. ``leaf_hash(entry) == leaf_hash`` recorded, otherwise **edited** (this seq).
3. the ``seq`` inside the entry equals the row's ``seq``, otherwise **reordered** (rows' contents were
   swapped) -- or **malformed** if the entry is not a canonical JSON object.
4. the recomputed running root equals the recorded ``root``, otherwise **edited** (this seq: the
   entry and its leaf hash were rewritten consistently, or the root itself was).
5. at every checkpoint size, the recomputed root equals the checkpoint root, otherwise
   **checkpoint_mismatch**: someone recomputed all hashes after an edit. Only signed checkpoints
   catch that, and they bound it (``bad_range``: after the last matching checkpoint) rather than
   name it.
6. at the end, a checkpoint larger than the log means **truncated** (the first missing seq is named).

What cannot be detected: dropping the newest entries after the last checkpoint a verifier holds (a
hash chain or tree cannot notice its own tail going missing; RFC 9162 logs rely on signed tree heads
for the same reason). Checkpoint often and let clients keep them.

Any field of a row may be None when the storage layer does not have it (e.g. an exported trail of
leaf hashes only); the checks that need it are then skipped. Raw ``bytes`` items are taken as entry
bytes whose seq is their own ``"seq"`` field.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import enum
import hashlib
import os
import re
import secrets
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from labelvault.audit.merkle import (
    HASH_SIZE,
    MerkleTree,
    encode_entry,
    entry_seq,
    leaf_hash,
)
from labelvault.errors import AuditTampered, CryptoError, InvalidInput

__all__ = [
    "ORIGIN_PREFIX",
    "AuditSigner",
    "Checkpoint",
    "NoteSignature",
    "Problem",
    "StoredEntry",
    "StoredRecord",
    "VerifyReport",
    "append_record",
    "load_public_key",
    "note_key_id",
    "sign",
    "verify_log",
    "verify_signature",
]

ORIGIN_PREFIX = "labelvault-audit/v1/"
_ED25519_TYPE = b"\x01"  # signed-note signature type byte for Ed25519
_SIG_PREFIX = "\u2014 "  # em dash + space starts a signature line (signed-note "Format")
_MAX_SIGNATURES = 64
_MAX_NOTE_BYTES = 16_384
_INSTALL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")
_SIZE_RE = re.compile(r"^(0|[1-9][0-9]{0,18})$")
_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
_KEY_NAME_RE = re.compile(r"^[^\s+]+$")


# --- keys ------------------------------------------------------------------------------------------


def _raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def note_key_id(key_name: str, public_key: Ed25519PublicKey) -> bytes:
    """signed-note key id: SHA-256(key name || 0x0A || 0x01 || 32-byte public key)[:4]."""
    return hashlib.sha256(key_name.encode() + b"\n" + _ED25519_TYPE + _raw_public(public_key)).digest()[:4]


def load_public_key(data: Ed25519PublicKey | bytes | str) -> Ed25519PublicKey:
    """Accept a key object, PEM (SubjectPublicKeyInfo), raw 32 bytes, or base64 of the raw bytes."""
    if isinstance(data, Ed25519PublicKey):
        return data
    raw: bytes
    if isinstance(data, str):
        data = data.strip().encode()
    if isinstance(data, bytes) and data.lstrip().startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError as exc:
            raise InvalidInput("not a PEM public key") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise InvalidInput("the audit public key must be Ed25519")
        return key
    if isinstance(data, bytes) and len(data) == 32:
        raw = data
    else:
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError, TypeError) as exc:
            raise InvalidInput("public key is neither PEM, raw 32 bytes nor base64") from exc
    if len(raw) != 32:
        raise InvalidInput("an Ed25519 public key is 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


DOCUMENT_CONTEXT = b"labelvault-document/v1\n"


def verify_document(public_key: Ed25519PublicKey | bytes | str, data: bytes, signature: bytes) -> None:
    """Check a document signature made by ``AuditSigner.sign_document``; raises ``AuditTampered``."""
    try:
        load_public_key(public_key).verify(signature, DOCUMENT_CONTEXT + data)
    except InvalidSignature:
        raise AuditTampered(
            "the document's signature does not verify: it was changed or signed by another key"
        ) from None


class AuditSigner:
    """The Ed25519 checkpoint signing key, read from a file kept outside the database.

    The file holds an unencrypted PKCS#8 PEM (or 32 raw bytes) with mode 0600; protecting it is the
    operator's job, like the key-encryption keys. Backups of the database alone never contain it.
    """

    def __init__(self, private_key: Ed25519PrivateKey, path: Path | None = None) -> None:
        self._key = private_key
        self.path = path

    @classmethod
    def initialize(cls, path: str | os.PathLike[str]) -> AuditSigner:
        """Create the key file if it is absent (idempotent; safe if processes race), then open it."""
        p = Path(path)
        if not p.exists():
            _create_key_file(p)
        return cls.open(p)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> AuditSigner:
        p = Path(path)
        try:
            st = p.stat()
        except FileNotFoundError as exc:
            raise CryptoError(
                f"audit signing key not found at {p}; create it with the setup command",
                details={"path": str(p)},
            ) from exc
        # Like ssh: refuse a private key others can read, rather than sign with a leaked key.
        if os.name == "posix" and st.st_mode & 0o077:
            raise CryptoError(
                f"audit signing key {p} is accessible by other users (mode {st.st_mode & 0o777:o}); "
                "run chmod 600 on it",
                details={"path": str(p)},
            )
        data = p.read_bytes()
        try:
            if data.lstrip().startswith(b"-----BEGIN"):
                key = serialization.load_pem_private_key(data, password=None)
            elif len(data) == 32:
                key = Ed25519PrivateKey.from_private_bytes(data)
            else:
                raise ValueError("neither PEM nor 32 raw bytes")
        except (ValueError, TypeError) as exc:
            raise CryptoError(f"audit signing key {p} is unreadable: {exc}", details={"path": str(p)}) from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise CryptoError(f"audit signing key {p} is not an Ed25519 key", details={"path": str(p)})
        return cls(key, p)

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._key.public_key()

    def public_key_pem(self) -> str:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def public_key_b64(self) -> str:
        return base64.b64encode(_raw_public(self.public_key)).decode()

    def fingerprint(self) -> str:
        """Hex SHA-256 of the raw public key, for people comparing keys by eye."""
        return hashlib.sha256(_raw_public(self.public_key)).hexdigest()

    def verifier_key(self, install_id: str) -> str:
        """The key as a signed-note verifier key string ``<name>+<hex key id>+<base64(0x01||key)>``
        (the form Go's golang.org/x/mod/sumdb/note and transparency-dev tools read)."""
        name = ORIGIN_PREFIX + install_id
        kid = note_key_id(name, self.public_key)
        return f"{name}+{kid.hex()}+{base64.b64encode(_ED25519_TYPE + _raw_public(self.public_key)).decode()}"

    def sign_document(self, data: bytes) -> bytes:
        """Sign a document of the install (an offboarding manifest, a deletion certificate).
        Domain-separated from checkpoints, so neither signature can pass for the other."""
        return self._key.sign(DOCUMENT_CONTEXT + data)

    def sign(self, checkpoint: Checkpoint) -> Checkpoint:
        """Return the checkpoint with this key's signature added (replacing an older one of ours)."""
        name = checkpoint.origin
        kid = note_key_id(name, self.public_key)
        sig = NoteSignature(name, kid, self._key.sign(checkpoint.body().encode()))
        others = tuple(s for s in checkpoint.signatures if (s.key_name, s.key_id) != (name, kid))
        return replace(checkpoint, signatures=(*others, sig))


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # Write a temp file fully, then hard-link it into place: the key path never shows a half-written
    # key after a crash, and link() fails instead of overwriting a key another process just made.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the umask could have removed owner bits; make it exactly 0600
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass  # another process won the race; its key is the key
    except OSError:
        # File systems without hard links: exclusive create is still never an overwrite.
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, pem)
                os.fsync(fd)
            finally:
                os.close(fd)
    finally:
        tmp.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # make the new directory entry durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


# --- checkpoints -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoteSignature:
    key_name: str
    key_id: bytes  # 4 bytes, see note_key_id
    signature: bytes

    def line(self) -> str:
        return f"{_SIG_PREFIX}{self.key_name} {base64.b64encode(self.key_id + self.signature).decode()}\n"


@dataclass(frozen=True)
class Checkpoint:
    """The log of ``install_id`` had ``size`` entries with Merkle root ``root`` at ``timestamp``."""

    install_id: str
    size: int
    root: bytes
    timestamp: datetime
    signatures: tuple[NoteSignature, ...] = field(default=())

    def __post_init__(self) -> None:
        if not isinstance(self.install_id, str) or not _INSTALL_RE.match(self.install_id):
            raise InvalidInput(
                "install id must be 1-128 characters of letters, digits and . _ : / -",
                details={"field": "install_id"},
            )
        if isinstance(self.size, bool) or not isinstance(self.size, int) or not 0 <= self.size < 2**63:
            raise InvalidInput("checkpoint size must be a non-negative integer", details={"field": "size"})
        if not isinstance(self.root, bytes) or len(self.root) != HASH_SIZE:
            raise InvalidInput(f"checkpoint root must be {HASH_SIZE} bytes", details={"field": "root"})
        ts = self.timestamp
        if not isinstance(ts, datetime) or ts.tzinfo is None or ts.utcoffset() is None:
            raise InvalidInput("checkpoint time must be timezone-aware", details={"field": "timestamp"})
        # One text per checkpoint: UTC, whole seconds (the signed bytes must be reproducible).
        object.__setattr__(self, "timestamp", ts.astimezone(UTC).replace(microsecond=0))
        object.__setattr__(self, "signatures", tuple(self.signatures))

    @property
    def origin(self) -> str:
        return ORIGIN_PREFIX + self.install_id

    def body(self) -> str:
        """The signed note text (c2sp.org/tlog-checkpoint, with the time as an extension line)."""
        return (
            f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"
            f"{self.timestamp.strftime('%Y-%m-%dT%H:%M:%SZ')}\n"
        )

    def to_text(self) -> str:
        if not self.signatures:
            raise InvalidInput("an unsigned checkpoint has no text form; sign it first")
        return self.body() + "\n" + "".join(s.line() for s in self.signatures)

    def __str__(self) -> str:
        return self.to_text() if self.signatures else self.body()

    @classmethod
    def parse(cls, text: str | bytes) -> Checkpoint:
        """Parse the text form strictly; anything malformed raises ``AuditTampered``.

        Strict because the signature covers exact bytes: the body must be exactly what ``body()``
        would print for the parsed fields, so one checkpoint has one text."""
        if isinstance(text, bytes):
            if len(text) > _MAX_NOTE_BYTES:
                raise _malformed("it is too long")
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _malformed("it is not UTF-8") from exc
        if len(text) > _MAX_NOTE_BYTES:
            raise _malformed("it is too long")
        text = text.replace("\r\n", "\n")  # tolerate a copy through a Windows editor
        if not text.endswith("\n"):
            text += "\n"  # tolerate a stripped final newline
        if any(ord(c) < 0x20 and c != "\n" for c in text):
            raise _malformed("it contains control characters")
        sep = text.rfind("\n\n")
        if sep < 0:
            raise _malformed("there is no blank line before the signatures")
        body, sig_text = text[: sep + 1], text[sep + 2 :]
        lines = body.split("\n")[:-1]
        if len(lines) != 4:
            raise _malformed("the text must have 4 lines: origin, size, root, time")
        origin, size_s, root_s, time_s = lines
        if not origin.startswith(ORIGIN_PREFIX):
            raise _malformed(f"the origin must start with {ORIGIN_PREFIX!r}")
        if not _SIZE_RE.match(size_s):
            raise _malformed("the size is not a decimal number")
        try:
            root_hash = base64.b64decode(root_s, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _malformed("the root is not base64") from exc
        if not _TIME_RE.match(time_s):
            raise _malformed("the time is not RFC 3339 UTC (YYYY-MM-DDTHH:MM:SSZ)")
        try:
            ts = datetime.strptime(time_s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError as exc:
            raise _malformed("the time is not a valid date") from exc
        signatures: list[NoteSignature] = []
        sig_lines = sig_text.split("\n")[:-1]
        if not sig_lines:
            raise _malformed("it has no signature")
        if len(sig_lines) > _MAX_SIGNATURES:
            raise _malformed("it has too many signatures")
        for line in sig_lines:
            parts = line[len(_SIG_PREFIX) :].split(" ") if line.startswith(_SIG_PREFIX) else []
            if len(parts) != 2 or not _KEY_NAME_RE.match(parts[0]):
                raise _malformed("a signature line is not '\u2014 <key name> <base64>'")
            try:
                blob = base64.b64decode(parts[1], validate=True)
            except (binascii.Error, ValueError) as exc:
                raise _malformed("a signature is not base64") from exc
            if len(blob) < 5:
                raise _malformed("a signature is too short")
            signatures.append(NoteSignature(parts[0], blob[:4], blob[4:]))
        try:
            cp = cls(origin[len(ORIGIN_PREFIX) :], int(size_s), root_hash, ts, tuple(signatures))
        except InvalidInput as exc:
            raise _malformed(exc.message) from exc
        if cp.body() != body:  # e.g. non-canonical base64 padding bits
            raise _malformed("the text is not in canonical form")
        return cp


def _malformed(why: str) -> AuditTampered:
    return AuditTampered(f"malformed audit checkpoint: {why}", details={"reason": "malformed"})


def sign(
    signer: AuditSigner,
    *,
    install_id: str,
    size: int,
    root: bytes,
    timestamp: datetime | None = None,
) -> Checkpoint:
    """Make and sign a checkpoint of the log at ``size`` with Merkle root ``root`` (now, by default)."""
    return signer.sign(Checkpoint(install_id, size, root, timestamp or datetime.now(UTC)))


def verify_signature(checkpoint: Checkpoint | str | bytes, public_key: Ed25519PublicKey | bytes | str) -> Checkpoint:
    """Check that ``public_key`` signed the checkpoint; return it parsed. Raises ``AuditTampered``.

    As signed-note requires: signatures from other keys are ignored, one from this key must exist,
    and every signature that claims to be from this key must verify."""
    cp = checkpoint if isinstance(checkpoint, Checkpoint) else Checkpoint.parse(checkpoint)
    key = load_public_key(public_key)
    kid = note_key_id(cp.origin, key)
    details = {"origin": cp.origin, "size": cp.size, "key_id": kid.hex()}
    mine = [s for s in cp.signatures if s.key_name == cp.origin and s.key_id == kid]
    if not mine:
        raise AuditTampered(
            f"checkpoint of {cp.origin} at size {cp.size} is not signed by this audit key "
            f"(key id {kid.hex()}): it comes from another key or another install",
            details={**details, "reason": "unknown_key"},
        )
    body = cp.body().encode()
    for s in mine:
        try:
            key.verify(s.signature, body)
        except InvalidSignature:
            raise AuditTampered(
                f"checkpoint of {cp.origin} at size {cp.size} has a bad signature: "
                "its size, root or time was changed, or the signature was forged",
                details={**details, "reason": "bad_signature"},
            ) from None
    return cp


# --- the storage-facing record and log verification -----------------------------------------------


class StoredRecord(Protocol):
    """What the storage layer yields per row; see the module docstring for the contract."""

    @property
    def seq(self) -> int: ...
    @property
    def entry(self) -> bytes | None: ...
    @property
    def leaf_hash(self) -> bytes | None: ...
    @property
    def root(self) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """One stored audit row: leaf index, entry bytes, recorded leaf hash, recorded running root."""

    seq: int
    entry: bytes | None = None
    leaf_hash: bytes | None = None
    root: bytes | None = None


def append_record(tree: MerkleTree, fields: Mapping[str, object]) -> StoredEntry:
    """Build the next row of the log from entry ``fields`` (``seq`` is filled in) and append it to
    ``tree``. Call it inside the transaction that holds the log head lock, on a tree resumed from the
    head, and store the returned row plus ``tree.size``/``tree.frontier`` in that same transaction."""
    seq = tree.size
    if "seq" in fields and fields["seq"] != seq:
        raise InvalidInput(f"the next audit entry is seq {seq}, not {fields['seq']}", details={"field": "seq"})
    data = encode_entry({**fields, "seq": seq})
    h = tree.append_entry(data)
    return StoredEntry(seq=seq, entry=data, leaf_hash=h, root=tree.root())


class Problem(enum.StrEnum):
    EDITED = "edited"
    DELETED = "deleted"
    REORDERED = "reordered"
    TRUNCATED = "truncated"
    CHECKPOINT_MISMATCH = "checkpoint_mismatch"
    BAD_CHECKPOINT = "bad_checkpoint"
    MALFORMED = "malformed"


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of ``verify_log``. Verification stops at the first problem.

    ``size``/``root``: entries verified and their Merkle root (the whole log when ``ok``).
    ``first_bad_seq``: the first seq known to be wrong, when it can be named.
    ``bad_range``: (first, last) seqs that must contain the damage when it cannot be named.
    """

    ok: bool
    size: int
    root: bytes
    problem: Problem | None = None
    first_bad_seq: int | None = None
    bad_range: tuple[int, int] | None = None
    message: str = "audit log verified"
    checkpoints_checked: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "size": self.size,
            "root": self.root.hex(),
            "problem": None if self.problem is None else str(self.problem),
            "first_bad_seq": self.first_bad_seq,
            "bad_range": None if self.bad_range is None else list(self.bad_range),
            "message": self.message,
            "checkpoints_checked": self.checkpoints_checked,
        }

    def raise_for_problem(self) -> None:
        if not self.ok:
            raise AuditTampered(self.message, details=self.to_dict())


def _as_record(item: bytes | StoredRecord, check_entry_seq: bool, position: int) -> tuple[StoredRecord, bool]:
    """The row for ``item`` and whether check 3 (the entry's own seq) is still to be done."""
    if isinstance(item, bytes | bytearray | memoryview):
        data = bytes(item)
        if not check_entry_seq:
            return StoredEntry(seq=position, entry=data), False
        # A bare entry's seq is the one it encodes, so deletions and swaps show as gaps and swaps.
        claimed = entry_seq(data)
        if claimed is None:  # leave it to check 3, which reports it as malformed
            return StoredEntry(seq=position, entry=data), True
        return StoredEntry(seq=claimed, entry=data), False
    return item, check_entry_seq


def verify_log(
    entries: Iterable[bytes | StoredRecord],
    checkpoint: Checkpoint | str | bytes | Sequence[Checkpoint | str | bytes] | None = None,
    public_key: Ed25519PublicKey | bytes | str | None = None,
    *,
    install_id: str | None = None,
    check_entry_seq: bool = True,
) -> VerifyReport:
    """Recompute the Merkle tree over ``entries`` (streamed in seq order, O(log n) memory) and check
    it against the rows' own recorded hashes and against signed checkpoints. See the module docstring
    for the checks, in order, and what each problem means.

    ``checkpoint``: one or several checkpoints, parsed or as text (e.g. all a client kept); each
    must verify under ``public_key`` and, if ``install_id`` is given, belong to it.
    ``check_entry_seq=False`` skips parsing entry bytes (for logs of arbitrary, non-JSON leaves).
    """
    given: list[Checkpoint | str | bytes] = (
        []
        if checkpoint is None
        else [checkpoint]
        if isinstance(checkpoint, Checkpoint | str | bytes)
        else list(checkpoint)
    )
    tree = MerkleTree()

    def report(problem: Problem, message: str, **kw: Any) -> VerifyReport:
        return VerifyReport(False, tree.size, tree.root(), problem, message=message, **kw)

    checkpoints: list[Checkpoint] = []
    for cp_or_text in given:  # checkpoints a client kept as text are parsed here
        try:
            checkpoints.append(cp_or_text if isinstance(cp_or_text, Checkpoint) else Checkpoint.parse(cp_or_text))
        except AuditTampered as exc:
            return report(Problem.BAD_CHECKPOINT, exc.message)
    if checkpoints:
        if public_key is None:
            raise InvalidInput("a public key is needed to trust a checkpoint", details={"field": "public_key"})
        for cp in checkpoints:
            if install_id is not None and cp.install_id != install_id:
                return report(
                    Problem.BAD_CHECKPOINT,
                    f"checkpoint at size {cp.size} is for install {cp.install_id!r}, not {install_id!r}",
                )
            try:
                verify_signature(cp, public_key)
            except AuditTampered as exc:
                return report(Problem.BAD_CHECKPOINT, exc.message)
    checkpoints.sort(key=lambda c: c.size)
    pending = iter(checkpoints)
    next_cp = next(pending, None)
    checked = 0
    last_good = 0  # size of the last checkpoint that matched: damage found later lies beyond it

    def check_checkpoints() -> VerifyReport | None:
        # RFC 9162 §2.1.4: the old tree must be a prefix of the new one; with all leaves at hand that
        # is simply "the root of the first cp.size leaves equals the checkpoint root".
        nonlocal next_cp, checked, last_good
        while next_cp is not None and next_cp.size == tree.size:
            if tree.root() != next_cp.root:
                return report(
                    Problem.CHECKPOINT_MISMATCH,
                    f"the first {next_cp.size} entries no longer hash to the root signed in the checkpoint "
                    f"of {next_cp.timestamp:%Y-%m-%dT%H:%M:%SZ}: an entry between seq {last_good} and "
                    f"{next_cp.size - 1} was changed, deleted or reordered and the hashes recomputed",
                    bad_range=(last_good, next_cp.size - 1),
                    checkpoints_checked=checked,
                )
            checked += 1
            last_good = next_cp.size
            next_cp = next(pending, None)
        return None

    if (bad := check_checkpoints()) is not None:  # size-0 checkpoints
        return bad

    it: Iterator[bytes | StoredRecord] = iter(entries)
    for expected, item in enumerate(it):
        rec, check_claim = _as_record(item, check_entry_seq, expected)
        seq = rec.seq
        # 1. Order: rows must be seq 0, 1, 2, ... with no gap or repeat.
        if seq != expected:
            if seq > expected:
                # One row of lookahead tells a swap (expected seq comes next) from a deletion.
                nxt = next(it, None)
                if nxt is not None and _as_record(nxt, check_entry_seq, expected + 1)[0].seq == expected:
                    return report(
                        Problem.REORDERED,
                        f"audit entries out of order: seq {seq} is stored before seq {expected}",
                        first_bad_seq=expected,
                        checkpoints_checked=checked,
                    )
                return report(
                    Problem.DELETED,
                    f"audit entry seq {expected} is missing (the next stored entry is seq {seq})",
                    first_bad_seq=expected,
                    checkpoints_checked=checked,
                )
            return report(
                Problem.REORDERED,
                f"audit entry seq {seq} appears again (or out of order) where seq {expected} belongs",
                first_bad_seq=expected,
                checkpoints_checked=checked,
            )
        if rec.entry is not None:
            data = bytes(rec.entry)
            leaf = leaf_hash(data)
            # 2. The entry bytes still hash to the recorded leaf hash.
            if rec.leaf_hash is not None and bytes(rec.leaf_hash) != leaf:
                return report(
                    Problem.EDITED,
                    f"audit entry seq {seq} was edited: its bytes no longer match its recorded leaf hash",
                    first_bad_seq=seq,
                    checkpoints_checked=checked,
                )
            # 3. The entry names its own position, so moved contents show even with their hashes.
            if check_claim:
                claimed = entry_seq(data)
                if claimed is None:
                    return report(
                        Problem.MALFORMED,
                        f"audit entry seq {seq} is not a well-formed entry",
                        first_bad_seq=seq,
                        checkpoints_checked=checked,
                    )
                if claimed != seq:
                    return report(
                        Problem.REORDERED,
                        f"audit entry stored as seq {seq} is entry seq {claimed}: entries were moved",
                        first_bad_seq=seq,
                        checkpoints_checked=checked,
                    )
        elif rec.leaf_hash is not None:
            leaf = bytes(rec.leaf_hash)
        else:
            return report(
                Problem.MALFORMED,
                f"audit row seq {seq} has neither entry bytes nor a leaf hash",
                first_bad_seq=seq,
                checkpoints_checked=checked,
            )
        if len(leaf) != HASH_SIZE:
            return report(
                Problem.MALFORMED,
                f"audit row seq {seq} has a leaf hash of {len(leaf)} bytes",
                first_bad_seq=seq,
                checkpoints_checked=checked,
            )
        tree.append(leaf)
        # 4. The chain of running roots: catches an entry rewritten together with its leaf hash.
        if rec.root is not None and bytes(rec.root) != tree.root():
            return report(
                Problem.EDITED,
                f"audit entry seq {seq} was edited: the recorded tree root after it does not match the recomputed one",
                first_bad_seq=seq,
                checkpoints_checked=checked,
            )
        # 5. Signed checkpoints at this size.
        if (bad := check_checkpoints()) is not None:
            return bad

    # 6. A checkpoint beyond the end: entries were cut off.
    if next_cp is not None:
        return report(
            Problem.TRUNCATED,
            f"audit log was truncated: it has {tree.size} entries but a checkpoint signed at "
            f"{next_cp.timestamp:%Y-%m-%dT%H:%M:%SZ} covers {next_cp.size}; "
            f"seq {tree.size} onwards is missing",
            first_bad_seq=tree.size,
            bad_range=(tree.size, next_cp.size - 1),
            checkpoints_checked=checked,
        )
    return VerifyReport(True, tree.size, tree.root(), checkpoints_checked=checked)
