"""Training-format exports on real databases, each read back with the library its users use.

DPO and SFT go through TRL's own data helpers (``trl.data_utils``) with a small offline chat
tokenizer; COCO through ``pycocotools``; YOLO through ``supervision``'s reader and the Ultralytics
label layout; spaCy through ``DocBin().from_disk``; CoNLL through spaCy's CoNLL NER reader; Parquet
through pyarrow, pandas and ``datasets.load_dataset("parquet")``; the HF dataset through
``datasets.load_from_disk``; CSV through the ``csv`` module.
"""

from __future__ import annotations

import base64
import csv
import io
import zipfile
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from labelvault.cli.main import app as cli_app
from labelvault.domain.access import Actor
from labelvault.errors import InvalidInput
from labelvault.io.exporter import ExportOptions, ExportService
from labelvault.workflow.projects import ProjectSettings
from tests.conftest import World

# ---------------------------------------------------------------------------------------- helpers


def labelers(world: World, n: int) -> list[Actor]:
    """``n`` labelers of client A: labeler_a and more as needed."""
    found = [world.actors["labeler_a"]]
    accounts = world.services.accounts
    for i in range(1, n):
        name = f"extra_labeler_{i}"
        accounts.create_user(world.operator, name, None)
        accounts.grant_role(world.operator, world.client_a, name, "labeler")
        found.append(accounts.actor_by_username(name))
    return found


def project(world: World, slug: str, schema: dict[str, Any], overlap: int = 1) -> int:
    return world.services.projects.create(world.actors["manager_a"], world.client_a, slug=slug, name=slug,
                                          schema=schema, overlap=overlap).id


def label_all(world: World, project_id: int, who: Actor, answers: dict[str, dict[str, Any]]) -> None:
    """``who`` answers every task the queue gives them, by external id (tasks not in ``answers`` skipped)."""
    labeling = world.services.labeling
    ids = task_ids(world, project_id)
    for _ in range(len(answers)):
        leased = labeling.next_task(who, world.client_a, project_id)
        external = next(e for e, i in ids.items() if i == leased.task_id)
        labeling.submit(who, world.client_a, project_id, leased.task_id, answers[external])


def task_ids(world: World, project_id: int) -> dict[str, int]:
    stream = world.services.exports.export(world.operator, world.client_a, project_id)
    return {t["external_id"]: t["id"] for t in (orjson.loads(x) for x in b"".join(stream.chunks).splitlines())}


def export_bytes(world: World, project_id: int, fmt: str, **options: Any) -> bytes:
    stream = world.services.exports.export(world.actors["manager_a"], world.client_a, project_id, format=fmt,
                                           options=ExportOptions(**options))
    return b"".join(stream.chunks)


def jsonl(data: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in data.splitlines()]


