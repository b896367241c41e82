"""What one `govtui doctor` check found: the shape every check returns, so the CLI, the JSON
report and the dashboard's red line read one type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# ok: checked and right; warn: worth a look, not a failure (an extra package); fail: exit 1.
Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Finding:
    """One line of the report: which check, on what, and (unless ok) what is wrong."""

    check: str  # packages, files, strays, startup, path, keyring, database, directory
    status: Status
    subject: str  # what was looked at: a distribution, a file, a target, the database
    detail: str  # one line a person can act on; for ok, what was verified ("35 packages")


def failed(findings: list[Finding]) -> bool:
    """Whether the report should exit 1."""
    return any(f.status == "fail" for f in findings)
