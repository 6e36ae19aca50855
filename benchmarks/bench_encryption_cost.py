"""What encryption costs: import, export and the queue with client data sealed, against the same code
with the cipher's AES-256-GCM replaced by a stand-in that only copies (issue 4, point 2).

    python benchmarks/bench_encryption_cost.py                           # SQLite, 3 pairs of runs
    python benchmarks/bench_encryption_cost.py --database postgresql     # the queue on PostgreSQL
    python benchmarks/bench_encryption_cost.py --pairs 5 --answers 3000

Every run is a process of its own, with the real cipher or the stand-in installed before anything is
built; the two kinds of run alternate (AES first in one pair, the stand-in first in the next), so
that the machine's drift falls on both. A run measures the CPU time of its own process (all threads):

- import: ``imports.import_file`` of a JSONL file into a fresh install (SQLite only: the import and
  export targets are SQLite's), per task;
- export: ``exports.export`` of those tasks, per task;
- queue: next and submit through the whole application in process (``queue_app.py``: the ASGI
  stack, no sockets), 20 labelers on one event loop, per answer. On PostgreSQL the database
  server's own CPU is not in this figure; encryption changes nothing there but the blobs' size.

The stand-in keeps everything of ``DataCipher`` but the AEAD call itself: the nonce is still drawn,
the AAD still built, the blob still nonce || data || 16-byte tag (of zeros), so the rows keep their
size and layout. What it saves is what AES-GCM costs. Tests never run this file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

TAG = bytes(16)
# Time spent in this process inside AES-GCM calls (AES runs), and inside DataCipher's methods as a
# whole (the nonce, the AAD and the blob around the AEAD call as well).
aead_seconds = 0.0
cipher_seconds = 0.0


class CopyingAead:
    """AESGCM's interface and blob size, without the cipher: what sealing costs besides AES-GCM."""

    def __init__(self, _key: bytes) -> None:
        pass

    def encrypt(self, _nonce: bytes, data: bytes, _aad: bytes | None) -> bytes:
        return data + TAG

    def decrypt(self, _nonce: bytes, data: bytes, _aad: bytes | None) -> bytes:
        return data[: -len(TAG)]


class TimedAead:
    """AESGCM, with the time of each call added up: the share of a run spent in the cipher itself."""

    def __init__(self, key: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(key)

    def encrypt(self, nonce: bytes, data: bytes, aad: bytes | None) -> bytes:
        global aead_seconds
        started = time.perf_counter()
        sealed = self._aead.encrypt(nonce, data, aad)
        aead_seconds += time.perf_counter() - started
        return sealed

    def decrypt(self, nonce: bytes, data: bytes, aad: bytes | None) -> bytes:
        global aead_seconds
        started = time.perf_counter()
        opened = self._aead.decrypt(nonce, data, aad)
        aead_seconds += time.perf_counter() - started
        return opened


def time_data_cipher() -> None:
    """Add up the time spent in DataCipher's sealing and opening methods (they do not call each other)."""
    from labelvault.crypto.cipher import DataCipher

    for name in ("seal", "open", "seal_many", "open_many"):
        method = getattr(DataCipher, name)

        def timed(self: Any, *args: Any, _method: Any = method) -> Any:
            global cipher_seconds
            started = time.perf_counter()
            try:
                return _method(self, *args)
            finally:
                cipher_seconds += time.perf_counter() - started

        setattr(DataCipher, name, timed)


def shares_start() -> tuple[float, float, float]:
    return time.process_time(), aead_seconds, cipher_seconds


def shares_since(start: tuple[float, float, float], step: str, units: int, scale: float) -> dict[str, float]:
    """The step's CPU per unit (times ``scale``) since ``start``, and the shares of it inside
    AES-GCM calls and inside DataCipher."""
    cpu, aead, sealing = start
    spent = time.process_time() - cpu
    return {f"{step}_per_unit": scale * spent / units, f"{step}_aead_share": (aead_seconds - aead) / spent,
            f"{step}_cipher_share": (cipher_seconds - sealing) / spent}


def measure_import_export(tasks: int) -> dict[str, float]:
    """CPU per task of ``imports.import_file`` and ``exports.export`` (as bench_import_export.py runs
    them), and the share of each spent inside AES-GCM."""
    import bench_import_export

    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="lv-enc-io-") as directory:
        source = Path(directory) / "tasks.jsonl"
        bench_import_export.write_tasks(source, tasks)
        services, client_id, project_id = bench_import_export.fresh_install(Path(directory))
        try:
            operator = services.accounts.first_operator()
            start = shares_start()
            report = services.imports.import_file(operator, client_id, project_id, source)
            assert report.created == tasks, report
            figures.update(shares_since(start, "import", tasks, 1e6))
            start = shares_start()
            lines = sum(chunk.count(b"\n") for chunk in services.exports.export(operator, client_id, project_id).chunks)
            assert lines == tasks, lines
            figures.update(shares_since(start, "export", tasks, 1e6))
        finally:
            services.close()
    return figures