def chat_tokenizer() -> Any:
    """A tiny word-level tokenizer with a chat template, built offline (no model download)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel({"[UNK]": 0, "[EOS]": 1}, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", eos_token="[EOS]")
    tokenizer.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    return tokenizer


# ---------------------------------------------------------------------------------------------- DPO

PREFERENCE = {
    "fields": [{"name": "prompt", "kind": "text"}, {"name": "responses", "kind": "candidates"}],
    "questions": [{"name": "better", "type": "preference"}],
}
PREFERENCE["questions"][0]["field"] = "responses"


def preference_project(world: World) -> int:
    project_id = project(world, "prefs", PREFERENCE, overlap=3)
    rows = [
        {"external_id": "p1", "prompt": "Capital of France?",
         "responses": [{"id": "good", "text": "Paris."}, {"id": "bad", "text": "Lyon."}]},
        {"external_id": "p2", "prompt": "2 + 2 =", "responses": ["5", "4"]},
        {"external_id": "p3", "prompt": "Pick one", "responses": ["x", "y"]},
    ]
    world.services.imports.import_rows(world.operator, world.client_a, project_id, rows)
    votes = {"p1": ["a", "a", "b"], "p2": ["b", "b", "b"], "p3": ["tie", "tie", "tie"]}
    for i, who in enumerate(labelers(world, 3)):
        label_all(world, project_id, who, {e: {"better": {"choice": v[i]}} for e, v in votes.items()})
    return project_id


def test_dpo_pairs_from_a_preference_question_in_the_string_form_trl_reads(world: World) -> None:
    from trl.data_utils import is_conversational, maybe_apply_chat_template

    project_id = preference_project(world)
    ids = task_ids(world, project_id)
    pairs = jsonl(export_bytes(world, project_id, "dpo"))
    assert [(p["prompt"], p["chosen"], p["rejected"]) for p in pairs] == [
        ("Capital of France?", "Paris.", "Lyon."), ("2 + 2 =", "4", "5"),  # the tie gives no pair
    ]
    assert [(p["id"], p["external_id"], p["chosen_id"], p["rejected_id"]) for p in pairs] == [
        (ids["p1"], "p1", "good", "bad"), (ids["p2"], "p2", "1", "0")]
    assert pairs[0]["confidence"] == pytest.approx(2 / 3) and pairs[1]["confidence"] == 1.0
    for pair in pairs:
        assert not is_conversational(pair)
        # TRL passes string examples through unchanged.
        assert maybe_apply_chat_template(pair, chat_tokenizer())["chosen"] == pair["chosen"]


def test_dpo_pairs_in_the_chat_form_go_through_trls_chat_template(world: World) -> None:
    from trl.data_utils import apply_chat_template, is_conversational

    project_id = preference_project(world)
    pairs = jsonl(export_bytes(world, project_id, "dpo", dpo_form="chat"))
    assert pairs[0]["prompt"] == [{"role": "user", "content": "Capital of France?"}]
    assert pairs[0]["chosen"] == [{"role": "assistant", "content": "Paris."}]
    assert pairs[0]["rejected"] == [{"role": "assistant", "content": "Lyon."}]
    assert all(is_conversational(p) for p in pairs)
    rendered = apply_chat_template({k: pairs[0][k] for k in ("prompt", "chosen", "rejected")}, chat_tokenizer())
    assert rendered == {"prompt": "<|user|>Capital of France?<|end|><|assistant|>",
                        "chosen": "Paris.<|end|>", "rejected": "Lyon.<|end|>"}


def test_a_dpo_export_loads_as_a_hugging_face_json_dataset(world: World, tmp_path: Path) -> None:
    import datasets

    project_id = preference_project(world)
    target = tmp_path / "dpo.jsonl"
    target.write_bytes(export_bytes(world, project_id, "dpo", dpo_form="chat"))
    loaded = datasets.load_dataset("json", data_files=str(target), split="train")
    assert loaded.num_rows == 2
    assert loaded[1]["chosen"] == [{"role": "assistant", "content": "4"}]


RANKING = {
    "fields": [{"name": "conversation", "kind": "chat"}, {"name": "replies", "kind": "candidates"}],
    "questions": [{"name": "order", "type": "ranking", "field": "replies"},
                  {"name": "note", "type": "text", "required": False}],
}


def test_dpo_pairs_from_a_ranking_take_every_pair_the_majority_orders(world: World) -> None:
    from trl.data_utils import apply_chat_template

    project_id = project(world, "ranks", RANKING, overlap=3)
    conversation = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi"}]
    world.services.imports.import_rows(world.operator, world.client_a, project_id, [
        {"external_id": "r1", "conversation": conversation, "replies": ["hi", "hello there", "go away"]},
    ])
    rankings = [[1, 0, 2], [1, 0, 2], [0, 1, 2]]
    for who, ranking in zip(labelers(world, 3), rankings, strict=True):
        label_all(world, project_id, who, {"r1": {"order": ranking}})
    pairs = jsonl(export_bytes(world, project_id, "dpo"))  # a chat prompt: the chat form by default
    got = {(p["chosen_id"], p["rejected_id"]): p["confidence"] for p in pairs}
    assert got == pytest.approx({("1", "0"): 2 / 3, ("1", "2"): 1.0, ("0", "2"): 1.0})
    assert all(p["prompt"] == conversation for p in pairs)
    first = next(p for p in pairs if p["chosen_id"] == "1" and p["rejected_id"] == "0")
    rendered = apply_chat_template({k: first[k] for k in ("prompt", "chosen", "rejected")}, chat_tokenizer())
    assert rendered["prompt"] == "<|system|>Be brief.<|end|><|user|>Say hi<|end|><|assistant|>"
    assert (rendered["chosen"], rendered["rejected"]) == ("hello there<|end|>", "hi<|end|>")
    with pytest.raises(InvalidInput, match="prompt field 'conversation' is a chat: use the chat form"):
        export_bytes(world, project_id, "dpo", dpo_form="string")


def tiny_model(folder: Path) -> str:
    """A one-layer GPT-2 with random weights and the chat tokenizer, saved locally (nothing downloaded)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(vocab_size=8, n_positions=64, n_embd=16, n_layer=1, n_head=2)).save_pretrained(folder)
    chat_tokenizer().save_pretrained(folder)
    return str(folder)


