"""Boxes for detection training: COCO JSON and a YOLO dataset directory, from one ``bbox`` question.

Answers keep boxes relative to the image (``x``, ``y``, ``w``, ``h`` in [0, 1], top-left corner).

* ``coco``: one JSON document ``{"images", "annotations", "categories", "info"}``. COCO boxes are
  in pixels (``[x, y, width, height]``), so every image needs its size: from the task data
  (``<field>_width`` and ``<field>_height``, or ``width`` and ``height``), else read from the
  header (PNG, GIF, JPEG, SVG) of an inline ``data:`` image or of a file stored in LabelVault
  (``file:<id>``). Tasks whose size is unknown are left out and counted in
  ``info.skipped_without_size``. Category ids are the question's labels in schema order from 1;
  image ids are task ids; ``file_name`` is the image reference (or ``task-<id>.<ext>`` for an
  inline or stored image, the name the yolo export gives its file). Written as it is read: images stream out and the
  annotations wait in a temporary file, so memory stays flat.
* ``yolo`` (Ultralytics layout): ``labels/task-<id>.txt`` with one ``class cx cy w h`` line per
  box (relative centre and size), ``images/task-<id>.<ext>`` for inline and stored images, ``images.txt``
  listing every image (``./images/...`` or the original reference), ``data.yaml`` with
  ``train``/``val`` and ``names``, and ``tasks.csv`` mapping file stems to tasks.

Boxes are the task's final answer (``io/final.py``): a reviewer's correction, a gold answer, or the
boxes merged from several labelers (matched by IoU, averaged, label by vote).
"""

from __future__ import annotations

import base64
import binascii
import csv
import re
import struct
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import yaml

from labelvault.io.final import FinalTask

_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp",
               "image/svg+xml": "svg", "image/bmp": "bmp"}
_SVG_TAG = re.compile(rb"<svg\b[^>]*>", re.S)
_SVG_ATTR = re.compile(rb'\b(width|height)="([0-9.]+)(?:px)?"')


def inline_image(ref: str) -> tuple[str, bytes] | None:
    """(extension, bytes) of a base64 ``data:`` image reference; None for anything else."""
    if not ref.startswith("data:"):
        return None
    head, _, body = ref[5:].partition(",")
    media, _, encoding = head.partition(";")
    if encoding != "base64" or media not in _EXTENSIONS:
        return None
    try:
        return _EXTENSIONS[media], base64.b64decode(body, validate=False)
    except (binascii.Error, ValueError):
        return None


FileOpener = Callable[[str], tuple[str, bytes] | None]  # file id -> (content type, bytes)


def image_bytes(ref: str, open_file: FileOpener | None) -> tuple[str, bytes] | None:
    """(extension, bytes) of an image the export can carry: an inline ``data:`` image, or a file
    stored in LabelVault (``file:<id>``) when ``open_file`` is given; None for URLs and paths."""
    if ref.startswith("file:") and open_file is not None:
        found = open_file(ref[5:])
        if found is None or found[0] not in _EXTENSIONS:
            return None
        return _EXTENSIONS[found[0]], found[1]
    return inline_image(ref)


