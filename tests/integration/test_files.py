"""Uploaded files are sealed before they leave the process, locally or in an S3-compatible store."""

from __future__ import annotations

from pathlib import Path

import pytest

from labelvault.bootstrap import build_services
from labelvault.errors import InvalidInput, NotFound
from labelvault.storage.files import S3FileStore
from labelvault.workflow.files import FileService
from tests.conftest import World
from tests.integration.queue_helpers import LABEL_SCHEMA

MARKER = b"FILE-MARKER-91ab77"
PNG = b"\x89PNG\r\n\x1a\n" + MARKER + b"\x00" * 64


def project(world: World, slug: str = "pics", client_id: int | None = None) -> int:
    return world.services.projects.create(world.operator, client_id or world.client_a, slug=slug, name=slug,
                                          schema=LABEL_SCHEMA).id


def test_an_uploaded_file_is_sealed_on_disk_and_opens_for_members(world: World) -> None:
    files = world.services.files
    pid = project(world)
    info = files.upload(world.actors["manager_a"], world.client_a, pid, "secret-prototype.png", "image/png", PNG)
    assert info.ref == f"file:{info.id}"
    on_disk = [p for p in world.services.settings.files_dir.rglob("*") if p.is_file()]
    assert len(on_disk) == 1 and MARKER not in on_disk[0].read_bytes()
    shown, data = files.download(world.actors["labeler_a"], world.client_a, pid, info.id)
    assert data == PNG and shown.name == "secret-prototype.png"
    with pytest.raises(NotFound):
        files.download(world.actors["labeler_b"], world.client_a, pid, info.id)
    other = project(world, "theirs", world.client_b)
    with pytest.raises(NotFound):  # another project's file id does not open through this project
        files.download(world.actors["manager_b"], world.client_b, other, info.id)


def test_uploads_are_checked(world: World) -> None:
    pid = project(world)
    with pytest.raises(InvalidInput, match="not accepted"):
        world.services.files.upload(world.operator, world.client_a, pid, "x.exe", "application/x-msdownload", b"MZ")
    with pytest.raises(InvalidInput):
        world.services.files.upload(world.operator, world.client_a, pid, "empty.png", "image/png", b"")


def test_files_in_s3_are_ciphertext_and_leave_with_their_client(world: World, s3_endpoint: str,
                                                                tmp_path: Path) -> None:
    store = S3FileStore("labelvault-test", "install-1", endpoint_url=s3_endpoint, region="us-east-1",
                        access_key="test", secret_key="test")
    store.client.create_bucket(Bucket="labelvault-test")
    settings = world.services.settings.model_copy(update={
        "file_store": "s3", "s3_bucket": "labelvault-test", "s3_prefix": "install-1", "s3_endpoint_url": s3_endpoint,
        "s3_region": "us-east-1", "s3_access_key_id": "test", "s3_secret_access_key": "test"})
    services = build_services(settings)
    try:
        assert isinstance(services.files, FileService) and isinstance(services.files.store, S3FileStore)
        pid = project(world)
        info = services.files.upload(world.operator, world.client_a, pid, "chart.png", "image/png", PNG)
        listed = store.client.list_objects_v2(Bucket="labelvault-test")["Contents"]
        assert [o["Key"] for o in listed] == [f"install-1/client-{world.client_a}/{info.id}"]
        raw = store.client.get_object(Bucket="labelvault-test", Key=listed[0]["Key"])["Body"].read()
        assert MARKER not in raw
        assert services.files.download(world.actors["labeler_a"], world.client_a, pid, info.id)[1] == PNG
        services.offboarding.offboard(world.operator, world.client_a, tmp_path / "bundle")
        assert (tmp_path / "bundle" / "files" / info.id).read_bytes() == PNG  # the client takes it along
        assert store.client.list_objects_v2(Bucket="labelvault-test").get("KeyCount") == 0  # and it is gone here
    finally:
        services.close()
