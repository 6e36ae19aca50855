"""Import 100k small text tasks from JSONL into a fresh SQLite install, then export them.

    python benchmarks/bench_import_export.py                 # 3 runs, writes docs/benchmarks.md
    python benchmarks/bench_import_export.py --runs 1 --no-write
    python benchmarks/bench_import_export.py --profile       # where the time goes (cProfile)

Each run builds a new install (keys, database, client, project) in a temporary directory with
the default settings (SQLite, WAL, synchronous=FULL) and times, end to end and encryption
included: ``imports.import_file`` of the JSONL file, and ``exports.export`` written to a file.
The machine is shared with whatever else runs on it, so the figures reported are the median
of the runs, with the load average at the start and the CPU time the process got (wall time
much above CPU time means the process waited for the CPU).
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import os
import platform
import pstats
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from labelvault.bootstrap import Services, initialize
from labelvault.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## Import and export"

SCHEMA = {
    "fields": [{"name": "text", "kind": "text"}],
    "questions": [{"name": "sentiment", "type": "label", "labels": ["positive", "negative", "neutral"]}],
}
OPENINGS = ["The blender", "This kettle", "Our new vacuum", "The headphones", "My phone case", "The desk lamp"]
VERDICTS = [
    "is loud but crushes ice in seconds.",
    "stopped working after two weeks; support never answered.",
    "does what it says, nothing more and nothing less.",
    "is the best purchase I made this year, I bought a second one.",
    "arrived scratched and the box was open.",
]


def write_tasks(path: Path, count: int) -> int:
    with path.open("wb") as out:
        for i in range(count):
            text = f"{OPENINGS[i % len(OPENINGS)]} {VERDICTS[(i // 7) % len(VERDICTS)]} (review {i})"
            out.write(orjson.dumps({"external_id": f"review-{i:06d}", "data": {"text": text}}))
            out.write(b"\n")
    return path.stat().st_size


@dataclass
class Run:
    import_wall: float
    import_cpu: float
    export_wall: float
    export_cpu: float
    export_bytes: int


def fresh_install(directory: Path) -> tuple[Services, int, int]:
    settings = Settings(home=directory / "home")
    services = initialize(settings, "operator", "benchmark-password")
    operator = services.accounts.first_operator()
    client_id = services.clients.create(operator, "acme", "Acme AI").id
    project_id = services.projects.create(operator, client_id, slug="reviews", name="Reviews", schema=SCHEMA).id
    return services, client_id, project_id


def one_run(source: Path, tasks: int, profile: bool) -> Run:
    with tempfile.TemporaryDirectory(prefix="lv-bench-") as directory:
        services, client_id, project_id = fresh_install(Path(directory))
        try:
            operator = services.accounts.first_operator()
            profiler = cProfile.Profile() if profile else None
            wall, cpu = time.perf_counter(), time.process_time()
            if profiler:
                profiler.enable()
            report = services.imports.import_file(operator, client_id, project_id, source)
            if profiler:
                profiler.disable()
            import_wall, import_cpu = time.perf_counter() - wall, time.process_time() - cpu
            assert report.created == tasks and report.invalid == 0, report

            target = Path(directory) / "export.jsonl"
            wall, cpu = time.perf_counter(), time.process_time()
            written = 0
            with target.open("wb") as out:
                for chunk in services.exports.export(operator, client_id, project_id).chunks:
                    out.write(chunk)
                    written += chunk.count(b"\n")
            export_wall, export_cpu = time.perf_counter() - wall, time.process_time() - cpu
            assert written == tasks, written
            if profiler:
                print("\nimport profile (cProfile, by own time):")
                pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
            return Run(import_wall, import_cpu, export_wall, export_cpu, target.stat().st_size)
        finally:
            services.close()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def render(tasks: int, file_bytes: int, runs: list[Run], load: tuple[float, float, float]) -> str:
    def rate(values: list[float]) -> str:
        return f"{tasks / statistics.median(values):,.0f} tasks/s"

    def seconds(values: list[float]) -> str:
        return f"{statistics.median(values):.2f} s"

    imports = [r.import_wall for r in runs]
    exports = [r.export_wall for r in runs]
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    import sqlalchemy

    return f"""{SECTION}

`python benchmarks/bench_import_export.py` ({len(runs)} runs, median; each run a fresh install;
tests never assert times).

- Machine: {os.cpu_count()} CPUs (`nproc`), {cpu_model()}; Python {platform.python_version()},
  SQLite {__import__("sqlite3").sqlite_version}, SQLAlchemy {sqlalchemy.__version__}, orjson {orjson.__version__}.
- Date: {now}; load average at the start {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1 / 5 / 15 min).
- Data: {tasks:,} JSONL rows ({file_bytes / 1e6:.1f} MB) of one short review text each, with an external id;
  schema: one text field, one label question. Default settings: SQLite in WAL mode, synchronous=FULL.
- Import: `imports.import_file`: read, check each row against the schema, seal payloads (AES-256-GCM),
  insert in batches of 5,000, one transaction. Export: `exports.export` to a file, decrypting every payload.

| step | wall time | throughput | CPU time of the process | tasks per CPU second |
| --- | --- | --- | --- | --- |
| import {tasks:,} tasks | {seconds(imports)} | {rate(imports)} | {seconds([r.import_cpu for r in runs])} \
| {rate([r.import_cpu for r in runs])} |
| export {tasks:,} tasks ({statistics.median([r.export_bytes for r in runs]) / 1e6:.1f} MB) | {seconds(exports)} \
| {rate(exports)} | {seconds([r.export_cpu for r in runs])} | {rate([r.export_cpu for r in runs])} |

All runs: import {", ".join(f"{tasks / r.import_wall:,.0f}" for r in runs)} tasks/s;
export {", ".join(f"{tasks / r.export_wall:,.0f}" for r in runs)} tasks/s.
"""


def update_docs(section: str) -> None:
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    start = text.find(SECTION)
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(SECTION))
        # Keep the hand-written analysis under "### Where the time goes" (a sub-section) as it is.
        analysis = text.find("\n### ", start)
        if analysis != -1 and (end == -1 or analysis < end):
            end = analysis
        text = text[:start] + section + ("" if end == -1 else text[end:])
    DOCS.write_text(text.rstrip("\n") + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="Do not update docs/benchmarks.md.")
    parser.add_argument("--profile", action="store_true", help="Profile the import of the first run.")
    args = parser.parse_args()

    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="lv-bench-data-") as directory:
        source = Path(directory) / "tasks.jsonl"
        file_bytes = write_tasks(source, args.tasks)
        runs = []
        for index in range(args.runs):
            run = one_run(source, args.tasks, profile=args.profile and index == 0)
            runs.append(run)
            print(
                f"run {index + 1}: import {args.tasks / run.import_wall:,.0f} tasks/s "
                f"({run.import_wall:.2f} s wall, {run.import_cpu:.2f} s CPU); "
                f"export {args.tasks / run.export_wall:,.0f} tasks/s "
                f"({run.export_wall:.2f} s wall, {run.export_cpu:.2f} s CPU)",
                flush=True,
            )
    section = render(args.tasks, file_bytes, runs, load)
    print()
    print(section)
    if not args.no_write and not args.profile:
        update_docs(section)
        print(f"written to {DOCS.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