def _size_from_bytes(data: bytes) -> tuple[int, int] | None:
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return width, height
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    tag = _SVG_TAG.search(data[:4096])
    if tag:
        sizes = {name: float(value) for name, value in _SVG_ATTR.findall(tag.group(0))}
        if b"width" in sizes and b"height" in sizes:
            return round(sizes[b"width"]), round(sizes[b"height"])
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    at = 2
    while at + 9 < len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        length = struct.unpack(">H", data[at + 2: at + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            height, width = struct.unpack(">HH", data[at + 5: at + 9])
            return width, height
        at += 2 + length
    return None


def image_size(data: dict[str, Any], field: str, image: tuple[str, bytes] | None) -> tuple[int, int] | None:
    """Pixel (width, height) of the image in ``field``: given in the task data, or read from the
    header of the image's bytes when the export has them."""
    for w_key, h_key in ((f"{field}_width", f"{field}_height"), ("width", "height")):
        width, height = data.get(w_key), data.get(h_key)
        if isinstance(width, int | float) and isinstance(height, int | float) and width > 0 and height > 0:
            return int(width), int(height)
    return _size_from_bytes(image[1]) if image is not None else None


def coco_chunks(batches: Iterator[list[FinalTask]], question: Any, open_file: FileOpener | None = None
                ) -> Iterator[bytes]:
    """The COCO document, a chunk per batch of tasks (see the module docstring)."""
    category = {label: i + 1 for i, label in enumerate(question.labels)}
    categories = [{"id": i, "name": label, "supercategory": question.name} for label, i in category.items()]
    skipped = images = 0
    next_annotation = 1
    with tempfile.TemporaryFile() as spool:
        yield b'{"categories":' + orjson.dumps(categories) + b',"images":['
        for batch in batches:
            out = bytearray()
            for task in batch:
                if task.final is None:
                    continue
                ref = task.data.get(question.field, "")
                sized = _has_size(task.data, question.field)
                # Bytes only when needed: for the size, or to name a file the yolo export would write.
                carried = None if sized and not ref.startswith(("data:", "file:")) else image_bytes(ref, open_file)
                size = image_size(task.data, question.field, carried)
                if size is None:
                    skipped += 1
                    continue
                width, height = size
                image = {"id": task.task_id, "file_name": f"task-{task.task_id}.{carried[0]}" if carried else ref,
                         "width": width, "height": height, "external_id": task.external_id}
                if not carried and ref.startswith(("http://", "https://")):
                    image["coco_url"] = ref
                out += (b"," if images else b"") + orjson.dumps(image)
                images += 1
                for box in task.final.value:
                    w, h = box["w"] * width, box["h"] * height
                    annotation = {"id": next_annotation, "image_id": task.task_id,
                                  "category_id": category[box["label"]],
                                  "bbox": [box["x"] * width, box["y"] * height, w, h], "area": w * h, "iscrowd": 0}
                    if "confidence" in box:
                        annotation["score"] = box["confidence"]
                    spool.write((b"," if next_annotation > 1 else b"") + orjson.dumps(annotation))
                    next_annotation += 1
            yield bytes(out)
        yield b'],"annotations":['
        spool.seek(0)
        while block := spool.read(1 << 20):
            yield block
    info = {"description": f"LabelVault export of question {question.name}", "version": "1.0",
            "skipped_without_size": skipped}
    yield b'],"info":' + orjson.dumps(info) + b"}"


def _has_size(data: dict[str, Any], field: str) -> bool:
    return image_size(data, field, None) is not None


def write_yolo(batches: Iterator[list[FinalTask]], question: Any, target: Path,
               open_file: FileOpener | None = None) -> int:
    """Write the YOLO dataset directory ``target`` (which must not exist yet); returns the images."""
    classes = {label: i for i, label in enumerate(question.labels)}
    (target / "labels").mkdir(parents=True)
    (target / "images").mkdir()
    count = 0
    with (target / "images.txt").open("w", encoding="utf-8") as listing, \
            (target / "tasks.csv").open("w", encoding="utf-8", newline="") as tasks_file:
        tasks = csv.writer(tasks_file)
        tasks.writerow(["stem", "task_id", "external_id", "image"])
        for batch in batches:
            for task in batch:
                if task.final is None:
                    continue
                stem = f"task-{task.task_id}"
                ref = task.data.get(question.field, "")
                inline = image_bytes(ref, open_file) if isinstance(ref, str) else None
                if inline is not None:
                    (target / "images" / f"{stem}.{inline[0]}").write_bytes(inline[1])
                    listing.write(f"./images/{stem}.{inline[0]}\n")
                    tasks.writerow([stem, task.task_id, task.external_id or "", f"images/{stem}.{inline[0]}"])
                else:
                    listing.write(f"{ref}\n")
                    tasks.writerow([stem, task.task_id, task.external_id or "", ref])
                lines = [
                    f"{classes[b['label']]} {b['x'] + b['w'] / 2:.6f} {b['y'] + b['h'] / 2:.6f} "
                    f"{b['w']:.6f} {b['h']:.6f}\n"
                    for b in task.final.value
                ]
                (target / "labels" / f"{stem}.txt").write_text("".join(lines), encoding="utf-8")
                count += 1
    data = {"train": "images.txt", "val": "images.txt", "nc": len(classes),
            "names": {i: label for label, i in classes.items()}}
    (target / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return count


__all__ = ["FileOpener", "coco_chunks", "image_bytes", "image_size", "inline_image", "write_yolo"]
