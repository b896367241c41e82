#!/usr/bin/env python3
"""Refuses a lock that installs anything but wheels on a Python we support (scripts/lock runs it
on the lock files it has just compiled, before they replace the committed ones).

    scripts/lock_wheels.py [--python 3.11 ...] [--arch x86_64 ...] [--glibc 2.36] LOCK... [-- PIP_ARGS]

For each lock and each target Python, pip itself (`pip download --only-binary :all:
--require-hashes --no-deps` with `--python-version`, `--implementation cp` and the manylinux
platforms a Debian of that glibc runs) must find, for every pin, a wheel whose SHA-256 is one of
the lock's: exactly what `pip install --require-hashes --only-binary :all:` (scripts/lib/
common.sh) will need on that Python. The compatibility rules are pip's, not ours. A pin with
no such wheel is named, with the Pythons it lacks, and the exit status is 1; every pin is
tried, not only the first that fails. Arguments after `--` go to pip (scripts/lock passes
`--index-url https://pypi.org/simple`; the test passes `--no-index --find-links DIR`).
Standard library only; pip is the one running this script's Python has."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from govtui import lockfile  # noqa: E402
from govtui.errors import InputError  # noqa: E402
from govtui.text import one_line  # noqa: E402

PYTHONS = ("3.11", "3.12", "3.13")
# Debian bookworm's glibc: the oldest Debian the README supports.
GLIBC = "2.36"
_MISSING = re.compile(r"No matching distribution found for ([A-Za-z0-9._-]+)==")
_HASH_MISMATCH = re.compile(r"^\s+([A-Za-z0-9._-]+)==\S+ from ", re.MULTILINE)


def platforms(arch: str, glibc: str) -> list[str]:
    """Every manylinux tag a glibc `glibc` machine of `arch` runs (PEP 600 and its legacy
    aliases), newest first; pip expands none of the PEP 600 ones by itself."""
    found = re.fullmatch(r"2\.([0-9]{1,3})", glibc)
    if found is None or int(found[1]) < 5:
        raise InputError(f"--glibc {one_line(glibc, 40)}: expected 2.N with N >= 5")
    minor = int(found[1])
    tags = [f"manylinux_2_{n}_{arch}" for n in range(minor, 4, -1)]
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    tags += [f"{name}_{arch}" for n, name in legacy.items() if n <= minor]
    return tags


def _lock_text(pins: list[lockfile.Pin]) -> str:
    lines = []
    for pin in pins:
        hashes = " ".join(f"--hash=sha256:{h}" for h in pin.hashes)
        lines.append(f"{pin.name}=={pin.version} {hashes}")
    return "\n".join(lines) + "\n"


def missing_wheels(
    pins: list[lockfile.Pin], python: str, plats: list[str], pip_args: list[str], work: Path
) -> dict[str, str]:
    """{pin name: why} for the pins pip finds no locked wheel of for `python`."""
    todo = list(pins)
    missing: dict[str, str] = {}
    while todo:
        req = work / "pins.txt"
        req.write_text(_lock_text(todo), encoding="utf-8")
        done = subprocess.run(
            [
                sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                "--no-input", "--no-deps", "--only-binary", ":all:", "--require-hashes",
                "--python-version", python, "--implementation", "cp",
                *(f"--platform={p}" for p in plats),
                "--dest", str(work / "wheels"), "-r", str(req), *pip_args,
            ],
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip
        if done.returncode == 0:
            break
        names = {p.name for p in todo}
        found = _MISSING.search(done.stderr)
        if found and lockfile.normalise(found[1]) in names:
            bad = {lockfile.normalise(found[1]): "no wheel"}
        else:
            # A wheel for this Python exists but is not one the lock's hashes accept.
            bad = {
                lockfile.normalise(m): "no wheel among the lock's hashes"
                for m in _HASH_MISMATCH.findall(done.stderr)
                if lockfile.normalise(m) in names
            }
        if not bad:
            last = [line for line in done.stderr.splitlines() if line.strip()] or ["no output"]
            raise InputError(f"pip download failed for Python {python}: {one_line(last[-1])}")
        missing.update(bad)
        todo = [p for p in todo if p.name not in bad]
    return missing


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    pip_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, pip_args = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(
        prog="scripts/lock_wheels.py",
        description="Refuse a lock with a pin that has no wheel for a supported Python.",
    )
    parser.add_argument("locks", nargs="+", type=Path, metavar="LOCK")
    parser.add_argument("--python", action="append", help=f"default: {', '.join(PYTHONS)}")
    parser.add_argument("--arch", action="append", help="default: x86_64")
    parser.add_argument("--glibc", default=GLIBC, help=f"default: {GLIBC} (Debian bookworm)")
    args = parser.parse_args(argv)
    pythons = args.python or list(PYTHONS)
    arches = args.arch or ["x86_64"]
    refused: list[str] = []
    try:
        plats = [tag for arch in arches for tag in platforms(arch, args.glibc)]
        for lock in args.locks:
            pins = lockfile.read(lock)
            lacking: dict[str, dict[str, str]] = {}
            with tempfile.TemporaryDirectory(prefix="govtui-wheels-") as work:
                for python in pythons:
                    for name, why in missing_wheels(
                        pins, python, plats, pip_args, Path(work)
                    ).items():
                        lacking.setdefault(name, {})[python] = why
            for pin in pins:
                if pin.name in lacking:
                    says = ", ".join(f"Python {py}: {why}" for py, why in lacking[pin.name].items())
                    refused.append(f"{lock.name}: {pin.name} {pin.version}: {says}")
            if not lacking:
                print(
                    f"ok: {lock.name}: all {len(pins)} pins have a locked wheel for Python"
                    f" {', '.join(pythons)} ({', '.join(arches)}, glibc {args.glibc})"
                )
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in refused:
        print(
            f"refused: {line} (only wheels are installed: scripts/lib/common.sh)", file=sys.stderr
        )
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main())
