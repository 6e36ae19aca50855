"""The audit log on top of storage: append entries, sign checkpoints, verify, export a trail.

Every entry is written inside the transaction of the act it records, so an act and its entry
commit or vanish together; refusals (whose own transaction rolls back) are recorded in a
transaction of their own. Entries carry ids, names of actions, outcomes and hashes of ciphertext:
never content.

Numbering an entry (its place in the Merkle tree) means locking the single ``audit_head`` row,
resuming the tree from its frontier and storing the new leaf with its running root (see
checkpoint.py's storage contract). On SQLite, which has one writer at a time anyway, the act's
transaction does that itself. On PostgreSQL, where transactions run side by side, that lock
would be held by every act until its commit and all of them would queue on it: there the act's
transaction only inserts its entry into ``audit_pending``, and a sequencer (``sequence_pending``,
a thread of every server process; one runs at a time) numbers the pending entries in batches, in
the order of their ids (an entry whose transaction commits late is numbered once it is
visible). Checkpoints, verification and trails sequence what is pending first.

A pending entry is not yet under the tree's hashes: for the fraction of a second until it is
numbered, someone who can write to the database could delete it unseen. That is no new gap:
the newest entries after the last checkpoint a verifier holds can always be dropped unseen
(checkpoint.py), and a pending entry is always newer than every checkpoint.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, any_, bindparam, delete, insert, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from labelvault.audit.checkpoint import AuditSigner, Checkpoint, StoredEntry, VerifyReport, append_record, sign
from labelvault.audit.checkpoint import verify_log as verify_entries
from labelvault.audit.merkle import HASH_SIZE, MerkleTree, decode_entry, encode_entry
from labelvault.domain.access import Actor
from labelvault.storage.models import AuditCheckpoint, AuditEntry, AuditHead, AuditPending, utcnow
from labelvault.storage.scope import ScopedSql, Unscoped
from labelvault.storage.unit_of_work import UnitOfWork, UnitOfWorkFactory

HEAD_ID = 1


def _lock_head(session: Session) -> AuditHead:
    query = select(AuditHead).where(AuditHead.id == HEAD_ID)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    head = session.scalar(query)
    if head is None:
        head = AuditHead(id=HEAD_ID, size=0, frontier=b"")
        session.add(head)
        session.flush()
    return head


# Appending runs twice per answer (lease shown, answer submitted): prebuilt Core statements on
# install-level tables, a few microseconds each instead of the ORM's hundred.
_head = AuditHead.__table__
_entries = AuditEntry.__table__
_READ_HEAD = Unscoped(select(_head.c.size, _head.c.frontier).where(_head.c.id == HEAD_ID))
_LOCK_HEAD = Unscoped(select(_head.c.size, _head.c.frontier).where(_head.c.id == HEAD_ID).with_for_update())
_CREATE_HEAD = Unscoped(insert(_head).values(id=HEAD_ID, size=0, frontier=b""))
_WRITE_HEAD = Unscoped(update(_head).where(_head.c.id == HEAD_ID).values(
    size=bindparam("new_size"), frontier=bindparam("new_frontier")))
_INSERT_ENTRY = Unscoped(insert(_entries))
_pending = AuditPending.__table__
_INSERT_PENDING = Unscoped(insert(_pending))
_HEAD_EXISTS = Unscoped(select(_head.c.id).where(_head.c.id == HEAD_ID))
_LOCK_HEAD_UNLESS_TAKEN = Unscoped(
    select(_head.c.size, _head.c.frontier).where(_head.c.id == HEAD_ID).with_for_update(skip_locked=True))
_PENDING = Unscoped(select(_pending).order_by(_pending.c.id).limit(bindparam("limit")))
# The sequencer runs on PostgreSQL only: a numbered batch's pending rows go by one DELETE of an id
# array (one by one, the deletes were a third of the sequencer's CPU).
_DELETE_PENDING = Unscoped(
    delete(_pending).where(_pending.c.id == any_(bindparam("pending_ids", type_=ARRAY(BigInteger))))
)
SEQUENCE_BATCH = 2000


def append(
    uow: UnitOfWork,
    action: str,
    *,
    actor: Actor | None,
    client_id: int | None = None,
    object_kind: str = "",
    object_id: str | int = "",
    outcome: str = "ok",
    details: Mapping[str, Any] | None = None,
) -> int | None:
    """Write one entry in the unit of work's transaction; returns its sequence number, or None on
    PostgreSQL, where the sequencer numbers it after the commit (see the module's docstring)."""
    now = utcnow()
    fields: dict[str, Any] = {
        "time": now,
        "action": action,
        "actor": actor.username if actor else "system",
        "actor_id": actor.user_id if actor else None,
        "client_id": client_id,
        "object_kind": object_kind,
        "object_id": str(object_id),
        "outcome": outcome,
    }
    if details:
        fields["details"] = dict(details)
    fields = {k: v for k, v in fields.items() if v is not None}
    columns = {"created_at": now, "actor_id": actor.user_id if actor else None, "actor": fields["actor"],
               "action": action, "client_id": client_id, "object_kind": object_kind,
               "object_id": str(object_id), "outcome": outcome}
    if uow.sql.dialect_name == "postgresql":
        # Canonical bytes now, so a bad entry fails its act, not the sequencer.
        uow.sql.run(_INSERT_PENDING, {**columns, "fields": encode_entry({**fields, "seq": 0})}, defer=True)
        return None
    # This transaction's own writes first (ORM changes, the project's spend), then the head.
    uow.write_spend()
    uow.flush()
    # In a write batch the head is kept in the batch's memo, as the batch's last append left it,
    # and written once, just before the batch commits (nothing else reads or writes it meanwhile:
    # the batch holds the writer lock).
    memo = uow.batch_memo
    noted = memo.get(_NOTED_HEAD) if memo is not None else None
    if noted is not None:
        tree = MerkleTree.from_own_frontier(*noted)  # as the batch's last append left it
    elif (head := uow.sql.run(_READ_HEAD).first()) is None:
        uow.sql.run(_CREATE_HEAD)
        tree = MerkleTree()
    else:
        tree = _resume(head.size, bytes(head.frontier))
    record = append_record(tree, fields)
    uow.sql.run(_INSERT_ENTRY, {**columns, "seq": record.seq, "entry": record.entry,
                                "leaf_hash": record.leaf_hash, "root": record.root})
    if memo is None:
        uow.sql.run(_WRITE_HEAD, {"new_size": tree.size, "new_frontier": b"".join(tree.frontier)})
    else:
        memo[_NOTED_HEAD] = (tree.size, tree.frontier)
        uow.before_batch_commit(_NOTED_HEAD, _write_noted_head)
    return record.seq


_NOTED_HEAD = "audit_head"


def _write_noted_head(sql: ScopedSql, memo: Mapping[Hashable, Any]) -> None:
    """At a write batch's commit: the head as its last append left it (none if every append of the
    batch was rolled back)."""
    noted = memo.get(_NOTED_HEAD)
    if noted is not None:
        size, frontier = noted
        sql.run(_WRITE_HEAD, {"new_size": size, "new_frontier": b"".join(frontier)})


def _resume(size: int, packed: bytes) -> MerkleTree:
    return MerkleTree.from_frontier(size, [packed[i : i + HASH_SIZE] for i in range(0, len(packed), HASH_SIZE)])


def sequence_pending(uow_factory: UnitOfWorkFactory, *, wait: bool = False, limit: int = SEQUENCE_BATCH) -> int:
    """Number up to ``limit`` pending entries into the log, oldest first; returns how many.

    One sequencer at a time holds the head. With ``wait`` False (the background thread) a call
    that finds another one at work returns 0 at once; with True it waits its turn. The pending
    rows are deleted by id, in the same transaction as their numbered copies are inserted.
    """
    with uow_factory.system(write=True) as uow:
        head = uow.sql.run(_LOCK_HEAD if wait else _LOCK_HEAD_UNLESS_TAKEN).first()
        if head is None and uow.sql.run(_HEAD_EXISTS).first() is not None:
            return 0  # another sequencer holds the head
        rows = uow.sql.run(_PENDING, {"limit": limit}).all()
        if not rows:
            return 0
        if head is None:
            uow.sql.run(_CREATE_HEAD)
            tree = _resume(0, b"")
        else:
            tree = _resume(head.size, bytes(head.frontier))
        numbered = []
        for row in rows:
            fields = decode_entry(row.fields)
            del fields["seq"]
            record = append_record(tree, fields)
            numbered.append({
                "seq": record.seq, "created_at": row.created_at, "actor_id": row.actor_id, "actor": row.actor,
                "action": row.action, "client_id": row.client_id, "object_kind": row.object_kind,
                "object_id": row.object_id, "outcome": row.outcome, "entry": record.entry,
                "leaf_hash": record.leaf_hash, "root": record.root,
            })
        uow.sql.run(_INSERT_ENTRY, numbered)
        uow.sql.run(_DELETE_PENDING, {"pending_ids": [row.id for row in rows]})
        uow.sql.run(_WRITE_HEAD, {"new_size": tree.size, "new_frontier": b"".join(tree.frontier)})
        uow.commit()
        return len(rows)


@dataclass(frozen=True, slots=True)
class CheckpointInfo:
    size: int
    created_at: datetime
    text: str


class AuditService:
    """Checkpoints, verification and trails. Signing key lives in the key directory, not the DB."""

    def __init__(self, uow_factory: UnitOfWorkFactory, signing_key_path: Path) -> None:
        self.uow_factory = uow_factory
        self.signing_key_path = signing_key_path
        self._signer: AuditSigner | None = None

    @property
    def signer(self) -> AuditSigner:
        if self._signer is None:
            self._signer = AuditSigner.initialize(self.signing_key_path)
        return self._signer

    @property
    def install_id(self) -> str:
        return "labelvault-" + self.signer.fingerprint()[:16]

    def record(self, action: str, *, actor: Actor | None, client_id: int | None = None, object_kind: str = "",
               object_id: str | int = "", outcome: str = "ok", details: Mapping[str, Any] | None = None
               ) -> int | None:
        """Append in a transaction of its own (refusals, whose own transaction rolled back)."""
        with self.uow_factory.system(write=True) as uow:
            seq = append(uow, action, actor=actor, client_id=client_id, object_kind=object_kind,
                         object_id=object_id, outcome=outcome, details=details)
            uow.commit()
            return seq

    def sequence(self) -> int:
        """Number every entry pending so far into the log (PostgreSQL; nothing waits on SQLite)."""
        if self.uow_factory.engine.dialect.name != "postgresql":
            return 0
        total = 0
        while done := sequence_pending(self.uow_factory, wait=True):
            total += done
        return total

    def checkpoint(self, actor: Actor | None = None) -> CheckpointInfo:
        """Sign the current tree head and keep a copy (clients should keep theirs elsewhere)."""
        self.sequence()
        with self.uow_factory.system(write=True) as uow:
            head = _lock_head(uow.session)
            root = _resume(head.size, head.frontier).root()
            signed = sign(self.signer, install_id=self.install_id, size=head.size, root=root)
            text = signed.to_text()
            uow.session.add(AuditCheckpoint(tree_size=head.size, root_hash=root, signed_note=text))
            uow.commit()
        return CheckpointInfo(signed.size, signed.timestamp, text)

    def _stored(self, uow: UnitOfWork, client_id: int | None = None, batch: int = 5000) -> Iterator[StoredEntry]:
        last = -1
        while True:
            query = select(AuditEntry).where(AuditEntry.seq > last)
            if client_id is not None:
                query = query.where(AuditEntry.client_id == client_id)
            rows = uow.session.scalars(query.order_by(AuditEntry.seq).limit(batch)).all()
            if not rows:
                return
            for row in rows:
                yield StoredEntry(seq=row.seq, entry=row.entry, leaf_hash=row.leaf_hash, root=row.root)
            last = rows[-1].seq

    def verify(self, extra_checkpoints: list[str] | None = None) -> VerifyReport:
        """Check every entry, every stored checkpoint and any the caller brings."""
        self.sequence()
        with self.uow_factory.system() as uow:
            stored = [c.signed_note for c in uow.session.scalars(
                select(AuditCheckpoint).order_by(AuditCheckpoint.tree_size))]
            checkpoints = stored + list(extra_checkpoints or [])
            return verify_entries(self._stored(uow), checkpoints or None, self.signer.public_key,
                                  install_id=self.install_id)

    def trail(self, client_id: int) -> Iterator[bytes]:
        """A client's own entries as JSONL (each line the exact bytes hashed into the log)."""
        self.sequence()
        with self.uow_factory.system() as uow:
            for row in self._stored(uow, client_id=client_id):
                assert row.entry is not None
                yield row.entry + b"\n"

    def checkpoints(self) -> list[CheckpointInfo]:
        with self.uow_factory.system() as uow:
            rows = uow.session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.id)).all()
            return [CheckpointInfo(r.tree_size, r.created_at, r.signed_note) for r in rows]

    def public_key_pem(self) -> str:
        return self.signer.public_key_pem()

    @staticmethod
    def parse_checkpoint(text: str) -> Checkpoint:
        return Checkpoint.parse(text)
