"""The Python client of the LabelVault REST API.

    import labelvault as lv

    client = lv.Client("http://127.0.0.1:8000", token="lv_...")
    project = client.create_project("acme", "Reviews", schema, exist_ok=True)
    project.add_tasks(rows)                       # list of dicts, DataFrame, datasets.Dataset or a file
    project.add_suggestions([{"external_id": "r1", "model": "clf", "answer": {...}, "score": 0.8}])
    for answer in project.iter_answers(): ...
    project.export("jsonl", "reviews.jsonl")
    dataset = project.export_dataset()            # a datasets.Dataset
    labelers = project.quality_report()           # a pandas DataFrame

It speaks HTTP only (import-linter contract 5: no server-side module is imported). Errors are the
classes of :mod:`labelvault.sdk.errors`; retries are described in :mod:`labelvault.sdk.transport`.
pandas and datasets are optional (``pip install 'labelvault[sdk]'``) and imported only by the calls
that need them.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import time
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

import httpx
import orjson

from labelvault.sdk import schema as schemas
from labelvault.sdk.errors import (
    ApiError,
    ConflictError,
    ImportInvalidError,
    InvalidInputError,
    NotFoundError,
    QueueRefusedError,
    TransportError,
    api_error,
)
from labelvault.sdk.models import (
    Answer,
    AnswerReceipt,
    ClientInfo,
    ImportReport,
    LabelingReport,
    LeasedTask,
    LedgerEntry,
    Me,
    MyLedgerEntry,
    Progress,
    Skip,
    SubmittedAndNext,
    SuggestionsReport,
    TaskDetail,
    TaskSummary,
    renumber,
)
from labelvault.sdk.optional import loaded, require
from labelvault.sdk.progress import bar
from labelvault.sdk.transport import RetryPolicy, Transport

if TYPE_CHECKING:  # only for annotations: neither package is needed to import the SDK
    import datasets
    import pandas

PAGE = 1000  # the API's largest page
TASK_BATCH = 5000  # task ids and as many external ids per request: the API takes 10,000 in all
UPLOAD_CHUNK = 1024 * 1024
_FILE_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_MEDIA_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv", "parquet": "application/vnd.apache.parquet"}

# How export_dataset reads each export format.
_DATASET_READERS = {"parquet": "parquet", "aggregated-parquet": "parquet", "hf-dataset": "zip", "jsonl": "json",
                    "aggregated-jsonl": "json", "dpo": "json", "sft": "json"}

ClientRef = int | str | ClientInfo
TaskSource = Iterable[Mapping[str, Any]] | str | Path
ProjectTable = Literal["labelers", "agreement"]


class Client:
    """A connection to one LabelVault server, as the owner of an API token.

    ``retries`` further attempts are made for requests that are safe to repeat (see
    :mod:`labelvault.sdk.transport`); ``progress=False`` switches every progress bar off.
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 0.5,
        progress: bool = True,
        verify: bool | str = True,
    ) -> None:
        if not token:
            raise ValueError("an API token is needed: see 'Authentication' in the README")
        self.url = url.rstrip("/")
        self.progress = progress
        self._http = Transport(self.url, token, timeout=timeout, retry=RetryPolicy(retries=retries, backoff=backoff),
                               verify=verify)

    @classmethod
    def login(cls, url: str, username: str, password: str, *, token_name: str = "sdk", **kwargs: Any) -> Client:
        """Log in with a password and use a new API token (``POST /api/auth/token``)."""
        with Transport(url.rstrip("/"), None, timeout=kwargs.get("timeout", 60.0), retry=RetryPolicy(retries=0),
                       verify=kwargs.get("verify", True)) as anonymous:
            issued = anonymous.json("POST", "/auth/token",
                                    json={"username": username, "password": password, "name": token_name})
        return cls(url, issued["token"], **kwargs)

    @classmethod
    def from_env(cls, **kwargs: Any) -> Client:
        """From ``LABELVAULT_URL`` and ``LABELVAULT_TOKEN``."""
        try:
            return cls(os.environ["LABELVAULT_URL"], os.environ["LABELVAULT_TOKEN"], **kwargs)
        except KeyError as missing:
            raise ValueError(f"set {missing.args[0]} (and LABELVAULT_URL / LABELVAULT_TOKEN)") from None

    # -- lifecycle

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    # -- accounts and clients

    def me(self) -> Me:
        return Me.from_api(self._http.json("GET", "/me"))

    def clients(self) -> list[ClientInfo]:
        """Every client the token's owner may see."""
        return [ClientInfo.from_api(item) for item in self._pages("/clients")]

    def client(self, ref: ClientRef) -> ClientInfo:
        """A client by id or slug."""
        if isinstance(ref, ClientInfo):
            return ref
        if isinstance(ref, int) or str(ref).isdigit():
            return ClientInfo.from_api(self._http.json("GET", f"/clients/{int(ref)}"))
        for info in self.clients():
            if info.slug == ref:
                return info
        raise NotFoundError(f"client {ref!r} not found", status_code=404, code="not_found")

    def iter_my_ledger(
        self, client: ClientRef, *, project: int | None = None, after_id: int = 0, page_size: int = PAGE
    ) -> Iterator[MyLedgerEntry]:
        """The token owner's own money events with a client in id order (``project``: one project's
        id only): answers paid, reversals with the reviewer's reason, bonuses with the manager's note.
        Any member with a ``read`` token; the server records each page in the audit log."""
        owner = self.client(client)
        params: dict[str, Any] = {"limit": page_size}
        if project is not None:
            params["project_id"] = project
        while True:
            page = self._http.json("GET", f"/clients/{owner.id}/my-ledger", params={**params, "after_id": after_id})
            yield from (MyLedgerEntry.from_api(item) for item in page["items"])
            if page["next_after_id"] is None:
                return
            after_id = page["next_after_id"]

    # -- projects

    def projects(self, client: ClientRef | None = None) -> list[Project]:
        """The projects of one client, or of every client the token's owner may see."""
        owners = [self.client(client)] if client is not None else self.clients()
        return [Project(self, item) for owner in owners for item in self._pages(f"/clients/{owner.id}/projects")]

    def project(self, ref: int | str) -> Project:
        """A project by id or as ``client-slug/project-slug``."""
        if isinstance(ref, int) or str(ref).isdigit():
            return Project(self, self._http.json("GET", f"/projects/{int(ref)}"))
        client_slug, _, slug = str(ref).partition("/")
        for project in self.projects(client_slug):
            if project.slug == slug:
                return project
        raise NotFoundError(f"project {ref!r} not found", status_code=404, code="not_found")

    def create_project(
        self,
        client: ClientRef,
        name: str,
        schema: schemas.SchemaLike,
        *,
        slug: str | None = None,
        overlap: int = 1,
        lease_seconds: int | None = None,
        exist_ok: bool = False,
    ) -> Project:
        """Create a project from a schema: typed objects (:mod:`labelvault.sdk.schema`), a dict, YAML or
        JSON text, or a file path. ``slug`` defaults to one made from the name; with ``exist_ok`` a
        project of that slug is returned instead of a conflict (its schema is left as it is)."""
        owner = self.client(client)
        slug = slug or slugify(name)
        body: dict[str, Any] = {"slug": slug, "name": name, "schema": schemas.document(schema), "overlap": overlap}
        if lease_seconds is not None:
            body["lease_seconds"] = lease_seconds
        try:
            # Not retried: a lost response to a create would answer "exists already" on a retry;
            # exist_ok covers that for callers who want it.
            data = self._http.json("POST", f"/clients/{owner.id}/projects", json=body)
        except ConflictError:
            if not exist_ok:
                raise
            return self.project(f"{owner.slug}/{slug}")
        return Project(self, data)

    # -- plumbing shared with Project

    def _pages(self, path: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            page = self._http.json("GET", path, params={**(params or {}), "offset": offset, "limit": PAGE})
            yield from page["items"]
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return


class Project:
    """A project of the server, with the calls that work on it. Attributes mirror ``GET /projects/{id}``."""

    id: int
    client_id: int
    slug: str
    name: str
    schema: dict[str, Any]
    overlap: int
    status: str

    def __init__(self, client: Client, data: dict[str, Any]) -> None:
        self._client = client
        self._set(data)

    def _set(self, data: dict[str, Any]) -> None:
        self.data = data
        self.id = int(data["id"])
        self.client_id = int(data["client_id"])
        self.slug = str(data["slug"])
        self.name = str(data["name"])
        self.schema = dict(data["schema"])
        self.overlap = int(data["overlap"])
        self.status = str(data["status"])

    def __repr__(self) -> str:
        return f"Project(id={self.id}, slug={self.slug!r}, name={self.name!r})"

    @property
    def _http(self) -> Transport:
        return self._client._http

    def refresh(self) -> Project:
        self._set(self._http.json("GET", f"/projects/{self.id}"))
        return self

    def update(self, **settings: Any) -> Project:
        """Change settings (name, overlap, status, review_policy, rates, budget_cap, ...)."""
        self._set(self._http.json("PATCH", f"/projects/{self.id}", json=settings, idempotent=True))
        return self

    def progress(self) -> Progress:
        return Progress.from_api(self._http.json("GET", f"/projects/{self.id}/progress"))

    def tasks(self, *, state: str | None = None, external_id: str | None = None) -> Iterator[TaskSummary]:
        """Every task's id, external id, state and counters (no content), lazily; only those in
        ``state`` (open, in_review, complete, gold) or with ``external_id`` when given."""
        params = {key: value for key, value in (("state", state), ("external_id", external_id)) if value is not None}
        for item in self._keyset_pages("tasks", {**params, "limit": PAGE}, 0):
            yield TaskSummary.from_api(item)

    def task(self, task_id: int | None = None, *, external_id: str | None = None) -> TaskDetail:
        """One task, by id or external id, with its content, answers (rejected ones too), skips,
        leases and reviews. A manager's read: the server checks the conflict wall and audits it."""
        if (task_id is None) == (external_id is None):
            raise ValueError("give a task id or an external_id, not both")
        if task_id is None:
            found = next(self.tasks(external_id=external_id), None)
            if found is None:
                raise NotFoundError(f"no task with external id {external_id!r} in project {self.id}", status_code=404,
                                    code="not_found")
            task_id = found.id
        return TaskDetail.from_api(self._http.json("GET", f"/projects/{self.id}/tasks/{task_id}"))

    def set_priority(self, priority: int, *, task_ids: Iterable[int] = (), external_ids: Iterable[str] = ()) -> int:
        """Give tasks a new priority (higher is labeled first); returns how many changed. Sent in
        batches of 5,000 ids and 5,000 external ids, each all or nothing: a task not in the project
        raises ``NotFoundError`` naming it, and its batch changes nothing (earlier batches stay)."""
        return self._per_batch("priority", "changed", {"priority": priority}, task_ids, external_ids)

    def ask_more_answers(self, more: int = 1, *, task_ids: Iterable[int] = (), external_ids: Iterable[str] = ()) -> int:
        """Ask for ``more`` answers on tasks from labelers who have not answered them (a second
        opinion); returns how many tasks. In batches like ``set_priority``, each all or nothing."""
        return self._per_batch("more-answers", "tasks", {"more": more}, task_ids, external_ids)

    def remove_tasks(self, *, task_ids: Iterable[int] = (), external_ids: Iterable[str] = ()) -> int:
        """Delete tasks nobody has answered (with their skips and leases); returns how many. In
        batches like ``set_priority``, each all or nothing: a task not in the project raises
        ``NotFoundError``, one with an answer ``ConflictError``, naming them."""
        return self._per_batch("remove", "removed", {}, task_ids, external_ids)

    def _per_batch(self, action: str, counted: str, body: dict[str, Any], task_ids: Iterable[int],
                   external_ids: Iterable[str]) -> int:
        ids, externals = list(task_ids), list(external_ids)
        total = 0
        for start in range(0, max(len(ids), len(externals)), TASK_BATCH):
            batch = {**body, "task_ids": ids[start:start + TASK_BATCH],
                     "external_ids": externals[start:start + TASK_BATCH]}
            # A priority set twice is the same, so it may be retried; a removal is not (repeated
            # after it went through, it would be a 404 naming the tasks it removed).
            total += int(self._http.json("POST", f"/projects/{self.id}/tasks/{action}", json=batch,
                                         idempotent=action == "priority")[counted])
        return total

    # -- tasks in

    def add_tasks(
        self,
        source: TaskSource | pandas.DataFrame | datasets.Dataset,
        *,
        batch_size: int = 5000,
        skip_invalid: bool = False,
        mapping: Mapping[str, str] | None = None,
        format: str | None = None,
    ) -> ImportReport:
        """Add tasks from a list (or any iterable) of dicts, a pandas DataFrame, a Hugging Face
        ``datasets.Dataset``, or a JSONL, CSV or Parquet file.

        Rows are in the import row format (``{"external_id", "data": {...}, "suggestions": [...]}``
        or flat, one key per field); ``mapping`` renames columns (``{"review": "text"}``). Rows are
        sent in batches of ``batch_size``, each imported in one transaction: a bad row rejects its
        batch (earlier batches stay) unless ``skip_invalid``. A file is sent whole, as one import.
        Importing again is idempotent by ``external_id``, which is also what makes a batch safe
        to retry after a lost response: batches whose rows all have one are retried, others not.
        """
        params: list[tuple[str, Any]] = [("skip_invalid", str(skip_invalid).lower())]
        params += [("map", f"{column}={field}") for column, field in (mapping or {}).items()]
        if isinstance(source, str | Path):
            return self._upload_file(Path(source), params, format)
        rows, total, tabular = _rows_of(source, batch_size)
        report = ImportReport()
        with bar(self._client.progress, f"Adding tasks to {self.slug}", total=total, unit="rows") as progress:
            for batch in _batches(rows, batch_size):
                if tabular:
                    batch = [_without_missing(row) for row in batch]
                body = b"".join(_dumps(row) + b"\n" for row in batch)
                idempotent = all(_has_external_id(row) for row in batch)
                try:
                    data = self._http.json("POST", f"/projects/{self.id}/imports",
                                           params=[*params, ("format", "jsonl")], content=body,
                                           headers={"content-type": _MEDIA_TYPES["jsonl"]}, idempotent=idempotent)
                except ImportInvalidError as exc:
                    raise _batch_rejected(exc, report) from None
                report = report.plus(ImportReport.from_api(data), offset=report.rows_read)
                progress.advance(len(batch))
        return report

    def _upload_file(self, path: Path, params: list[tuple[str, Any]], format: str | None) -> ImportReport:
        fmt = format or _FILE_FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise ValueError(f"cannot tell the format of {path.name}: pass format='jsonl', 'csv' or 'parquet'")
        size = path.stat().st_size
        with bar(self._client.progress, f"Uploading {path.name}", total=size, unit="bytes") as progress:

            def chunks() -> Iterator[bytes]:
                # Streamed from disk, never whole in memory; the bar follows the bytes sent. (Not
                # retried: whether every row has an external_id is not known without reading it.)
                progress.total(size)
                with path.open("rb") as stream:
                    yield from _read_chunks(stream, progress)

            data = self._http.json("POST", f"/projects/{self.id}/imports", params=[*params, ("format", fmt)],
                                   content=chunks, headers={"content-type": _MEDIA_TYPES.get(fmt, "")},
                                   idempotent=False)
        return ImportReport.from_api({**data, "batches": 1})

    # -- suggestions

    def add_suggestions(
        self,
        items: Iterable[Mapping[str, Any]] | pandas.DataFrame,
        *,
        model: str | None = None,
        batch_size: int = 1000,
    ) -> SuggestionsReport:
        """Add model suggestions to existing tasks, named by ``external_id`` or ``task_id``.

        Items are either ``{"external_id", "suggestions": [{"model", "answer", "score"}]}`` or
        flat, one suggestion each: ``{"external_id", "model", "answer", "score"}`` (``model`` may
        be given once for all). A model's suggestions replace its earlier ones on a task, so a
        call can be repeated (and is retried) safely; one bad item rejects its batch.
        """
        rows, _total, _tabular = _rows_of(items, batch_size)
        grouped = _group_suggestions(rows, model)
        tasks = suggestions = 0
        with bar(self._client.progress, f"Adding suggestions to {self.slug}", total=len(grouped),
                 unit="tasks") as progress:
            for batch in _batches(iter(grouped), batch_size):
                data = self._http.json("POST", f"/projects/{self.id}/suggestions", json={"items": batch},
                                       idempotent=True)
                tasks += data["tasks"]
                suggestions += data["suggestions"]
                progress.advance(len(batch))
        return SuggestionsReport(tasks=tasks, suggestions=suggestions)

    # -- labeling (a labeler's token: a script or a model working the queue like a person)

    def next_task(self) -> LeasedTask:
        """Lease the next task for the caller: the same one again while their lease is open, so a
        retry is safe. Raises ``QueueRefusedError`` whose ``reason`` says why there is none
        (``no_tasks``, ``budget_reached``, ``not_qualified``, ``suspended``, ``conflict_of_interest``...)."""
        return LeasedTask.from_api(self._http.json("POST", f"/projects/{self.id}/tasks/next", idempotent=True))

    def submit(
        self, task_id: int, answer: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> AnswerReceipt:
        """Answer a task leased to the caller. Sent with an idempotency key (a new random one unless
        given), so a request whose response was lost is retried without answering twice."""
        data = self._http.json("POST", f"/projects/{self.id}/tasks/{task_id}/answers", json={"answer": dict(answer)},
                               headers={"Idempotency-Key": idempotency_key or uuid.uuid4().hex})
        return AnswerReceipt.from_api(data)

    def submit_and_next(
        self, task_id: int, answer: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> SubmittedAndNext:
        """Answer a task leased to the caller and lease their next one in the same request (one
        request per task instead of two). The answer is stored either way: where there is no next
        task, ``next_error`` holds what ``next_task()`` would have raised. Retried as ``submit``
        is; a retry answers the first receipt and the lease the caller holds by then."""
        data = self._http.json(
            "POST", f"/projects/{self.id}/tasks/{task_id}/answers", params={"next": "true"},
            json={"answer": dict(answer)}, headers={"Idempotency-Key": idempotency_key or uuid.uuid4().hex},
        )
        error = data.get("next_error")
        return SubmittedAndNext(
            receipt=AnswerReceipt.from_api(data),
            next_task=LeasedTask.from_api(data["next_task"]) if data.get("next_task") else None,
            next_error=api_error(int(error["status"]), str(error["code"]), str(error["message"]),
                                 error.get("details")) if error else None,
        )

    def skip(self, task_id: int, reason: str = "") -> None:
        """Pass on a task leased to the caller, saying why (managers read the reason); it is not
        offered to them again. Not retried: a skip that went through cannot be made twice."""
        self._http.request("POST", f"/projects/{self.id}/tasks/{task_id}/skip", json={"reason": reason},
                           idempotent=False)

    def label(
        self, answer_for: Callable[[LeasedTask], Mapping[str, Any] | None], *, skip_reason: str = "",
        limit: int | None = None,
    ) -> LabelingReport:
        """Work the queue: lease a task, ask ``answer_for`` for its answer and submit it (None: skip
        the task with ``skip_reason``), until the queue has nothing left for the caller or ``limit``
        tasks are done. Any other refusal (budget reached, suspended, ...) is raised. Each answer's
        submit brings the next task back with it (``submit_and_next``): one request per task."""
        answered = skipped = 0
        # After a submit, its response brings the next task, or the error a next would have raised.
        task: LeasedTask | None = None
        next_error: Exception | None = None
        with bar(self._client.progress, f"Labeling {self.slug}", total=limit, unit="tasks") as progress:
            while limit is None or answered + skipped < limit:
                try:
                    if next_error is not None:
                        raise next_error
                    if task is None:
                        task = self.next_task()
                except QueueRefusedError as refused:
                    if refused.reason == "no_tasks":
                        return LabelingReport(answered, skipped, "no_tasks")
                    raise
                answer = answer_for(task)
                if answer is None:
                    self.skip(task.task_id, skip_reason)
                    skipped, task = skipped + 1, None
                elif limit is not None and answered + skipped + 1 >= limit:
                    self.submit(task.task_id, answer)  # the last one: lease nothing more
                    answered, task = answered + 1, None
                else:
                    submitted = self.submit_and_next(task.task_id, answer)
                    answered, task, next_error = answered + 1, submitted.next_task, submitted.next_error
                progress.advance()
        return LabelingReport(answered, skipped, "limit")

    # -- answers out

    def iter_answers(
        self, *, status: str | None = None, after_id: int = 0, page_size: int = PAGE
    ) -> Iterator[Answer]:
        """Every answer in id order, fetched page by page as the loop asks for them.

        ``after_id`` resumes after an answer seen before (keep the last ``answer.id`` to pull only
        new answers next time); ``status`` is submitted, accepted, rejected or corrected."""
        params: dict[str, Any] = {"limit": page_size}
        if status is not None:
            params["status"] = status
        for item in self._keyset_pages("answers", params, after_id):
            yield Answer.from_api(item)

    def iter_skips(self, *, after_id: int = 0, page_size: int = PAGE) -> Iterator[Skip]:
        """Every skip in id order with the labeler's reason, page by page (a manager's token; the
        server records each page in the audit log). ``after_id`` resumes after a skip seen before."""
        for item in self._keyset_pages("skips", {"limit": page_size}, after_id):
            yield Skip.from_api(item)

    def iter_ledger(self, *, after_id: int = 0, page_size: int = PAGE) -> Iterator[LedgerEntry]:
        """Every money event of the project in id order, bonus notes included (a manager's token;
        the server records each page in the audit log). ``after_id`` resumes after an entry seen before."""
        for item in self._keyset_pages("ledger", {"limit": page_size}, after_id):
            yield LedgerEntry.from_api(item)

    def iter_my_ledger(self, *, after_id: int = 0, page_size: int = PAGE) -> Iterator[MyLedgerEntry]:
        """The token owner's own money events in this project in id order: answers paid, reversals
        with the reviewer's reason, bonuses with the manager's note (a labeler's ``read`` token is
        enough; the server records each page in the audit log)."""
        for item in self._keyset_pages("my-ledger", {"limit": page_size}, after_id):
            yield MyLedgerEntry.from_api(item)

    def _keyset_pages(self, what: str, params: dict[str, Any], after_id: int) -> Iterator[dict[str, Any]]:
        """The items of ``/projects/{id}/<what>``, walked by ``after_id`` as the loop asks for them."""
        resumed = after_id > 0  # then the project's total is more than this loop will see: no bar length
        with bar(self._client.progress, f"{what.capitalize()} of {self.slug}", unit=what) as progress:
            while True:
                page = self._http.json("GET", f"/projects/{self.id}/{what}", params={**params, "after_id": after_id})
                progress.total(None if resumed else page["total"])
                for item in page["items"]:
                    yield item
                    progress.advance()
                if page["next_after_id"] is None:
                    return
                after_id = page["next_after_id"]

    def answers_dataframe(self, *, status: str | None = None) -> pandas.DataFrame:
        """Every answer as a DataFrame, one row per answer, one ``value.<question>`` column per question."""
        pd = require("pandas", "answers_dataframe()")
        records = [{**{k: getattr(a, k) for k in a.__dataclass_fields__ if k != "value"},
                    **{f"value.{q}": v for q, v in a.value.items()}} for a in self.iter_answers(status=status)]
        return pd.DataFrame.from_records(records)

    def export(self, format: str, path: str | Path, **options: str | None) -> Path:
        """Download the project's export in ``format`` to ``path``, streamed; the file appears only
        once it is complete. Formats are the server's: jsonl, aggregated-jsonl, parquet,
        aggregated-parquet, csv, hf-dataset (a zip), dpo, sft, coco, yolo (a zip), spacy, conll;
        ``options`` are the export's other parameters (``question``, ``dpo_form``, ``prompt_field``,
        ``lang``)."""
        params = {"format": format, **{key: value for key, value in options.items() if value is not None}}
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        attempts = 1 + self._http.retry.retries
        for attempt in range(attempts):
            try:
                with (
                    bar(self._client.progress, f"Exporting {self.slug} ({format})", unit="bytes") as progress,
                    self._http.stream("GET", f"/projects/{self.id}/export", params=params) as response,
                    partial.open("wb") as out,
                ):
                    for chunk in response.iter_bytes(UPLOAD_CHUNK):
                        out.write(chunk)
                        progress.advance(len(chunk))
                break
            except httpx.TransportError as exc:
                # Cut off mid-download: a GET can be asked again, from the start.
                if attempt == attempts - 1:
                    partial.unlink(missing_ok=True)
                    raise TransportError(f"export of project {self.id} was cut off {attempts} times: {exc}") from exc
                time.sleep(self._http.retry.delay(attempt, None))
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
        partial.replace(target)
        return target

    def export_dataset(
        self, *, format: str = "parquet", cache_dir: str | Path | None = None, **options: str | None
    ) -> datasets.Dataset:
        """The export as a Hugging Face ``datasets.Dataset``.

        ``parquet`` (the default) has one row per task with its data, suggestions and answers;
        ``aggregated-parquet`` and ``hf-dataset`` one row per task with the aggregated answers;
        ``dpo`` and ``sft`` the training pairs and chats; the JSONL formats work too. A server
        without Parquet exports is asked for JSONL instead."""
        ds = require("datasets", "export_dataset()")
        kind = _DATASET_READERS.get(format)
        if kind is None:
            raise ValueError(f"export_dataset() reads {', '.join(_DATASET_READERS)}; use export() for {format!r}")
        cache = str(cache_dir) if cache_dir is not None else None
        with tempfile.TemporaryDirectory(prefix="labelvault-export-") as folder:
            try:
                path = self.export(format, Path(folder) / f"{self.slug}.{kind}", **options)
            except InvalidInputError as exc:
                if format != "parquet" or not _about_format(exc):
                    raise
                format, kind = "jsonl", "json"
                path = self.export("jsonl", Path(folder) / f"{self.slug}.jsonl")
            if kind == "zip":
                # A save_to_disk directory, zipped; loaded into memory, as the folder goes away.
                unpacked = Path(folder) / "unpacked"
                with zipfile.ZipFile(path) as archive:
                    archive.extractall(unpacked)
                found = sorted(p.parent for p in unpacked.rglob("dataset_info.json"))
                return ds.load_from_disk(str(found[0] if found else unpacked), keep_in_memory=True)
            if path.stat().st_size == 0:
                return ds.Dataset.from_list([])
            if kind == "parquet":
                return ds.Dataset.from_parquet(str(path), cache_dir=cache)
            return ds.Dataset.from_json(str(path), cache_dir=cache)

    # -- quality

    def quality(self) -> dict[str, Any]:
        """The quality report as the API gives it: agreement, labelers, confusion matrices, overlap."""
        return dict(self._http.json("GET", f"/projects/{self.id}/quality/report"))

    def quality_report(self, table: ProjectTable = "labelers") -> pandas.DataFrame:
        """The quality report as a DataFrame: one row per labeler (gold accuracy with its interval,
        agreement with the consensus, speed, earnings) or, with ``table="agreement"``, one row per
        question. The whole report is in ``df.attrs["report"]``."""
        pd = require("pandas", "quality_report()")
        report = self.quality()
        if table == "labelers":
            frame = pd.json_normalize(report.get("labelers") or [], sep="_")
        elif table == "agreement":
            agreement = report.get("agreement") or {}
            frame = pd.json_normalize([{"question": q, **(v or {})} for q, v in agreement.items()], sep="_")
        else:
            raise ValueError("table must be 'labelers' or 'agreement'")
        frame.attrs["report"] = report
        return frame


# -- helpers


def slugify(name: str) -> str:
    """A project slug from a name: lowercase letters, digits and dashes, at most 63 characters."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:63].strip("-")
    if not slug:
        raise ValueError(f"cannot make a slug from {name!r}: pass slug=...")
    return slug


def _rows_of(source: Any, batch_size: int) -> tuple[Iterator[Mapping[str, Any]], int | None, bool]:
    """(rows, how many if known, whether they come from a table, where missing values are NaN)."""
    pandas = loaded("pandas")
    if pandas is not None and isinstance(source, pandas.DataFrame):
        frame = source

        def frame_rows() -> Iterator[Mapping[str, Any]]:
            for start in range(0, len(frame), batch_size):
                yield from frame.iloc[start:start + batch_size].to_dict(orient="records")

        return frame_rows(), len(frame), True
    datasets = loaded("datasets")
    if datasets is not None and isinstance(source, datasets.Dataset):
        dataset = source

        def dataset_rows() -> Iterator[Mapping[str, Any]]:
            for columns in dataset.iter(batch_size=batch_size):
                names = list(columns)
                for values in zip(*(columns[n] for n in names), strict=True):
                    yield dict(zip(names, values, strict=True))

        return dataset_rows(), len(dataset), True
    if isinstance(source, Mapping):
        raise TypeError("pass a list of rows (dicts), not one dict")
    total = len(source) if hasattr(source, "__len__") else None
    return iter(source), total, False


def _batches(rows: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    pandas = loaded("pandas")
    return pandas is not None and (value is pandas.NA or value is pandas.NaT)


def _without_missing(row: Mapping[str, Any]) -> dict[str, Any]:
    # A table has a cell for every column; an empty cell means "no value", not null.
    return {key: value for key, value in row.items() if not _is_missing(value)}


def _has_external_id(row: Mapping[str, Any]) -> bool:
    value = row.get("external_id")
    return value is not None and str(value) != ""


def _default(value: Any) -> Any:
    # Values from pandas, numpy and Arrow that orjson does not know natively.
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, bytes | bytearray):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, Mapping):
        return dict(value)
    from decimal import Decimal

    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} cannot be sent as JSON")


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


def _read_chunks(stream: BinaryIO, progress: Any) -> Iterator[bytes]:
    while chunk := stream.read(UPLOAD_CHUNK):
        progress.advance(len(chunk))
        yield chunk


def _batch_rejected(exc: ImportInvalidError, done: ImportReport) -> ImportInvalidError:
    """The server's rejection of one batch, with row numbers counted from the first row given."""
    details = dict(exc.details) if isinstance(exc.details, dict) else {"errors": []}
    details["errors"] = [renumber(e, done.rows_read) for e in details.get("errors", [])]
    details["imported_before"] = {"batches": done.batches, "rows_read": done.rows_read, "created": done.created}
    first = details["errors"][0]["message"] if details["errors"] else exc.message
    before = (f"; the {done.batches} batch{'es' if done.batches != 1 else ''} before it ({done.rows_read} rows) "
              "were imported" if done.batches else "")
    return ImportInvalidError(f"batch {done.batches + 1} rejected, nothing of it was written: {first}{before}",
                              status_code=exc.status_code, code=exc.code, details=details,
                              request_id=exc.request_id)


def _group_suggestions(rows: Iterator[Mapping[str, Any]], model: str | None) -> list[dict[str, Any]]:
    """API items, one per task, from nested or flat rows (all of a task's suggestions in one item)."""
    items: dict[tuple[str, Any], dict[str, Any]] = {}
    for index, raw in enumerate(rows):
        row = _without_missing(raw)
        if "task_id" in row:
            key: tuple[str, Any] = ("task_id", int(row["task_id"]))
        elif "external_id" in row:
            key = ("external_id", str(row["external_id"]))
        else:
            raise ValueError(f"suggestion row {index + 1}: name the task by external_id or task_id")
        item = items.setdefault(key, {key[0]: key[1], "suggestions": []})
        if "suggestions" in row:
            item["suggestions"].extend(orjson.loads(_dumps(row["suggestions"])))
            continue
        name = row.get("model", model)
        if name is None or "answer" not in row:
            raise ValueError(f"suggestion row {index + 1}: needs model (or model=...) and answer, or suggestions")
        suggestion: dict[str, Any] = {"model": name, "answer": orjson.loads(_dumps(row["answer"]))}
        if row.get("score") is not None:
            suggestion["score"] = float(row["score"])
        item["suggestions"].append(suggestion)
    return list(items.values())


def _about_format(exc: ApiError) -> bool:
    details = exc.details
    return isinstance(details, dict) and details.get("field") == "format"
