"""Import and export over the API: uploads as raw bodies or multipart, streamed downloads, access."""

from __future__ import annotations

import io

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.e2e.conftest import Api, create_project

NDJSON = {"content-type": "application/x-ndjson"}


def jsonl(rows: list[dict]) -> bytes:
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


@pytest.fixture
def project(api: Api) -> dict:
    return create_project(api, "manager_a", api.world.client_a)


def imports_url(project: dict) -> str:
    return f"/api/projects/{project['id']}/imports"


def test_a_raw_jsonl_body_is_imported_and_reported(api: Api, project: dict) -> None:
    body = jsonl([{"external_id": f"t{i}", "data": {"text": f"review {i}"}} for i in range(3)])
    response = api.post("manager_a", imports_url(project), content=body, headers=NDJSON)
    assert response.status_code == 201, response.text
    assert response.json() == {
        "format": "jsonl", "rows_read": 3, "created": 3, "already_present": 0, "invalid": 0,
        "errors": [], "errors_omitted": 0,
    }
    again = api.post("manager_a", imports_url(project), content=body, headers=NDJSON)
    assert (again.json()["created"], again.json()["already_present"]) == (0, 3)


def test_a_multipart_csv_upload_takes_the_format_from_the_file_name_and_a_field_map(api: Api, project: dict) -> None:
    files = {"file": ("reviews.csv", b"id,review\nc1,Great\nc2,Awful\n", "text/csv")}
    response = api.post(
        "manager_a", imports_url(project), files=files, params=[("map", "id=external_id"), ("map", "review=text")]
    )
    assert response.status_code == 201, response.text
    assert response.json()["created"] == 2
    progress = api.get("manager_a", f"/api/projects/{project['id']}/progress").json()
    assert progress["tasks"] == 2


def test_a_parquet_upload_is_imported(api: Api, project: dict) -> None:
    buffer = io.BytesIO()
    pq.write_table(pa.table({"external_id": ["p1"], "text": ["from parquet"]}), buffer)
    files = {"file": ("tasks.parquet", buffer.getvalue(), "application/octet-stream")}
    response = api.post("manager_a", imports_url(project), files=files)
    assert response.status_code == 201, response.text
    assert response.json()["created"] == 1


def test_a_bad_row_rejects_the_upload_with_line_and_field(api: Api, project: dict) -> None:
    body = b'{"data": {"text": "fine"}}\n{"data": {"text": 5}}\n'
    response = api.post("manager_a", imports_url(project), content=body, headers=NDJSON)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "import_invalid"
    assert 'line 2: field "text": expected text, got number' in error["message"]
    assert error["details"]["errors"] == [
        {"line": 2, "field": "text", "message": 'line 2: field "text": expected text, got number'}
    ]
    assert api.get("manager_a", f"/api/projects/{project['id']}/progress").json()["tasks"] == 0


def test_skip_invalid_imports_the_rest_and_lists_the_bad_rows(api: Api, project: dict) -> None:
    body = b'{"data": {"text": "fine"}}\n{"data": {"text": 5}}\n'
    response = api.post("manager_a", imports_url(project), content=body, headers=NDJSON,
                        params={"skip_invalid": "true"})
    assert response.status_code == 201, response.text
    report = response.json()
    assert (report["created"], report["invalid"]) == (1, 1)
    assert report["errors"][0]["line"] == 2


def test_an_upload_of_unknown_format_is_refused(api: Api, project: dict) -> None:
    response = api.post("manager_a", imports_url(project), content=b"x", headers={"content-type": "text/plain"})
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"field": "format"}
    explicit = api.post("manager_a", imports_url(project), content=b'{"text": "a"}\n',
                        headers={"content-type": "text/plain"}, params={"format": "jsonl"})
    assert explicit.status_code == 201, explicit.text


def test_a_labeler_may_not_import_and_another_client_sees_no_project(api: Api, project: dict) -> None:
    body = jsonl([{"text": "a"}])
    labeler = api.post("labeler_a", imports_url(project), content=body, headers=NDJSON)
    assert labeler.status_code == 403
    assert labeler.json()["error"]["code"] == "permission_denied"
    stranger = api.post("manager_b", imports_url(project), content=body, headers=NDJSON)
    assert stranger.status_code == 404
    assert stranger.json()["error"]["code"] == "not_found"


def test_the_export_streams_jsonl_as_an_attachment_with_answers(api: Api, project: dict) -> None:
    pid = project["id"]
    body = jsonl([{"external_id": "e1", "data": {"text": "I love it"},
                   "suggestions": [{"model": "m", "answer": {"sentiment": "positive"}, "score": 0.6}]}])
    assert api.post("manager_a", imports_url(project), content=body, headers=NDJSON).status_code == 201
    task = api.post("labeler_a", f"/api/projects/{pid}/tasks/next").json()
    api.post("labeler_a", f"/api/projects/{pid}/tasks/{task['task_id']}/answers",
             json={"answer": {"sentiment": "positive"}})

    response = api.get("manager_a", f"/api/projects/{pid}/export", params={"format": "jsonl"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert response.headers["content-disposition"] == f'attachment; filename="reviews-{pid}.jsonl"'
    (line,) = [orjson.loads(x) for x in response.content.splitlines()]
    assert line["external_id"] == "e1"
    assert line["data"] == {"text": "I love it"}
    assert line["suggestions"][0]["score"] == 0.6
    assert [(a["labeler"], a["value"]) for a in line["answers"]] == [("labeler_a", {"sentiment": "positive"})]


def test_export_access_is_checked_before_the_stream_starts(api: Api, project: dict) -> None:
    url = f"/api/projects/{project['id']}/export"
    assert api.get("labeler_a", url).status_code == 403
    assert api.get("manager_b", url).status_code == 404
    unknown = api.get("manager_a", url, params={"format": "xml"})
    assert unknown.status_code == 400
    assert unknown.json()["error"]["details"] == {"field": "format"}
