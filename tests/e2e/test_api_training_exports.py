"""Training-format downloads over the API: content types, directory formats as zips, choices, errors."""

from __future__ import annotations

import csv
import io
import zipfile
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest
import yaml

from tests.e2e.conftest import Api, create_project

SCHEMA = {
    "fields": [{"name": "prompt", "kind": "text"}, {"name": "replies", "kind": "candidates"},
               {"name": "image", "kind": "image", "required": False}],
    "questions": [
        {"name": "better", "type": "preference", "field": "replies"},
        {"name": "entities", "type": "span", "field": "prompt", "labels": ["CITY"]},
        {"name": "objects", "type": "bbox", "field": "image", "labels": ["car"], "required": False},
        {"name": "rewrite", "type": "text"},
    ],
}
IMAGE = "https://images.example.org/1.jpg"


@pytest.fixture
def project(api: Api) -> dict[str, Any]:
    created = create_project(api, "manager_a", api.world.client_a, slug="mixed", schema=SCHEMA)
    pid = created["id"]
    row = {"external_id": "m1", "data": {"prompt": "Weather in Oslo?", "replies": ["Cold.", "Hot."], "image": IMAGE,
                                         "image_width": 400, "image_height": 200}}
    response = api.post("manager_a", f"/api/projects/{pid}/imports", content=orjson.dumps(row) + b"\n",
                        headers={"Content-Type": "application/x-ndjson"})
    assert response.status_code == 201, response.text
    task = api.post("labeler_a", f"/api/projects/{pid}/tasks/next").json()
    answer = {"better": {"choice": "a"}, "entities": [{"start": 11, "end": 15, "label": "CITY"}],
              "objects": [{"x": 0.25, "y": 0.5, "w": 0.5, "h": 0.25, "label": "car"}], "rewrite": "How cold is Oslo?"}
    submitted = api.post("labeler_a", f"/api/projects/{pid}/tasks/{task['task_id']}/answers", json={"answer": answer})
    assert submitted.status_code in (200, 201), submitted.text
    return created


def download(api: Api, project: dict[str, Any], fmt: str, **params: str) -> Any:
    response = api.get("manager_a", f"/api/projects/{project['id']}/export", params={"format": fmt, **params})
    assert response.status_code == 200, response.text
    return response


def test_dpo_and_sft_come_as_json_lines(api: Api, project: dict[str, Any]) -> None:
    dpo = download(api, project, "dpo")
    assert dpo.headers["content-type"].startswith("application/x-ndjson")
    (pair,) = [orjson.loads(line) for line in dpo.content.splitlines()]
    assert (pair["prompt"], pair["chosen"], pair["rejected"]) == ("Weather in Oslo?", "Cold.", "Hot.")
    chat = orjson.loads(download(api, project, "dpo", dpo_form="chat").content)
    assert chat["chosen"] == [{"role": "assistant", "content": "Cold."}]
    sft = orjson.loads(download(api, project, "sft").content)
    assert sft["messages"][-1] == {"role": "assistant", "content": "How cold is Oslo?"}


def test_coco_is_json_and_yolo_is_a_zip_of_the_dataset_directory(api: Api, project: dict[str, Any]) -> None:
    coco = download(api, project, "coco")
    assert coco.headers["content-type"] == "application/json"
    (annotation,) = coco.json()["annotations"]
    assert annotation["bbox"] == pytest.approx([100.0, 100.0, 200.0, 50.0])
    yolo = download(api, project, "yolo")
    assert yolo.headers["content-type"] == "application/zip"
    assert yolo.headers["content-disposition"] == f'attachment; filename="mixed-{project["id"]}.yolo.zip"'
    with zipfile.ZipFile(io.BytesIO(yolo.content)) as archive:
        names = archive.namelist()
        assert yaml.safe_load(archive.read("data.yaml"))["names"] == {0: "car"}
        (label,) = [n for n in names if n.startswith("labels/") and n.endswith(".txt")]
        assert archive.read(label).decode().split() == ["0", "0.500000", "0.625000", "0.500000", "0.250000"]
        assert archive.read("images.txt").decode().splitlines() == [IMAGE]


def test_spacy_conll_parquet_csv_and_hf_dataset_have_their_content_types(api: Api, project: dict[str, Any]) -> None:
    assert download(api, project, "spacy").headers["content-type"] == "application/octet-stream"
    conll = download(api, project, "conll")
    assert conll.headers["content-type"].startswith("text/plain")
    assert "Oslo B-CITY" in conll.text
    parquet = download(api, project, "aggregated-parquet")
    assert parquet.headers["content-type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(parquet.content))
    assert table.column("answers")[0].as_py()["rewrite"]["value"] == "How cold is Oslo?"
    assert pq.read_table(io.BytesIO(download(api, project, "parquet").content)).num_rows == 1
    csv_response = download(api, project, "csv")
    assert csv_response.headers["content-type"].startswith("text/csv")
    (row,) = csv.DictReader(io.StringIO(csv_response.text))
    assert (row["better"], row["data.prompt"]) == ("a", "Weather in Oslo?")
    hf = download(api, project, "hf-dataset")
    assert hf.headers["content-type"] == "application/zip"
    assert "dataset_info.json" in zipfile.ZipFile(io.BytesIO(hf.content)).namelist()


def test_a_format_the_project_cannot_give_is_a_400_naming_its_questions(api: Api) -> None:
    plain = create_project(api, "manager_a", api.world.client_a, slug="plain")
    response = api.get("manager_a", f"/api/projects/{plain['id']}/export", params={"format": "yolo"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_input" and error["details"] == {"field": "question"}
    assert error["message"] == ("the yolo format needs a bbox question, and this project has none; "
                                "its questions: sentiment (label)")


def test_a_question_of_the_wrong_type_is_refused_before_the_stream(api: Api, project: dict[str, Any]) -> None:
    response = api.get("manager_a", f"/api/projects/{project['id']}/export",
                       params={"format": "dpo", "question": "rewrite"})
    assert response.status_code == 400
    assert "question 'rewrite' is a text question" in response.json()["error"]["message"]
    assert api.get("labeler_a", f"/api/projects/{project['id']}/export", params={"format": "coco"}).status_code == 403
