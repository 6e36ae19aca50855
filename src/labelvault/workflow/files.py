"""Uploaded files (images for box questions, attachments): sealed, stored, served to those allowed.

A task refers to a file as ``file:<id>`` in an image field; the labeling page fetches it from
``/api/projects/{project_id}/files/{id}``. Showing a file to a person is a grant of client data:
the conflict wall is checked and the touch recorded, and the access is audited.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select

from labelvault.audit import log as audit_log
from labelvault.domain.access import Actor, ProjectPolicy
from labelvault.errors import InvalidInput, NotFound
from labelvault.settings import Settings
from labelvault.storage.files import FileStore, LocalFileStore, S3FileStore
from labelvault.storage.models import StoredFile
from labelvault.storage.unit_of_work import UnitOfWork, UnitOfWorkFactory
from labelvault.workflow.access import access_in
from labelvault.workflow.projects import load_project
from labelvault.workflow.walls import check_and_record

MAX_FILE_BYTES = 50 * 1024 * 1024
ALLOWED_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif", "application/pdf", "text/plain")


def file_store_for(settings: Settings) -> FileStore:
    """The store the settings name: ``<home>/files`` (local, the default) or an S3-compatible bucket."""
    if settings.file_store == "s3":
        if not settings.s3_bucket:
            raise InvalidInput("LABELVAULT_FILE_STORE=s3 needs LABELVAULT_S3_BUCKET")
        return S3FileStore(settings.s3_bucket, settings.s3_prefix, endpoint_url=settings.s3_endpoint_url,
                           region=settings.s3_region, access_key=settings.s3_access_key_id,
                           secret_key=settings.s3_secret_access_key)
    if settings.file_store != "local":
        raise InvalidInput(f"LABELVAULT_FILE_STORE must be local or s3, not {settings.file_store!r}")
    return LocalFileStore(settings.files_dir)


@dataclass(frozen=True, slots=True)
class FileInfo:
    id: str
    name: str
    content_type: str
    size: int

    @property
    def ref(self) -> str:
        return f"file:{self.id}"


@dataclass(frozen=True, slots=True)
class ExportedFile:
    id: str
    project_id: int
    name: str
    content_type: str
    data: bytes


def file_key(client_id: int, file_id: str) -> str:
    return f"client-{client_id}/{file_id}"


def new_file_id() -> str:
    return secrets.token_hex(16)


class FileService:
    def __init__(self, uow_factory: UnitOfWorkFactory, store: FileStore) -> None:
        self.uow_factory = uow_factory
        self.store = store

    def upload(
        self, actor: Actor, client_id: int, project_id: int, name: str, content_type: str, data: bytes
    ) -> FileInfo:
        if content_type not in ALLOWED_TYPES:
            raise InvalidInput(
                f"files of type {content_type!r} are not accepted; use one of {', '.join(ALLOWED_TYPES)}",
                details={"field": "content_type"},
            )
        if not data or len(data) > MAX_FILE_BYTES:
            raise InvalidInput(f"a file must have 1 to {MAX_FILE_BYTES} bytes", details={"field": "file"})
        file_id = new_file_id()
        with self.uow_factory.for_client(client_id, write=True) as uow:
            ProjectPolicy.import_tasks(access_in(uow, actor))
            load_project(uow, project_id)
            digest = self.store_in(uow, project_id, file_id, name, content_type, data)
            audit_log.append(
                uow,
                "file.uploaded",
                actor=actor,
                client_id=client_id,
                object_kind="file",
                object_id=file_id,
                details={"project_id": project_id, "ciphertext_sha256": digest},
            )
            uow.commit()
        return FileInfo(file_id, name[:255], content_type, len(data))

    def store_in(
        self, uow: UnitOfWork, project_id: int, file_id: str, name: str, content_type: str, data: bytes
    ) -> str:
        """Seal a file under the client's active key and store it, in the caller's unit of work
        (its row is written at its commit); returns the ciphertext's SHA-256. The caller checked
        the policy (an upload; a restored bundle)."""
        key_id, cipher = uow.active_cipher()
        sealed = cipher.seal("file", file_id, data)
        # Bytes first, row second: a crash between leaves an unreferenced blob, never a dangling row.
        self.store.put(file_key(uow.client_id, file_id), sealed)
        digest = hashlib.sha256(sealed).hexdigest()
        uow.session.add(
            StoredFile(
                id=file_id,
                project_id=project_id,
                data_key_id=key_id,
                name_sealed=cipher.seal("file.name", file_id, name[:255].encode()),
                content_type=content_type,
                size=len(data),
                ciphertext_sha256=digest,
            )
        )
        return digest

    def taken(self, file_ids: set[str]) -> set[str]:
        """Which of these ids a file of any client on this install has (a bundle's files keep their
        ids where free)."""
        if not file_ids:
            return set()
        with self.uow_factory.all_clients() as uow:  # ids only, across clients: says why above
            return set(uow.session.scalars(select(StoredFile.id).where(StoredFile.id.in_(file_ids))))

    def download(self, actor: Actor, client_id: int, project_id: int, file_id: str) -> tuple[FileInfo, bytes]:
        with self.uow_factory.for_client(client_id, write=True) as uow:
            ProjectPolicy.view(access_in(uow, actor))
            load_project(uow, project_id)
            row = uow.session.get(StoredFile, file_id)
            if row is None or row.project_id != project_id:
                raise NotFound(f"file {file_id} not found")
            uow.users.lock(actor.user_id)
            check_and_record(uow, actor.user_id, client_id, "file")
            cipher = uow.cipher(row.data_key_id)
            data = cipher.open("file", file_id, self.store.get(file_key(client_id, file_id)))
            name = cipher.open("file.name", file_id, row.name_sealed).decode()
            audit_log.append(
                uow,
                "file.shown",
                actor=actor,
                client_id=client_id,
                object_kind="file",
                object_id=file_id,
                details={"project_id": project_id},
            )
            uow.commit()
        return FileInfo(file_id, name, row.content_type, row.size), data

    def open_in(self, uow: UnitOfWork, project_id: int, file_id: str) -> tuple[str, bytes] | None:
        """(content type, plaintext) of a file of the project, read in the caller's unit of work;
        None when the project has no such file. For exports, which have checked the policy and the
        conflict wall and are audited as a whole (``io/exporter.py``)."""
        row = uow.session.get(StoredFile, file_id)
        if row is None or row.project_id != project_id:
            return None
        sealed = self.store.get(file_key(uow.client_id, file_id))
        return row.content_type, uow.cipher(row.data_key_id).open("file", file_id, sealed)

    def export_client(self, client_id: int) -> list[ExportedFile]:
        """Every file of a client with its plaintext, for its offboarding bundle."""
        with self.uow_factory.for_client(client_id) as uow:
            rows = uow.session.scalars(select(StoredFile).order_by(StoredFile.id)).all()
            files = []
            for row in rows:
                cipher = uow.cipher(row.data_key_id)
                files.append(ExportedFile(
                    row.id, row.project_id, cipher.open("file.name", row.id, row.name_sealed).decode(),
                    row.content_type, cipher.open("file", row.id, self.store.get(file_key(client_id, row.id))),
                ))
            return files

    def delete_client(self, client_id: int) -> int:
        """Remove every stored blob of a client (offboarding); rows go with the client's rows."""
        return self.store.delete_prefix(f"client-{client_id}/")