def measure_queue(database: str, postgres_url: str, tasks: int, labelers: int, answers: int,
                  rounds: int) -> dict[str, Any]:
    import bench_queue
    import queue_app

    from labelvault.bootstrap import build_services
    from labelvault.server import build_app
    from labelvault.settings import Settings

    scratch = bench_queue.PostgresScratch(postgres_url) if database == "postgresql" else None
    try:
        with tempfile.TemporaryDirectory(prefix="lv-enc-queue-") as directory:
            install = bench_queue.build_install(Path(directory), scratch.app_url if scratch else None,
                                                scratch.owner_url if scratch else None,
                                                tasks=tasks, labelers=labelers, overlap=3)
            services = build_services(Settings(home=install.home, database_url=install.database_url))
            try:
                exchange = queue_app.Exchange(build_app(services))

                async def run() -> tuple[list[float], dict[str, float]]:
                    await queue_app.measure(exchange, install.project_id, install.tokens, 200)  # warm caches
                    start = shares_start()
                    per_answer = [await queue_app.measure(exchange, install.project_id, install.tokens, answers)
                                  for _ in range(rounds)]
                    return per_answer, shares_since(start, "queue", answers * rounds, 1e3)

                per_answer, shares = asyncio.run(run())
            finally:
                services.close()
    finally:
        if scratch is not None:
            scratch.close()
    # The median round's CPU per answer, rather than the mean of all that shares_since gives.
    return {**shares, "queue_per_unit": 1000 * statistics.median(per_answer),
            "queue_rounds": [round(1000 * cpu, 3) for cpu in per_answer]}


def child(args: argparse.Namespace) -> None:
    from labelvault.crypto import cipher

    # DataCipher looks the class up when it is built: only client data goes through it (key wrapping
    # keeps the real AESGCM).
    cipher.AESGCM = TimedAead if args.cipher == "aes" else CopyingAead  # type: ignore[misc]
    time_data_cipher()
    figures: dict[str, Any] = {"cipher": args.cipher}
    if args.database == "sqlite":
        figures.update(measure_import_export(args.io_tasks))
    figures.update(measure_queue(args.database, args.postgres_url, args.tasks, args.labelers, args.answers,
                                 args.rounds))
    print("RESULT " + json.dumps(figures), flush=True)


def run_child(args: argparse.Namespace, cipher_name: str) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", "--cipher", cipher_name, "--database", args.database,
               "--postgres-url", args.postgres_url, "--tasks", str(args.tasks), "--io-tasks", str(args.io_tasks),
               "--labelers", str(args.labelers), "--answers", str(args.answers), "--rounds", str(args.rounds)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"the {cipher_name} run failed:\n{completed.stdout[-2000:]}\n{completed.stderr[-4000:]}")
    line = next(line for line in completed.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=10_000, help="Tasks of the queue's project.")
    parser.add_argument("--io-tasks", type=int, default=50_000, help="Tasks imported and exported (SQLite).")
    parser.add_argument("--labelers", type=int, default=20)
    parser.add_argument("--answers", type=int, default=1_500, help="Answers per measured round of the queue.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cipher", choices=["aes", "copy"], default="aes", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    runs: dict[str, list[dict[str, Any]]] = {"aes": [], "copy": []}
    for pair in range(args.pairs):
        order = ("aes", "copy") if pair % 2 == 0 else ("copy", "aes")
        for cipher_name in order:
            result = run_child(args, cipher_name)
            runs[cipher_name].append(result)
            print(f"pair {pair + 1} {cipher_name}: {json.dumps(result)}", flush=True)

    metrics = [("import", "import, CPU µs per task"), ("export", "export, CPU µs per task"),
               ("queue", "queue next + submit, CPU ms per answer")]
    print(f"\n{args.database}, {args.pairs} pairs, started {started}")
    print("| step | AES-256-GCM: median (runs) | copying stand-in: median (runs) | difference "
          "| AES runs: inside DataCipher | AES runs: inside AES-GCM | stand-in runs: inside DataCipher |")
    print("| --- | --- | --- | --- | --- | --- | --- |")

    def figures(values: list[float], form: str) -> str:
        return f"{statistics.median(values):{form}} ({', '.join(f'{v:{form}}' for v in values)})"

    for step, label in metrics:
        if f"{step}_per_unit" not in runs["aes"][0]:
            continue
        aes = [r[f"{step}_per_unit"] for r in runs["aes"]]
        copy = [r[f"{step}_per_unit"] for r in runs["copy"]]
        difference = 1 - statistics.median(copy) / statistics.median(aes)
        print(f"| {label} | {figures(aes, '.3f')} | {figures(copy, '.3f')} | {difference:+.1%} "
              f"| {figures([r[f'{step}_cipher_share'] for r in runs['aes']], '.1%')} "
              f"| {figures([r[f'{step}_aead_share'] for r in runs['aes']], '.1%')} "
              f"| {figures([r[f'{step}_cipher_share'] for r in runs['copy']], '.1%')} |")

if __name__ == "__main__":
    main()
