"""Preference pairs for DPO and chat demonstrations for SFT, as JSON lines in the shapes TRL reads.

``dpo`` (one line per chosen/rejected pair), in TRL's two forms:

* ``string`` (TRL's "standard" form): ``{"prompt": str, "chosen": str, "rejected": str}``;
* ``chat`` (TRL's "conversational" form): ``{"prompt": [messages], "chosen": [{"role": "assistant",
  "content": ...}], "rejected": [...]}``, the prompt a chat field's messages, or a text field as
  one user message.

From a ``preference`` question: the task's final choice (A or B; ties give no pair). From a
``ranking`` question: every pair of candidates that the majority of the answers orders one way (a
reviewer's or gold ranking gives every pair). Each line also carries ``id`` and ``external_id`` of
the task, ``chosen_id`` and ``rejected_id`` of the candidates and the majority's ``confidence``.

``sft``: one line per task with a final ``text`` answer: ``{"messages": [prompt messages...,
{"role": "assistant", "content": answer}], "id", "external_id"}``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson

from labelvault.domain.payloads import candidate_ids, candidate_texts
from labelvault.io.final import FinalTask

DPO_FORMS = ("string", "chat")

Messages = list[dict[str, str]]
PromptOf = Callable[[dict[str, Any]], Any]


def prompt_reader(field: str, kind: str, form: str) -> PromptOf:
    """A function from task data to its prompt: text for the string form, messages for chat."""
    if kind == "chat":
        return lambda data: [{"role": m["role"], "content": m["content"]} for m in data.get(field) or []]
    if form == "chat":
        return lambda data: [{"role": "user", "content": data.get(field) or ""}]
    return lambda data: data.get(field) or ""


def _reply(text: str, form: str) -> Any:
    return [{"role": "assistant", "content": text}] if form == "chat" else text


def dpo_lines(batches: Iterator[list[FinalTask]], question: Any, prompt_of: PromptOf, form: str) -> Iterator[bytes]:
    """Pairs of ``question`` (preference or ranking), a chunk per batch of tasks."""
    newline = orjson.OPT_APPEND_NEWLINE
    for batch in batches:
        out = bytearray()
        for task in batch:
            final = task.final
            candidates = task.data.get(question.field)
            if final is None or not isinstance(candidates, list):
                continue
            texts, ids = candidate_texts(candidates), candidate_ids(candidates)
            if question.type == "preference":
                choice = final.value.get("choice")
                if choice not in ("a", "b"):
                    continue  # a tie prefers neither
                pairs = [(0, 1, final.confidence) if choice == "a" else (1, 0, final.confidence)]
            else:
                pairs = final.pairs or []
            prompt = prompt_of(task.data)
            for chosen, rejected, confidence in pairs:
                out += orjson.dumps({
                    "prompt": prompt, "chosen": _reply(texts[chosen], form), "rejected": _reply(texts[rejected], form),
                    "id": task.task_id, "external_id": task.external_id,
                    "chosen_id": ids[chosen], "rejected_id": ids[rejected], "confidence": confidence,
                }, option=newline)
        yield bytes(out)


def sft_lines(batches: Iterator[list[FinalTask]], prompt_of: PromptOf) -> Iterator[bytes]:
    """One chat per task with a final text answer; ``prompt_of`` gives the messages before it."""
    newline = orjson.OPT_APPEND_NEWLINE
    for batch in batches:
        out = bytearray()
        for task in batch:
            if task.final is None:
                continue
            messages = [*prompt_of(task.data), {"role": "assistant", "content": task.final.value}]
            out += orjson.dumps({"messages": messages, "id": task.task_id, "external_id": task.external_id},
                                option=newline)
        yield bytes(out)


__all__ = ["DPO_FORMS", "dpo_lines", "prompt_reader", "sft_lines"]
