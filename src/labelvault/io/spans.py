"""Labelled spans for NER and span classification: a spaCy ``DocBin`` and CoNLL IOB text.

Both read one ``span`` question; the text is the task's field the question marks, and the spans
are the task's final answer (``io/final.py``: a correction, a gold answer, or the character vote
merged into spans).

* ``spacy``: a ``.spacy`` file (``DocBin``) of one ``Doc`` per task, tokenised by
  ``spacy.blank(lang)``. The spans are the document's entities (``doc.ents``, NER); for a question
  that allows overlapping spans they are in ``doc.spans[<question name>]`` (span categorisation),
  and in ``doc.ents`` too where a document's spans happen not to overlap. (Span groups cost spaCy
  about 1 ms per document to serialise, twenty times the entities: they are written only where
  they are needed.) Spans are snapped to token boundaries (``alignment_mode="expand"``);
  ``doc.user_data`` keeps the task's ``id`` and ``external_id``. spaCy's DocBin is written in one
  piece, so it is built in memory (a compact form: token arrays and a string table).
* ``conll``: two columns, ``token TAG``, one token per line, IOB2 tags (``B-`` starts every span,
  ``I-`` continues it, ``O`` outside), a ``-DOCSTART- -X- O O`` line and a blank line before each
  task, tasks in id order. Tokens are words and single punctuation marks (``\\w+|[^\\w\\s]``); a
  token takes the label of the first span overlapping it. Streamed batch by batch.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from labelvault.errors import InvalidInput
from labelvault.io.final import FinalTask

_TOKEN = re.compile(r"\w+|[^\w\s]")


def iob_tags(text: str, spans: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(token, IOB2 tag) pairs of ``text`` with its labelled character spans."""
    out: list[tuple[str, str]] = []
    ordered = sorted(spans, key=lambda s: (s["start"], s["end"]))
    previous: int | None = None  # index of the span the previous token belonged to
    for match in _TOKEN.finditer(text):
        start, end = match.span()
        owner = next((i for i, s in enumerate(ordered) if s["start"] < end and start < s["end"]), None)
        if owner is None:
            out.append((match.group(0), "O"))
        else:
            prefix = "I" if owner == previous else "B"
            out.append((match.group(0), f"{prefix}-{ordered[owner]['label']}"))
        previous = owner
    return out


def conll_chunks(batches: Iterator[list[FinalTask]], question: Any) -> Iterator[bytes]:
    for batch in batches:
        lines: list[str] = []
        for task in batch:
            text = task.data.get(question.field)
            if task.final is None or not isinstance(text, str):
                continue
            lines.append("-DOCSTART- -X- O O\n\n")
            lines.extend(f"{token} {tag}\n" for token, tag in iob_tags(text, task.final.value))
            lines.append("\n")
        yield "".join(lines).encode("utf-8")


def spacy_docbin(batches: Iterator[list[FinalTask]], question: Any, lang: str) -> bytes:
    """The DocBin's bytes (see the module docstring)."""
    try:
        import spacy
        from spacy.tokens import DocBin
        from spacy.util import filter_spans
    except ImportError:
        raise InvalidInput("the spacy format needs the spacy package on the server: pip install 'labelvault[ml]'",
                           details={"field": "format"}) from None
    try:
        nlp = spacy.blank(lang)
    except Exception:  # spaCy raises its own ImportError subclass for an unknown language code
        raise InvalidInput(f"spaCy has no language {lang!r}", details={"field": "lang"}) from None
    docs = DocBin(store_user_data=True)
    for batch in batches:
        for task in batch:
            text = task.data.get(question.field)
            if task.final is None or not isinstance(text, str):
                continue
            doc = nlp.make_doc(text)
            spans = []
            for item in task.final.value:
                span = doc.char_span(item["start"], item["end"], label=item["label"], alignment_mode="expand")
                if span is not None:
                    spans.append(span)
            if question.allow_overlap:  # overlapping spans are span categorisation, not entities
                doc.spans[question.name] = spans
            if len(filter_spans(spans)) == len(spans):
                doc.ents = spans
            doc.user_data["id"] = task.task_id
            doc.user_data["external_id"] = task.external_id
            docs.add(doc)
    return bytes(docs.to_bytes())


__all__ = ["conll_chunks", "iob_tags", "spacy_docbin"]
