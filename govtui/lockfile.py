"""The hash-pinned lock files (requirements.lock, requirements-dev.lock) read as data.

pip-compile writes one pin per package, `name==version`, optionally `; marker`, followed by
its `--hash=sha256:...` options (one per accepted distribution file) and a `# via` comment
naming who needs it: another pin, `govtui (pyproject.toml)`, or `-r build pins (scripts/lock)`
for the build-only setuptools. The SBOM (scripts/sbom) and the wheel check of scripts/lock read
the lock through `parse`; anything this module does not understand is refused, naming the line,
rather than skipped. Standard library only, and nothing from govtui but the error type."""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from govtui.errors import InputError

# The `# via` entry of a direct dependency and the prefix of a build pin, as scripts/lock
# writes them.
PROJECT_VIA = "govtui (pyproject.toml)"
BUILD_VIA_PREFIX = "-r "
# A lock larger than this is refused unread (requirements-dev.lock is ~60 KB).
MAX_LOCK = 16 << 20

_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_PIN = re.compile(
    rf"^(?P<name>{_NAME})==(?P<version>[A-Za-z0-9.+!_-]+)"
    r"(?:\s*;\s*(?P<marker>[^\\#]+?))?"
    r"(?P<opts>(?:\s+--hash=\S+)*)\s*$"
)
_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")


def normalise(name: str) -> str:
    """A distribution name in PEP 503's normal form (lower case, runs of -_. as one -)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Pin:
    """One locked package."""

    name: str  # PEP 503 normal form
    version: str
    hashes: tuple[str, ...]  # SHA-256 hex digests, sorted
    marker: str | None
    via: tuple[str, ...]  # who needs it, as the lock's comment says
    line: int  # where its requirement line starts (1-based)

    @property
    def build_only(self) -> bool:
        """A pin only the build of govtui needs (setuptools), not govtui at run time."""
        return bool(self.via) and all(v.startswith(BUILD_VIA_PREFIX) for v in self.via)


def read(path: Path) -> list[Pin]:
    """The pins of the lock file at `path`, in file order."""
    try:
        # Not path.read_text: a FIFO would make it wait forever, /dev/zero read forever.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise InputError(f"cannot read the lock file {path}: not a regular file")
            data = handle.read(MAX_LOCK + 1)
        if len(data) > MAX_LOCK:
            raise InputError(f"cannot read the lock file {path}: larger than {MAX_LOCK} bytes")
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise InputError(f"cannot read the lock file {path}: {reason}") from None
    return parse(text, str(path))


def parse(text: str, source: str = "lock file") -> list[Pin]:
    """The pins of a lock file's text; InputError naming the line for anything else."""
    pins: list[Pin] = []
    seen: set[str] = set()
    lines = text.splitlines()
    i = 0
    current: dict[str, object] | None = None
    in_via = False

    def finish() -> None:
        if current is not None:
            pins.append(Pin(**current))  # type: ignore[arg-type]

    while i < len(lines):
        start = i
        raw = lines[i]
        # A requirement with its options runs over backslash-continued lines.
        logical = raw
        while logical.endswith("\\"):
            i += 1
            if i >= len(lines):
                raise InputError(f"{source} line {start + 1}: continued past the end")
            logical = logical[:-1] + " " + lines[i].strip()
        i += 1
        stripped = logical.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            comment = stripped[1:].strip()
            if current is None:
                continue  # the header pip-compile writes
            via = current["via"]
            assert isinstance(via, tuple)
            if comment == "via":
                in_via = True  # the names follow, one `#   name` line each
            elif comment.startswith("via "):
                current["via"] = (*via, comment[4:].strip())
                in_via = False
            elif in_via and comment:
                current["via"] = (*via, comment)
            else:
                in_via = False
            continue
        if raw[:1].isspace():
            raise InputError(f"{source} line {start + 1}: an indented line that is not a comment")
        match = _PIN.match(stripped)
        if match is None:
            raise InputError(
                f"{source} line {start + 1}: not a `name==version --hash=sha256:...` pin"
            )
        opts = match["opts"].split()
        hashes = []
        for opt in opts:
            found = _HASH.fullmatch(opt)
            if found is None:
                raise InputError(f"{source} line {start + 1}: only sha256 hashes are accepted")
            hashes.append(found[1])
        if not hashes:
            raise InputError(f"{source} line {start + 1}: {match['name']} has no hash")
        name = normalise(match["name"])
        if name in seen:
            raise InputError(f"{source} line {start + 1}: {name} is pinned twice")
        seen.add(name)
        finish()
        in_via = False
        marker = match["marker"]
        current = {
            "name": name,
            "version": match["version"],
            "hashes": tuple(sorted(set(hashes))),
            "marker": marker.strip() if marker else None,
            "via": (),
            "line": start + 1,
        }
    finish()
    if not pins:
        raise InputError(f"{source}: no pins")
    return pins


def runtime_closure(pins: list[Pin]) -> list[Pin]:
    """The pins govtui needs at run time: those reachable from `govtui (pyproject.toml)`
    through the lock's `# via` comments (a build pin such as setuptools is not)."""
    by_name = {p.name: p for p in pins}
    needs: dict[str, set[str]] = {}
    for pin in pins:
        for via in pin.via:
            parent = normalise(via) if re.fullmatch(_NAME, via) else via
            needs.setdefault(parent, set()).add(pin.name)
    reached: set[str] = set()
    todo = [PROJECT_VIA]
    while todo:
        for child in needs.get(todo.pop(), ()):
            if child not in reached:
                reached.add(child)
                todo.append(child)
    return [by_name[n] for n in sorted(reached) if n in by_name]
