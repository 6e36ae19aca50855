"""The export formats: name, media type, file extension, and what each holds (for help texts)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ExportFormat:
    name: str
    media_type: str
    extension: str
    summary: str
    directory: bool = False  # written as a directory (a zip of it over the API or with --out X.zip)
    question_types: tuple[str, ...] = ()  # the question types it reads (one question), if any


FORMATS: dict[str, ExportFormat] = {f.name: f for f in (
    ExportFormat("jsonl", "application/x-ndjson", "jsonl", "every task with its data, suggestions and answers"),
    ExportFormat("aggregated-jsonl", "application/x-ndjson", "jsonl", "one aggregated answer per task and question"),
    ExportFormat("parquet", "application/vnd.apache.parquet", "parquet", "the jsonl export as a Parquet table"),
    ExportFormat("aggregated-parquet", "application/vnd.apache.parquet", "parquet",
                 "task data with aggregated answers, as a Parquet table"),
    ExportFormat("csv", "text/csv; charset=utf-8", "csv", "task data with aggregated answers, one row per task"),
    ExportFormat("hf-dataset", "application/zip", "hf", "the aggregated table as a Hugging Face dataset directory",
                 directory=True),
    ExportFormat("dpo", "application/x-ndjson", "jsonl", "prompt/chosen/rejected pairs for TRL's DPO trainer",
                 question_types=("preference", "ranking")),
    ExportFormat("sft", "application/x-ndjson", "jsonl", "chat messages for supervised fine-tuning",
                 question_types=("text",)),
    ExportFormat("coco", "application/json", "json", "COCO object detection JSON", question_types=("bbox",)),
    ExportFormat("yolo", "application/zip", "yolo", "a YOLO (Ultralytics) dataset directory", directory=True,
                 question_types=("bbox",)),
    ExportFormat("spacy", "application/octet-stream", "spacy", "a spaCy DocBin (.spacy) of entities and spans",
                 question_types=("span",)),
    ExportFormat("conll", "text/plain; charset=utf-8", "conll", "CoNLL token-per-line IOB2 tags",
                 question_types=("span",)),
)}
EXPORT_FORMATS = tuple(FORMATS)


def formats_help() -> str:
    return "; ".join(f"{f.name}: {f.summary}" for f in FORMATS.values())


__all__ = ["EXPORT_FORMATS", "FORMATS", "ExportFormat", "formats_help"]
