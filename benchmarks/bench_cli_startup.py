"""How long a `labelvault` command takes from start to exit, most of which is Python importing.

    python benchmarks/bench_cli_startup.py [--runs 7] [--base OTHER_CHECKOUT/src] [--no-bytecode]

Each command runs as an operator runs it: a new process (`python -m labelvault.cli.main ...`)
against one install made for the run (SQLite, one client). The package's bytecode is compiled
first (`compileall`), as pip does on install: where PYTHONDONTWRITEBYTECODE is set and nothing
compiled it, every process compiles the modules from source instead (``--no-bytecode`` measures
that: it removes the package's ``__pycache__`` folders and sets the variable). With ``--base`` the same
commands run from another checkout's source folder too, alternating with this one's, so both see
the machine at the same speed (these virtual machines drift by 10-20% within minutes). Prints the
best and the median of the wall-clock seconds per command.
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src"
COMMANDS: list[list[str]] = [
    ["--help"],
    ["client", "list"],
    ["client", "create", "{unique}"],
    ["report", "spend", "acme"],
    ["audit", "verify"],
]


def run(source: Path, home: Path, args: list[str], *, bytecode: bool = True) -> float:
    env = {**os.environ, "PYTHONPATH": str(source), "LABELVAULT_HOME": str(home)}
    if not bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    env = {k: v for k, v in env.items() if k != "LABELVAULT_DATABASE_URL"}
    started = time.perf_counter()
    process = subprocess.run([sys.executable, "-m", "labelvault.cli.main", *args], env=env,
                             capture_output=True, text=True, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"labelvault {' '.join(args)} failed ({source}):\n{process.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per command and source")
    parser.add_argument("--base", type=Path, help="another checkout's src folder, to compare with")
    parser.add_argument("--no-bytecode", action="store_true", help="every process compiles the package")
    options = parser.parse_args()
    sources = {"this": SOURCE}
    if options.base is not None:
        sources["base"] = options.base.resolve()
    for source in sources.values():
        if options.no_bytecode:
            for cache in (source / "labelvault").rglob("__pycache__"):
                shutil.rmtree(cache)
        else:
            compileall.compile_dir(source / "labelvault", quiet=1)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        password = Path(tmp) / "password"
        password.write_text("operator-password-1\n")
        run(SOURCE, home, ["init", "--password-file", str(password)])
        run(SOURCE, home, ["client", "create", "acme"])
        times: dict[tuple[str, str], list[float]] = {}
        made = 0
        for _ in range(options.runs):
            for command in COMMANDS:
                for name, source in sources.items():
                    made += 1
                    args = [a.replace("{unique}", f"c{made}") for a in command]
                    seconds = run(source, home, args, bytecode=not options.no_bytecode)
                    times.setdefault((" ".join(command), name), []).append(seconds)
    print(f"{'command':28s} {'source':6s} {'best s':>7s} {'median s':>9s}")
    for (command, name), seconds in times.items():
        print(f"{command:28s} {name:6s} {min(seconds):7.2f} {statistics.median(seconds):9.2f}")


if __name__ == "__main__":
    main()
