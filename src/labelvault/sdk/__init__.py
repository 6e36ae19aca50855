"""The Python SDK: a typed client of the REST API (``labelvault.Client``), over HTTP only.

See docs/sdk.md for a tour. pandas and datasets are optional (``pip install 'labelvault[sdk]'``).
"""

from labelvault.sdk import errors, schema
from labelvault.sdk.client import Client, Project, slugify
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
    TaskAnswer,
    TaskDetail,
    TaskLease,
    TaskReview,
    TaskSkip,
    TaskSummary,
)

__all__ = [
    "Answer",
    "AnswerReceipt",
    "Client",
    "ClientInfo",
    "ImportReport",
    "LabelingReport",
    "LeasedTask",
    "LedgerEntry",
    "Me",
    "MyLedgerEntry",
    "Progress",
    "Project",
    "Skip",
    "SubmittedAndNext",
    "SuggestionsReport",
    "TaskAnswer",
    "TaskDetail",
    "TaskLease",
    "TaskReview",
    "TaskSkip",
    "TaskSummary",
    "errors",
    "schema",
    "slugify",
]
