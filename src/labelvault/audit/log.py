"""The audit log on top of storage: append entries, sign checkpoints, verify, export a trail.

Every entry is appended inside the transaction of the act it records, so an act and its entry
commit or vanish together; refusals (whose own transaction rolls back) are recorded in a
transaction of their own. Appending locks the single ``audit_head`` row, resumes the Merkle tree
from its frontier and stores the new leaf with its running root (see checkpoint.py's storage
contract). Entries carry ids, names of actions, outcomes and hashes of ciphertext: never content.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from labelvault.audit.checkpoint import AuditSigner, Checkpoint, StoredEntry, VerifyReport, append_record, sign
from labelvault.audit.checkpoint import verify_log as verify_entries
from labelvault.audit.merkle import HASH_SIZE, MerkleTree
from labelvault.domain.access import Actor
from labelvault.storage.models import AuditCheckpoint, AuditEntry, AuditHead, utcnow
from labelvault.storage.scope import Unscoped
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
) -> int:
    """Append one entry in the unit of work's transaction; returns its sequence number."""
    session = uow.session
    postgresql = session.get_bind().dialect.name == "postgresql"
    # This transaction's own writes first (ORM changes, the project's spend total): rows the act
    # locks are locked before the audit head, in every transaction, so they cannot deadlock.
    uow.write_spend()
    session.flush()
    head = uow.sql.run(_LOCK_HEAD if postgresql else _READ_HEAD).first()
    if head is None:
        uow.sql.run(_CREATE_HEAD)
        size, packed = 0, b""
    else:
        size, packed = head.size, bytes(head.frontier)
    frontier = [packed[i : i + HASH_SIZE] for i in range(0, len(packed), HASH_SIZE)]
    tree = MerkleTree.from_frontier(size, frontier)
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
    record = append_record(tree, {k: v for k, v in fields.items() if v is not None})
    uow.sql.run(_INSERT_ENTRY, {
        "seq": record.seq, "created_at": now, "actor_id": fields["actor_id"], "actor": fields["actor"],
        "action": action, "client_id": client_id, "object_kind": object_kind, "object_id": str(object_id),
        "outcome": outcome, "entry": record.entry, "leaf_hash": record.leaf_hash, "root": record.root,
    })
    uow.sql.run(_WRITE_HEAD, {"new_size": tree.size, "new_frontier": b"".join(tree.frontier)})
    return record.seq


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
               object_id: str | int = "", outcome: str = "ok", details: Mapping[str, Any] | None = None) -> int:
        """Append in a transaction of its own (refusals, whose own transaction rolled back)."""
        with self.uow_factory.system(write=True) as uow:
            seq = append(uow, action, actor=actor, client_id=client_id, object_kind=object_kind,
                         object_id=object_id, outcome=outcome, details=details)
            uow.commit()
            return seq

    def checkpoint(self, actor: Actor | None = None) -> CheckpointInfo:
        """Sign the current tree head and keep a copy (clients should keep theirs elsewhere)."""
        with self.uow_factory.system(write=True) as uow:
            head = _lock_head(uow.session)
            frontier = [head.frontier[i : i + HASH_SIZE] for i in range(0, len(head.frontier), HASH_SIZE)]
            root = MerkleTree.from_frontier(head.size, frontier).root()
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
        with self.uow_factory.system() as uow:
            stored = [c.signed_note for c in uow.session.scalars(
                select(AuditCheckpoint).order_by(AuditCheckpoint.tree_size))]
            checkpoints = stored + list(extra_checkpoints or [])
            return verify_entries(self._stored(uow), checkpoints or None, self.signer.public_key,
                                  install_id=self.install_id)

    def trail(self, client_id: int) -> Iterator[bytes]:
        """A client's own entries as JSONL (each line the exact bytes hashed into the log)."""
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
