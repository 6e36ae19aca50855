"""Directory formats as downloads, and the Hugging Face dataset writer.

A directory export (``hf-dataset``, ``yolo``) is written to a temporary directory, zipped into a
temporary file and streamed from there, so a download never holds the dataset in memory.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

from labelvault.errors import InvalidInput

ZIP_BLOCK = 1 << 20

Writer = Callable[[Path], int]


def once(write: Writer) -> Writer:
    """A writer that refuses a second call: it reads a stream of batches that can be read once."""
    used = False

    def guarded(target: Path) -> int:
        nonlocal used
        if used:
            raise InvalidInput("this export has already been written; ask for a new one")
        used = True
        return write(target)

    return guarded


def lazy(build: Callable[[], bytes]) -> Iterator[bytes]:
    """One chunk, built when the stream is first read (after the export was granted)."""
    yield build()


def zipped(write: Writer) -> Iterator[bytes]:
    """The directory ``write`` makes, as the bytes of a zip file (entries under one folder)."""
    with tempfile.TemporaryDirectory(prefix="labelvault-export-") as scratch:
        root = Path(scratch) / "export"
        write(root)
        archive = Path(scratch) / "export.zip"
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as out:
            for path in sorted(root.rglob("*")):
                out.write(path, path.relative_to(root).as_posix())
        shutil.rmtree(root)  # free the disk before streaming
        with archive.open("rb") as source:
            while block := source.read(ZIP_BLOCK):
                yield block


def write_hf_dataset(parquet: Iterator[bytes], target: Path, total: int) -> int:
    """Write a Parquet stream as a ``datasets.Dataset.save_to_disk`` directory at ``target``.

    The Parquet goes to a temporary file first; ``datasets`` memory-maps the Arrow files it makes
    from it, so the rows are not held in memory."""
    try:
        import datasets
    except ImportError:
        raise InvalidInput("the hf-dataset format needs the datasets package on the server: "
                           "pip install 'labelvault[ml]'", details={"field": "format"}) from None
    with tempfile.TemporaryDirectory(prefix="labelvault-hf-") as scratch:
        source = Path(scratch) / "rows.parquet"
        with source.open("wb") as out:
            for chunk in parquet:
                out.write(chunk)
        # keep_in_memory=False and a private cache dir: nothing lands in the user's HF cache.
        dataset = datasets.Dataset.from_parquet(str(source), cache_dir=str(Path(scratch) / "cache"),
                                                keep_in_memory=False)
        dataset.save_to_disk(str(target))
        return len(dataset)


__all__ = ["lazy", "once", "write_hf_dataset", "zipped"]