def test_dpo_and_sft_exports_train_a_step_of_trls_own_trainers(world: World, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The strongest check of the shapes: TRL's trainers tokenise the exported rows as they are
    (extra columns included) and take one optimisation step on the CPU."""
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model_dir = tiny_model(tmp_path / "tiny")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.pad_token = tokenizer.unk_token
    project_id = preference_project(world)
    for form in ("string", "chat"):
        rows = jsonl(export_bytes(world, project_id, "dpo", dpo_form=form))
        trainer = DPOTrainer(
            model=AutoModelForCausalLM.from_pretrained(model_dir), processing_class=tokenizer,
            train_dataset=datasets.Dataset.from_list(rows),
            args=DPOConfig(output_dir=str(tmp_path / f"dpo-{form}"), max_steps=1, per_device_train_batch_size=2,
                           report_to=[], use_cpu=True, save_strategy="no"),
        )
        assert {"prompt_ids", "chosen_ids", "rejected_ids"} <= set(trainer.train_dataset.column_names)
        assert trainer.train().global_step == 1

    sft_project = project(world, "sft-train", SFT)
    world.services.imports.import_rows(world.operator, world.client_a, sft_project, [
        {"external_id": "a", "ticket": "Refund?"}, {"external_id": "b", "ticket": "Hello"}])
    label_all(world, sft_project, world.actors["labeler_a"], {"a": {"reply": "Done."}, "b": {"reply": "Hi!"}})
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_dir), processing_class=tokenizer,
        train_dataset=datasets.Dataset.from_list(jsonl(export_bytes(world, sft_project, "sft"))),
        args=SFTConfig(output_dir=str(tmp_path / "sft"), max_steps=1, per_device_train_batch_size=2, report_to=[],
                       use_cpu=True, save_strategy="no"),
    )
    assert trainer.train_dataset.num_rows == 2
    assert trainer.train().global_step == 1


# ---------------------------------------------------------------------------------------------- SFT

SFT = {"fields": [{"name": "ticket", "kind": "text"}],
       "questions": [{"name": "reply", "type": "text", "min_length": 1}]}


def test_sft_chats_take_the_reviewed_or_corrected_reply_and_skip_unfinished_tasks(world: World) -> None:
    from trl.data_utils import apply_chat_template, is_conversational

    project_id = project(world, "support", SFT)
    world.services.projects.update(world.actors["manager_a"], world.client_a, project_id,
                                   ProjectSettings(review_policy="all"))
    rows = [{"external_id": f"s{i}", "ticket": text} for i, text in enumerate(["Refund?", "Login broken", "Hi"])]
    world.services.imports.import_rows(world.operator, world.client_a, project_id, rows)
    label_all(world, project_id, world.actors["labeler_a"], {"s0": {"reply": "Sure, refunded."},
                                                            "s1": {"reply": "Reset it"}})
    reviews, reviewer = world.services.reviews, world.actors["reviewer_a"]
    ids = task_ids(world, project_id)
    for _ in range(2):
        item = reviews.next_item(reviewer, world.client_a, project_id)
        if item.task_id == ids["s0"]:
            reviews.decide(reviewer, world.client_a, project_id, item.task_id, decision="accept")
        else:
            reviews.decide(reviewer, world.client_a, project_id, item.task_id, decision="correct",
                           correction={"reply": "Use the reset link we sent you."})
    chats = jsonl(export_bytes(world, project_id, "sft"))
    assert [(c["external_id"], c["messages"]) for c in chats] == [
        ("s0", [{"role": "user", "content": "Refund?"}, {"role": "assistant", "content": "Sure, refunded."}]),
        ("s1", [{"role": "user", "content": "Login broken"},
                {"role": "assistant", "content": "Use the reset link we sent you."}]),
    ]
    assert all(is_conversational(c) for c in chats)
    rendered = apply_chat_template({"messages": chats[0]["messages"]}, chat_tokenizer())
    assert rendered["text"] == "<|user|>Refund?<|end|><|assistant|>Sure, refunded.<|end|>"


def test_sft_takes_its_prompt_from_a_chat_field_and_the_chosen_text_question(world: World) -> None:
    project_id = project(world, "chatsft", RANKING)
    conversation = [{"role": "user", "content": "Say hi"}]
    world.services.imports.import_rows(world.operator, world.client_a, project_id, [
        {"external_id": "c1", "conversation": conversation, "replies": ["hi", "yo"]}])
    label_all(world, project_id, world.actors["labeler_a"], {"c1": {"order": [0, 1], "note": "Hello!"}})
    (chat,) = jsonl(export_bytes(world, project_id, "sft"))
    assert chat["messages"] == [*conversation, {"role": "assistant", "content": "Hello!"}]


# ------------------------------------------------------------------------------------- COCO and YOLO

BOXES = {"fields": [{"name": "image", "kind": "image"}],
         "questions": [{"name": "objects", "type": "bbox", "field": "image", "labels": ["cat", "dog"]}]}


def png(width: int, height: int) -> str:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def boxes_project(world: World) -> tuple[int, dict[str, int]]:
    project_id = project(world, "pets", BOXES)
    world.services.imports.import_rows(world.operator, world.client_a, project_id, [
        {"external_id": "b1", "image": png(200, 100)},
        {"external_id": "b2", "image": png(64, 48)},
        {"external_id": "b3", "image": "https://images.example.org/3.jpg", "width": 640, "height": 480},
        {"external_id": "b4", "image": "https://images.example.org/4.jpg"},  # size unknown
        {"external_id": "b5", "image": png(10, 10)},  # never labelled
    ])
    label_all(world, project_id, world.actors["labeler_a"], {
        "b1": {"objects": [{"x": 0.1, "y": 0.2, "w": 0.5, "h": 0.4, "label": "cat"},
                           {"x": 0.7, "y": 0.0, "w": 0.25, "h": 1.0, "label": "dog"}]},
        "b2": {"objects": []},
        "b3": {"objects": [{"x": 0.5, "y": 0.5, "w": 0.25, "h": 0.25, "label": "dog"}]},
        "b4": {"objects": [{"x": 0.0, "y": 0.0, "w": 1.0, "h": 1.0, "label": "cat"}]},
    })
    return project_id, task_ids(world, project_id)


def test_coco_loads_with_pycocotools_with_boxes_in_pixels(world: World, tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    project_id, ids = boxes_project(world)
    target = tmp_path / "coco.json"
    target.write_bytes(export_bytes(world, project_id, "coco"))
    coco = COCO(str(target))
    assert {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())} == {1: "cat", 2: "dog"}
    assert sorted(coco.getImgIds()) == sorted([ids["b1"], ids["b2"], ids["b3"]])
    image = coco.loadImgs(ids["b1"])[0]
    assert (image["width"], image["height"], image["file_name"]) == (200, 100, f"task-{ids['b1']}.png")
    anns = coco.loadAnns(coco.getAnnIds(imgIds=ids["b1"]))
    assert [(a["category_id"], a["bbox"]) for a in anns] == [
        (1, pytest.approx([20.0, 20.0, 100.0, 40.0])), (2, pytest.approx([140.0, 0.0, 50.0, 100.0]))]
    assert anns[0]["area"] == pytest.approx(4000.0) and anns[0]["iscrowd"] == 0
    assert coco.getAnnIds(imgIds=ids["b2"]) == []  # an image with nothing on it is a negative
    (url_ann,) = coco.loadAnns(coco.getAnnIds(imgIds=ids["b3"]))
    assert url_ann["bbox"] == pytest.approx([320.0, 240.0, 160.0, 120.0])
    assert coco.loadImgs(ids["b3"])[0]["coco_url"] == "https://images.example.org/3.jpg"
    assert coco.dataset["info"]["skipped_without_size"] == 1
    assert coco.getCatIds(catNms=["dog"]) == [2] and len(coco.getAnnIds(catIds=[2])) == 2


def test_coco_boxes_of_several_labelers_are_merged_with_a_score(world: World, tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    project_id = project(world, "merged", BOXES, overlap=3)
    world.services.imports.import_rows(world.operator, world.client_a, project_id, [
        {"external_id": "m1", "image": "https://images.example.org/m1.jpg", "image_width": 100, "image_height": 100}])
    drawn = [[{"x": 0.10, "y": 0.1, "w": 0.4, "h": 0.4, "label": "cat"}],
             [{"x": 0.12, "y": 0.1, "w": 0.4, "h": 0.4, "label": "cat"}],
             [{"x": 0.6, "y": 0.6, "w": 0.2, "h": 0.2, "label": "dog"}]]  # one of three: no majority
    for who, boxes in zip(labelers(world, 3), drawn, strict=True):
        label_all(world, project_id, who, {"m1": {"objects": boxes}})
    target = tmp_path / "merged.json"
    target.write_bytes(export_bytes(world, project_id, "coco"))
    coco = COCO(str(target))
    (annotation,) = coco.loadAnns(coco.getAnnIds())
    assert annotation["category_id"] == 1
    assert annotation["bbox"] == pytest.approx([11.0, 10.0, 40.0, 40.0])
    assert 0 < annotation["score"] <= 1


def test_images_stored_in_labelvault_give_coco_their_size_and_yolo_their_files(world: World, tmp_path: Path) -> None:
    import supervision as sv
    from pycocotools.coco import COCO

    project_id = project(world, "stored", BOXES)
    picture = base64.b64decode(png(120, 80).split(",", 1)[1])
    stored = world.services.files.upload(world.actors["manager_a"], world.client_a, project_id, "pet.png",
                                         "image/png", picture)
    world.services.imports.import_rows(world.operator, world.client_a, project_id, [
        {"external_id": "f1", "image": stored.ref}])
    label_all(world, project_id, world.actors["labeler_a"], {
        "f1": {"objects": [{"x": 0.5, "y": 0.25, "w": 0.25, "h": 0.5, "label": "dog"}]}})
    task_id = task_ids(world, project_id)["f1"]
    target = tmp_path / "coco.json"
    target.write_bytes(export_bytes(world, project_id, "coco"))
    coco = COCO(str(target))
    assert coco.loadImgs(task_id)[0] == {
        "id": task_id, "file_name": f"task-{task_id}.png", "width": 120, "height": 80, "external_id": "f1"}
    assert coco.loadAnns(coco.getAnnIds())[0]["bbox"] == pytest.approx([60.0, 20.0, 30.0, 40.0])
    stream = world.services.exports.export(world.actors["manager_a"], world.client_a, project_id, format="yolo")
    assert stream.directory is not None
    stream.directory(tmp_path / "yolo")
    assert (tmp_path / "yolo" / "images" / f"task-{task_id}.png").read_bytes() == picture
    dataset = sv.DetectionDataset.from_yolo(str(tmp_path / "yolo" / "images"), str(tmp_path / "yolo" / "labels"),
                                            str(tmp_path / "yolo" / "data.yaml"))
    ((_, _, detections),) = list(dataset)
    assert detections.class_id.tolist() == [1]
    assert detections.xyxy.ravel().tolist() == pytest.approx([60, 20, 90, 60], abs=0.01)


def test_yolo_reads_back_with_supervision_and_follows_the_ultralytics_layout(world: World, tmp_path: Path) -> None:
    import supervision as sv
    import yaml

    project_id, ids = boxes_project(world)
    stream = world.services.exports.export(world.actors["manager_a"], world.client_a, project_id, format="yolo")
    assert stream.directory is not None and stream.media_type == "application/zip"
    root = tmp_path / "yolo"
    assert stream.directory(root) == 4
    data = yaml.safe_load((root / "data.yaml").read_text())
    assert data["names"] == {0: "cat", 1: "dog"} and data["nc"] == 2 and data["train"] == "images.txt"
    dataset = sv.DetectionDataset.from_yolo(images_directory_path=str(root / "images"),
                                            annotations_directory_path=str(root / "labels"),
                                            data_yaml_path=str(root / "data.yaml"))
    assert dataset.classes == ["cat", "dog"]
    by_stem = {Path(path).stem: detections for path, _, detections in dataset}
    first = by_stem[f"task-{ids['b1']}"]
    assert first.class_id.tolist() == [0, 1]
    assert first.xyxy.ravel().tolist() == pytest.approx([20, 20, 120, 60, 140, 0, 190, 100], abs=0.01)
    assert len(by_stem[f"task-{ids['b2']}"]) == 0
    # Ultralytics: one "class cx cy w h" line per box, relative; images.txt lists each image.
    line = (root / "labels" / f"task-{ids['b3']}.txt").read_text().split()
    assert [int(line[0]), *map(float, line[1:])] == pytest.approx([1, 0.625, 0.625, 0.25, 0.25])
    listing = (root / "images.txt").read_text().splitlines()
    assert f"./images/task-{ids['b1']}.png" in listing and "https://images.example.org/3.jpg" in listing
    assert f"task-{ids['b5']}" not in by_stem  # not labelled: not in the dataset


# ------------------------------------------------------------------------------------ spaCy, CoNLL

SPANS = {"fields": [{"name": "text", "kind": "text"}],
         "questions": [{"name": "entities", "type": "span", "field": "text", "labels": ["PER", "LOC"]}]}
SENTENCE = "Ada Lovelace met Charles Babbage in London."
ENTITIES = [{"start": 0, "end": 12, "label": "PER"}, {"start": 17, "end": 32, "label": "PER"},
            {"start": 36, "end": 42, "label": "LOC"}]


def spans_project(world: World) -> tuple[int, dict[str, int]]:
    project_id = project(world, "ner", SPANS, overlap=2)
    world.services.imports.import_rows(world.operator, world.client_a, project_id, [
        {"external_id": "n1", "text": SENTENCE}, {"external_id": "n2", "text": "Nothing here."}])
    first, second = labelers(world, 2)
    label_all(world, project_id, first, {"n1": {"entities": ENTITIES}, "n2": {"entities": []}})
    # The second labeler misses London: the vote (1 of 2 is no majority) keeps the agreed spans.
    label_all(world, project_id, second, {"n1": {"entities": ENTITIES[:2]}, "n2": {"entities": []}})
    return project_id, task_ids(world, project_id)


def test_spacy_docbin_loads_with_the_entities_and_offsets(world: World, tmp_path: Path) -> None:
    import spacy
    from spacy.tokens import DocBin

    project_id, ids = spans_project(world)
    target = tmp_path / "train.spacy"
    target.write_bytes(export_bytes(world, project_id, "spacy"))
    nlp = spacy.blank("en")
    docs = list(DocBin().from_disk(target).get_docs(nlp.vocab))
    assert [d.text for d in docs] == [SENTENCE, "Nothing here."]
    ents = [(e.start_char, e.end_char, e.label_, e.text) for e in docs[0].ents]
    assert ents == [(0, 12, "PER", "Ada Lovelace"), (17, 32, "PER", "Charles Babbage")]  # London: 1 of 2
    assert "entities" not in docs[0].spans  # span groups only for questions that allow overlap
    assert docs[0].user_data["id"] == ids["n1"] and docs[1].ents == ()


def test_overlapping_spans_go_to_a_span_group_for_span_categorisation(world: World, tmp_path: Path) -> None:
    import spacy
    from spacy.tokens import DocBin

    schema = {"fields": [{"name": "text", "kind": "text"}],
              "questions": [{"name": "mentions", "type": "span", "field": "text", "labels": ["ORG", "LOC"],
                             "allow_overlap": True}]}
    project_id = project(world, "overlap", schema)
    world.services.imports.import_rows(world.operator, world.client_a, project_id, [
        {"external_id": "o1", "text": "Bank of England staff"}, {"external_id": "o2", "text": "Visit Oslo"}])
    label_all(world, project_id, world.actors["labeler_a"], {
        "o1": {"mentions": [{"start": 0, "end": 15, "label": "ORG"}, {"start": 8, "end": 15, "label": "LOC"}]},
        "o2": {"mentions": [{"start": 6, "end": 10, "label": "LOC"}]}})
    target = tmp_path / "overlap.spacy"
    target.write_bytes(export_bytes(world, project_id, "spacy"))
    first, second = DocBin().from_disk(target).get_docs(spacy.blank("en").vocab)
    assert [(s.text, s.label_) for s in first.spans["mentions"]] == [("Bank of England", "ORG"), ("England", "LOC")]
    assert first.ents == ()  # entities cannot overlap
    assert [(s.text, s.label_) for s in second.spans["mentions"]] == [("Oslo", "LOC")]
    assert [(e.text, e.label_) for e in second.ents] == [("Oslo", "LOC")]


def test_conll_iob_reads_back_with_spacys_conll_reader(world: World) -> None:
    from spacy.training.converters import conll_ner_to_docs

    project_id, _ = spans_project(world)
    text = export_bytes(world, project_id, "conll").decode()
    docs = list(conll_ner_to_docs(text, n_sents=1, no_print=True))
    assert [t.text for t in docs[0]] == ["Ada", "Lovelace", "met", "Charles", "Babbage", "in", "London", "."]
    assert [(e.text, e.label_) for e in docs[0].ents][:2] == [("Ada Lovelace", "PER"), ("Charles Babbage", "PER")]
    first_doc = text.split("-DOCSTART- -X- O O\n\n")[1]
    tags = [line.split() for line in first_doc.strip().splitlines()]
    assert tags[:5] == [["Ada", "B-PER"], ["Lovelace", "I-PER"], ["met", "O"], ["Charles", "B-PER"],
                        ["Babbage", "I-PER"]]


def test_a_gold_task_gives_its_known_answer(world: World) -> None:
    project_id = project(world, "goldner", SPANS)
    world.services.gold.import_rows(world.operator, world.client_a, project_id, [
        {"external_id": "g1", "text": "Paris in spring",
         "gold": {"entities": [{"start": 0, "end": 5, "label": "LOC"}]}}])
    text = export_bytes(world, project_id, "conll").decode()
    assert text == "-DOCSTART- -X- O O\n\nParis B-LOC\nin O\nspring O\n\n"


# -------------------------------------------------------------------- Parquet, CSV and HF datasets

TABLE = {
    "fields": [{"name": "text", "kind": "text"}, {"name": "chat", "kind": "chat", "required": False}],
    "questions": [{"name": "sentiment", "type": "label", "labels": ["pos", "neg"]},
                  {"name": "stars", "type": "rating", "min": 1, "max": 5}],
}


def table_project(world: World) -> tuple[int, dict[str, int]]:
    project_id = project(world, "table", TABLE)
    world.services.imports.import_rows(world.operator, world.client_a, project_id, [
        {"external_id": "t1", "text": "great", "chat": [{"role": "user", "content": "hi"}], "lang": "en"},
        {"external_id": "t2", "text": "awful"},
        {"external_id": "t3", "text": "later"},
    ])
    label_all(world, project_id, world.actors["labeler_a"], {"t1": {"sentiment": "pos", "stars": 5},
                                                            "t2": {"sentiment": "neg", "stars": 1}})
    return project_id, task_ids(world, project_id)


def test_raw_parquet_holds_every_task_and_answer_for_pyarrow_and_pandas(world: World) -> None:
    import pyarrow.parquet as pq

    project_id, _ = table_project(world)
    table = pq.read_table(io.BytesIO(export_bytes(world, project_id, "parquet")))
    assert table.column_names == ["id", "external_id", "priority", "created_at", "data", "data_extra", "metadata",
                                  "suggestions", "answers"]
    frame = table.to_pandas()
    assert frame["external_id"].tolist() == ["t1", "t2", "t3"]
    assert frame["data"][0] == {"text": "great", "chat": [{"role": "user", "content": "hi"}]}
    assert orjson.loads(frame["data_extra"][0]) == {"lang": "en"}
    (answer,) = table.column("answers")[0].as_py()
    assert answer["labeler"] == "labeler_a" and orjson.loads(answer["value"]) == {"sentiment": "pos", "stars": 5}
    assert answer["submitted_at"].tzinfo is not None
    assert table.column("answers")[2].as_py() == []


def test_aggregated_parquet_loads_with_datasets_and_holds_final_answers(world: World, tmp_path: Path) -> None:
    import datasets

    project_id, _ = table_project(world)
    target = tmp_path / "agg.parquet"
    target.write_bytes(export_bytes(world, project_id, "aggregated-parquet"))
    loaded = datasets.load_dataset("parquet", data_files=str(target), split="train")
    assert loaded["external_id"] == ["t1", "t2", "t3"]
    first = loaded[0]
    assert first["answers"]["sentiment"]["value"] == "pos" and first["answers"]["stars"]["value"] == 5.0
    assert first["answers"]["sentiment"]["confidence"] == 1.0 and first["answers"]["sentiment"]["n"] == 1
    assert loaded[2]["answers"]["sentiment"] is None
    assert loaded[0]["data"]["text"] == "great"


def test_an_hf_dataset_export_loads_with_load_from_disk(world: World, tmp_path: Path) -> None:
    import datasets

    project_id, ids = table_project(world)
    stream = world.services.exports.export(world.actors["manager_a"], world.client_a, project_id,
                                           format="hf-dataset")
    assert stream.filename.endswith(".zip") and stream.directory is not None
    stream.directory(tmp_path / "ds")
    loaded = datasets.load_from_disk(str(tmp_path / "ds"))
    assert loaded.num_rows == 3 and loaded["id"] == [ids["t1"], ids["t2"], ids["t3"]]
    assert [r["sentiment"]["value"] if r["sentiment"] else None for r in loaded["answers"]] == ["pos", "neg", None]


def test_an_hf_dataset_download_is_a_zip_of_the_saved_directory(world: World, tmp_path: Path) -> None:
    import datasets

    project_id, _ = table_project(world)
    with zipfile.ZipFile(io.BytesIO(export_bytes(world, project_id, "hf-dataset"))) as archive:
        assert "dataset_info.json" in archive.namelist()
        archive.extractall(tmp_path / "unzipped")
    assert datasets.load_from_disk(str(tmp_path / "unzipped")).num_rows == 3


def test_csv_has_one_row_per_task_with_final_answers(world: World) -> None:
    project_id, _ = table_project(world)
    rows = list(csv.DictReader(io.StringIO(export_bytes(world, project_id, "csv").decode())))
    assert [r["external_id"] for r in rows] == ["t1", "t2", "t3"]
    assert rows[0]["data.text"] == "great" and orjson.loads(rows[0]["data.chat"]) == [{"role": "user",
                                                                                       "content": "hi"}]
    assert (rows[0]["sentiment"], rows[0]["sentiment.confidence"], rows[0]["stars"]) == ("pos", "1.0", "5.0")
    assert (rows[1]["sentiment"], rows[2]["sentiment"], rows[2]["sentiment.n"]) == ("neg", "", "")


# -------------------------------------------------------------------------------- choices and errors


def test_a_training_format_without_its_question_type_is_refused_naming_the_questions(world: World) -> None:
    project_id = project(world, "plain", TABLE)
    with pytest.raises(InvalidInput, match=r"the coco format needs a bbox question, and this project has none; "
                                           r"its questions: sentiment \(label\), stars \(rating\)"):
        export_bytes(world, project_id, "coco")
    with pytest.raises(InvalidInput, match=r"question 'sentiment' is a label question"):
        export_bytes(world, project_id, "dpo", question="sentiment")
    with pytest.raises(InvalidInput, match=r"the csv format holds every question; question applies to the "
                                           r"training formats \(dpo, sft, coco, yolo, spacy, conll\)"):
        export_bytes(world, project_id, "csv", question="sentiment")


def test_a_project_with_several_fitting_questions_asks_which(world: World) -> None:
    schema = {"fields": [{"name": "text", "kind": "text"}],
              "questions": [{"name": "people", "type": "span", "field": "text", "labels": ["PER"]},
                            {"name": "places", "type": "span", "field": "text", "labels": ["LOC"]}]}
    project_id = project(world, "two", schema)
    world.services.imports.import_rows(world.operator, world.client_a, project_id, [
        {"external_id": "x", "text": "Ada in London"}])
    label_all(world, project_id, world.actors["labeler_a"], {"x": {
        "people": [{"start": 0, "end": 3, "label": "PER"}], "places": [{"start": 7, "end": 13, "label": "LOC"}]}})
    with pytest.raises(InvalidInput, match=r"several span questions \(people \(span\), places \(span\)\)"):
        export_bytes(world, project_id, "conll")
    places = export_bytes(world, project_id, "conll", question="places").decode()
    assert "London B-LOC" in places and "Ada O" in places


def test_training_exports_come_out_in_batches_in_task_order(world: World) -> None:
    project_id = project(world, "many", SFT)
    rows = [{"external_id": f"m{i:02d}", "ticket": f"q{i}"} for i in range(7)]
    world.services.imports.import_rows(world.operator, world.client_a, project_id, rows)
    label_all(world, project_id, world.actors["labeler_a"], {r["external_id"]: {"reply": f"a{i}"}
                                                            for i, r in enumerate(rows)})
    done: list[int] = []
    stream = ExportService(world.services.uow_factory, batch_size=3).export(
        world.operator, world.client_a, project_id, format="sft", progress=done.append)
    chunks = list(stream.chunks)
    assert len(chunks) == 3 and done == [3, 6, 7]
    assert [c["messages"][1]["content"] for c in jsonl(b"".join(chunks))] == [f"a{i}" for i in range(7)]


def test_parquet_streams_one_row_group_per_batch(world: World) -> None:
    import pyarrow.parquet as pq

    project_id = project(world, "groups", TABLE)
    world.services.imports.import_rows(world.operator, world.client_a, project_id,
                                       [{"external_id": f"g{i}", "text": f"t{i}"} for i in range(7)])
    exports = ExportService(world.services.uow_factory, batch_size=3)
    for fmt in ("parquet", "aggregated-parquet"):
        chunks = list(exports.export(world.operator, world.client_a, project_id, format=fmt).chunks)
        assert sum(1 for c in chunks[:-1] if c) >= 3  # bytes leave after each batch, not at the end
        parquet = pq.ParquetFile(io.BytesIO(b"".join(chunks)))
        assert parquet.num_row_groups == 3 and parquet.metadata.num_rows == 7
        assert parquet.read().column("external_id").to_pylist() == [f"g{i}" for i in range(7)]


def test_a_training_export_is_audited_with_its_format_and_question(world: World) -> None:
    project_id, _ = spans_project(world)
    export_bytes(world, project_id, "conll")
    entries = [orjson.loads(line) for line in world.services.audit.trail(world.client_a)]
    exported = [e["details"] for e in entries if e["action"] == "project.exported" and e["actor"] == "manager_a"]
    assert exported == [{"format": "conll", "tasks": 2, "question": "entities"}]


def test_other_clients_cannot_export_a_project(world: World) -> None:
    from labelvault.errors import NotFound

    project_id, _ = spans_project(world)
    with pytest.raises(NotFound):
        world.services.exports.export(world.actors["manager_b"], world.client_a, project_id, format="spacy")


# ------------------------------------------------------------------------------------------------ CLI


@pytest.fixture
def cli(world: World) -> CliRunner:
    settings = world.services.settings
    return CliRunner(env={"LABELVAULT_HOME": str(settings.home),
                          "LABELVAULT_DATABASE_URL": settings.resolved_database_url})


def test_the_cli_writes_a_yolo_directory_and_an_hf_dataset_zip(cli: CliRunner, world: World, tmp_path: Path) -> None:
    boxes_project(world)
    result = cli.invoke(cli_app, ["export", "acme/pets", "--format", "yolo", "--out", str(tmp_path / "yolo"),
                                  "--question", "objects"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "yolo" / "data.yaml").exists() and not (tmp_path / "yolo.part").exists()
    result = cli.invoke(cli_app, ["export", "acme/pets", "--format", "hf-dataset", "--out", str(tmp_path / "d.zip")])
    assert result.exit_code == 0, result.output
    assert "dataset_info.json" in zipfile.ZipFile(tmp_path / "d.zip").namelist()


def test_the_cli_refuses_a_format_the_project_cannot_give_in_one_line(cli: CliRunner, world: World) -> None:
    project(world, "plain", TABLE)
    result = cli.invoke(cli_app, ["export", "acme/plain", "--format", "spacy", "--out", "x.spacy"])
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: the spacy format needs a span question, and this project has none")


def test_the_cli_help_lists_every_export_format(cli: CliRunner) -> None:
    from labelvault.io.formats import EXPORT_FORMATS

    result = cli.invoke(cli_app, ["export", "--help"], env={"COLUMNS": "400"})
    flat = " ".join(result.stdout.split())
    for name in EXPORT_FORMATS:
        assert f"{name}:" in flat
