"""Request and response bodies, named for their use (``ProjectCreate``, ``ProjectRead``...)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    offset: int
    limit: int


class KeysetPage(Page[T], Generic[T]):
    """A page of a list walked by id (``after_id``): nothing added meanwhile is skipped or seen twice."""

    next_after_id: int | None = Field(
        description="Pass as after_id for the next page; null when this page is the last."
    )


class TokenRequest(BaseModel):
    username: str
    password: str
    name: str = Field(default="api", max_length=100)
    scopes: list[str] | None = Field(default=None, description="Any of read, label, manage (default: all).")


class TokenIssued(BaseModel):
    id: int
    name: str
    token: str = Field(description="Shown once; only its SHA-256 is stored.")


class TokenRead(BaseModel):
    id: int
    name: str
    display_prefix: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None


class Me(BaseModel):
    id: int
    username: str
    is_operator: bool


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=100)
    password: str | None = Field(default=None, min_length=10)
    display_name: str = ""
    is_operator: bool = False


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current_password: str = Field(min_length=1, max_length=1000)
    new_password: str = Field(min_length=10, max_length=1000)


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    is_active: bool = Field(description="false: the person's password, tokens and sessions stop working at once; "
                            "their work and history stay. true: they work again.")


class UserRead(BaseModel):
    id: int
    username: str
    display_name: str
    is_operator: bool
    is_active: bool
    has_password: bool = Field(description="False for people who log in through single sign-on or use API "
                                           "tokens only.")


class ClientCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    slug: str
    name: str = ""
    currency: str = "USD"


class ClientRead(BaseModel):
    id: int
    slug: str
    name: str
    currency: str
    status: str
    created_at: datetime


class MemberGrant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str
    role: str


class ProjectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    slug: str
    name: str = ""
    project_schema: dict[str, Any] | str = Field(alias="schema", description="Schema document (object or YAML).")
    overlap: int = 1
    lease_seconds: int | None = None


class ProjectUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    instructions: str | None = Field(default=None, description="The guidelines labelers read (Markdown); an "
                                     "empty string removes them. The schema's fields and questions stay.")
    overlap: int | None = None
    lease_seconds: int | None = None
    status: str | None = Field(default=None, description="active, paused or archived")
    review_policy: str | None = Field(default=None, description="none, sample, all or disagreement")
    review_sample_rate: float | None = Field(default=None, description="Share of completed tasks reviewed (sample).")
    pay_on: str | None = Field(default=None, description="Labelers earn on submit or on accept.")
    rate_per_answer: int | None = Field(default=None, description="Minor units (e.g. cents) per answer.")
    rate_per_review: int | None = Field(default=None, description="Minor units per review decision.")
    question_rates: dict[str, int] | None = Field(default=None, description="Extra minor units per question answered.")
    budget_cap: int | None = Field(default=None, description="Minor units; the queue stops before exceeding it.")
    clear_budget_cap: bool = False


class ProjectRead(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    id: int
    client_id: int
    slug: str
    name: str
    project_schema: dict[str, Any] = Field(serialization_alias="schema")
    overlap: int
    lease_seconds: int
    status: str
    created_at: datetime
    review_policy: str
    review_sample_rate: float
    pay_on: str
    rate_per_answer: int
    rate_per_review: int
    question_rates: dict[str, int]
    budget_cap: int | None
    spent: int


class Progress(BaseModel):
    tasks: int
    answers_needed: int
    answers_given: int


class LeasedTaskRead(BaseModel):
    task_id: int
    project_id: int
    data: dict[str, Any]
    suggestions: list[dict[str, Any]]
    lease_started_at: datetime
    lease_expires_at: datetime


class AnswerSubmit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answer: dict[str, Any]
    idempotency_key: str | None = Field(default=None, max_length=100)


class AnswerReceipt(BaseModel):
    answer_id: int
    task_id: int
    created: bool
    submitted_at: datetime
    time_spent_ms: int


class NextTaskError(BaseModel):
    """What ``POST .../tasks/next`` would have answered with instead of a task: its status and
    error body (a refusal's ``details.reason``: no_tasks, budget_reached, ...)."""

    status: int
    code: str
    message: str
    details: Any = None


class AnswerReceiptAndNext(AnswerReceipt):
    """A submit with ``?next=true``: the receipt, then the caller's next task or why there is none
    (exactly one of the two is set)."""

    next_task: LeasedTaskRead | None
    next_error: NextTaskError | None


class SkipCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=500)


class ReviewAnswerRead(BaseModel):
    answer_id: int
    labeler_id: int
    labeler: str
    value: dict[str, Any]
    submitted_at: datetime
    time_spent_ms: int


class ReviewItemRead(BaseModel):
    task_id: int
    project_id: int
    data: dict[str, Any]
    answers: list[ReviewAnswerRead]
    lease_expires_at: datetime


class ReviewDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: str = Field(description="accept, reject or correct")
    answer_ids: list[int] | None = Field(default=None, description="Answers to reject (default: all).")
    reason: str = Field(default="", max_length=2000, description="Required for reject; the labeler reads it.")
    answer: dict[str, Any] | None = Field(default=None, description="The corrected answer (correct).")


class ReviewRecorded(BaseModel):
    review_id: int


class RejectionRead(BaseModel):
    answer_id: int
    task_id: int
    value: dict[str, Any]
    reason: str
    reviewed_at: datetime | None


class BonusCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str
    amount: int = Field(gt=0, description="Minor units (e.g. cents).")
    note: str = Field(default="", max_length=200)


class SpendRead(BaseModel):
    project_id: int
    project: str
    day: date | None
    amount: int
    currency: str


class EarningsRead(BaseModel):
    user_id: int
    username: str
    amount: int
    currency: str
    answers: int
    reviews: int


class ProjectCostsRead(BaseModel):
    project_id: int
    currency: str
    spent: int
    budget_cap: int | None
    accepted_answers: int
    cost_per_accepted_answer: int | None


class ThroughputRead(BaseModel):
    user_id: int
    username: str
    answers: int
    working_ms: int
    answers_per_hour: float
    median_ms: int | None
