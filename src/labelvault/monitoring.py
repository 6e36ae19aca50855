"""Prometheus metrics of this process. Labels hold route templates and ids, never names or content."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

registry = CollectorRegistry(auto_describe=True)

REQUEST_SECONDS = Histogram(
    "labelvault_request_seconds", "HTTP request latency by route template", ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10), registry=registry,
)
LEASE_EXPIRIES = Counter("labelvault_lease_expiries_total", "Leases that expired and gave their slot back",
                         registry=registry)
LOGIN_FAILURES = Counter("labelvault_login_failures_total", "Failed password logins", registry=registry)
ANSWERS = Counter("labelvault_answers_total", "Answers submitted through this process", ["project_id"],
                  registry=registry)
LEASES = Counter("labelvault_leases_total", "Tasks leased through this process", ["project_id"], registry=registry)
