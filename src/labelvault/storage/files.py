"""Where sealed file bytes live: a local directory (default) or an S3-compatible object store.

Stores only ever receive ciphertext: files are sealed with the client's data key before they
leave the process, so neither the disk nor the bucket holds anything readable.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from labelvault.errors import Conflict, NotFound


class FileStore(Protocol):
    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> bytes: ...
    def delete(self, key: str) -> None: ...
    def delete_prefix(self, prefix: str) -> int: ...
    def stored_keys(self) -> Iterator[str]:
        """Every key the store holds, sorted (what a backup copies)."""
        ...

    def describe(self) -> str:
        """Where the files are, for messages (a folder, a bucket and prefix)."""
        ...


def relative_key(key: str) -> PurePosixPath:
    """A stored key as a relative path (``client-3/<id>``), for copying it into a folder: refused if
    it could point outside one (absolute, ``..``), which no key this product writes does."""
    path = PurePosixPath(key)
    if not key or path.is_absolute() or any(part in ("", ".", "..") for part in key.split("/")):
        raise Conflict(f"the file store holds {key!r}, which is not a key LabelVault writes: move it away")
    return path


class LocalFileStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise NotFound("no such file")
        return path

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        with temporary.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)  # readers see the whole file or none of it

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound("no such file") from None

    def delete_prefix(self, prefix: str) -> int:
        base = self._path(prefix)
        if not base.exists():
            return 0
        count = 0
        for path in sorted(base.rglob("*"), reverse=True):
            if path.is_file():
                path.unlink()
                count += 1
            else:
                path.rmdir()
        base.rmdir()
        return count

    def stored_keys(self) -> Iterator[str]:
        if not self.root.is_dir():
            return
        for path in sorted(self.root.rglob("*")):
            if path.is_file() and not path.name.startswith("."):  # .<name>.<hex>.tmp: a put that never finished
                yield path.relative_to(self.root).as_posix()

    def describe(self) -> str:
        return f"the files folder {self.root}"


class S3FileStore:
    """An S3-compatible bucket (AWS, MinIO, Ceph...) through boto3, under a key prefix."""

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None, region: str | None = None,
                 access_key: str | None = None, secret_key: str | None = None) -> None:
        import boto3  # optional dependency: only installs that use S3 need it

        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client: Any = boto3.client("s3", endpoint_url=endpoint_url, region_name=region,
                                        aws_access_key_id=access_key, aws_secret_access_key=secret_key)

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data)

    def get(self, key: str) -> bytes:
        try:
            return bytes(self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"].read())
        except self.client.exceptions.NoSuchKey:
            raise NotFound("no such file") from None

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.prefix + key)

    def stored_keys(self) -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")  # in key order, 1,000 a page
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents", []):
                if not item["Key"].endswith("/"):  # a console's "folder" marker, not a file
                    yield item["Key"][len(self.prefix):]

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def delete_prefix(self, prefix: str) -> int:
        count = 0
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})
                count += len(keys)
        return count
