#!/usr/bin/env python3
"""The body of scripts/bench_install (run that: it sets up the environment).

Times `install_integrity.check_install()` as `govtui doctor` and the TUI's start-up worker run
it: each run in a fresh interpreter of the environment checked (so nothing is cached in the
process; the operating system's file cache is warm after the first run, as it is on a machine
in use). Two environments:

- runtime: a copy of the runtime environment (tests/install_support.py: the packages of
  requirements.lock, pip and govtui; what a user's install holds);
- .venv: the development environment as it is (the runtime packages plus pytest, ruff, mypy,
  jsonschema and theirs: more and bigger files, and warnings for the extras).

Target: about 2 s for the runtime environment. Prints, per environment, the distributions,
files hashed and MiB read, and the median and worst of --runs runs of the check itself and of
the whole process (interpreter start and imports included). Exits 1 when the runtime copy
does not pass (something is broken), else 0. Not a test."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROBE = """
import json, time
t0 = time.perf_counter()
from govtui.services import install_integrity as m
t1 = time.perf_counter()
findings = m.check_install()
t2 = time.perf_counter()
size = 0
count = 0
for inst in m._installed(m.site_dirs()):
    for row in m._record(inst) or []:
        if row.digest:
            size += row.size or 0
            count += 1
print(json.dumps({"import": t1 - t0, "check": t2 - t1, "files": count, "bytes": size,
                  "dists": len(m._installed(m.site_dirs())),
                  "findings": [f.__dict__ for f in findings]}))
"""


def _evict(venv: Path) -> None:
    """Drops this copy's files (ours alone, nothing else of the machine) from the page cache,
    so the next run reads them from the disk: the check right after a boot."""
    for path in venv.rglob("*"):
        if path.is_file() and not path.is_symlink():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def _measure(
    python: Path, runs: int, cwd: Path, evict: Path | None = None
) -> tuple[dict[str, Any], list[float], list[float]]:
    checks: list[float] = []
    wholes: list[float] = []
    last: dict[str, Any] = {}
    for _ in range(runs):
        if evict is not None:
            _evict(evict)
        start = time.perf_counter()
        out = subprocess.run(
            [str(python), "-I", "-c", PROBE], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout
        wholes.append(time.perf_counter() - start)
        last = json.loads(out)
        checks.append(float(last["check"]))
    return last, checks, wholes


def _report(label: str, last: dict[str, Any], checks: list[float], wholes: list[float]) -> None:
    bad = [f for f in last["findings"] if f["status"] != "ok"]
    print(
        f"{label}: {last['dists']} distributions, {last['files']} files hashed, "
        f"{last['bytes'] / 2**20:.0f} MiB; check median {statistics.median(checks):.2f} s "
        f"(worst {max(checks):.2f} s), whole process median {statistics.median(wholes):.2f} s "
        f"(worst {max(wholes):.2f} s); {len(bad)} findings not ok"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    from tests.install_support import runtime_copy

    with tempfile.TemporaryDirectory(prefix="govtui-bench-install-") as tmp:
        started = time.perf_counter()
        venv = runtime_copy(Path(tmp) / "venv")
        print(f"runtime copy made in {time.perf_counter() - started:.1f} s")
        last, checks, wholes = _measure(venv / "bin" / "python", args.runs, Path(tmp))
        _report("runtime", last, checks, wholes)
        runtime_ok = all(f["status"] == "ok" for f in last["findings"])
        last, checks, wholes = _measure(venv / "bin" / "python", args.runs, Path(tmp), venv)
        _report(
            "runtime, its files evicted from the page cache before each run", last, checks, wholes
        )
        last, checks, wholes = _measure(ROOT / ".venv" / "bin" / "python", args.runs, Path(tmp))
        _report(".venv", last, checks, wholes)
    return 0 if runtime_ok else 1


if __name__ == "__main__":
    sys.exit(main())
