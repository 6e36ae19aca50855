"""Opening sealed client content inside a client's unit of work, and sealing what older versions
left in the clear."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute

from labelvault.crypto.cipher import DataCipher
from labelvault.storage.models import Answer, LedgerEntry, Skip, Task
from labelvault.storage.unit_of_work import UnitOfWork, UnitOfWorkFactory


def open_task_content(uow: UnitOfWork, task: Task) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    cipher = uow.cipher(task.data_key_id)
    payload = _payload(cipher, task)
    suggestions = orjson.loads(cipher.open("task.suggestions", task.id, task.suggestions)) if task.suggestions else []
    return payload, suggestions


def open_task_payload(uow: UnitOfWork, task: Task) -> dict[str, Any]:
    """The task's payload alone (its suggestions stay sealed)."""
    return _payload(uow.cipher(task.data_key_id), task)


def _payload(cipher: DataCipher, task: Task) -> dict[str, Any]:
    return orjson.loads(cipher.open("task.payload", task.id, task.payload))  # type: ignore[no-any-return]


def open_answer_values(uow: UnitOfWork, answers: list[Answer]) -> list[dict[str, Any]]:
    return [orjson.loads(uow.cipher(a.data_key_id).open("answer.value", a.id, a.value)) for a in answers]


LEGACY_ROWS_PER_ROUND = 1000

# Free text that versions before its sealing kept in the clear: (model, legacy column, sealed column,
# the kind it is sealed as). Each migration that began sealing one renamed its column to legacy_*.
LEGACY_PLAINTEXT: list[tuple[type[Skip] | type[LedgerEntry], str, str, str]] = [
    (Skip, "legacy_reason", "sealed_reason", "skip.reason"),  # migration f2b4d6e8a0c1
    (LedgerEntry, "legacy_note", "sealed_note", "ledger.note"),  # migration a3c5e7f9b1d4
]


def seal_legacy_plaintext(uow_factory: UnitOfWorkFactory) -> int:
    """Seal the free text that rows written before it was sealed keep in the clear (LEGACY_PLAINTEXT),
    and empty it; returns how many rows. Run by ``bootstrap.migrate`` after the schema steps, as a
    migration has no keys. Across clients only to find which hold such rows; each client's are
    sealed in its own scope, a round of rows per transaction."""
    sealed = 0
    for model, legacy_name, sealed_name, kind in LEGACY_PLAINTEXT:
        legacy: InstrumentedAttribute[str] = getattr(model, legacy_name)
        with uow_factory.all_clients() as uow:
            client_ids = list(uow.session.scalars(select(model.client_id).where(legacy != "").distinct()))
        for client_id in client_ids:
            while True:
                with uow_factory.for_client(client_id, write=True) as uow:
                    rows = uow.session.scalars(
                        select(model).where(legacy != "").order_by(model.id).limit(LEGACY_ROWS_PER_ROUND)
                    ).all()
                    if not rows:
                        break
                    key_id, cipher = uow.active_cipher()
                    for row in rows:
                        row.data_key_id = key_id
                        setattr(row, sealed_name, cipher.seal(kind, row.id, getattr(row, legacy_name).encode()))
                        setattr(row, legacy_name, "")
                    uow.commit()
                    sealed += len(rows)
    return sealed
