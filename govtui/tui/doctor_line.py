"""The dashboard's doctor line (services.doctor run once at TUI start, in the background),
and the way the app runs it so that quitting never waits for it.

The checks hash every installed file (about two seconds) in code that cannot be interrupted
halfway. A Textual thread worker runs in asyncio's default executor, which the app's exit waits
for; so the worker starts the checks in a daemon thread of their own and only waits for it,
giving up as soon as it is cancelled (q): the exit is not held up, and the daemon thread ends
with the process."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from rich.text import Text

from govtui.services.doctor import Report
from govtui.tui.directory_text import ALERT_STYLE
from govtui.tui.plain import line

R = TypeVar("R")
POLL = 0.05  # seconds between looks at whether the worker was cancelled
SHOWN = 160  # characters of the first failure shown; `govtui doctor` prints them all


def run_detached(fn: Callable[[], R], cancelled: Callable[[], bool]) -> R | None:
    """`fn()` in a daemon thread, waited for until it returns (its result; what it raised is
    raised here) or until `cancelled()` (None: the thread is left to finish on its own)."""
    done = threading.Event()
    outcome: list[R] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            outcome.append(fn())
        except BaseException as exc:  # handed to the waiting worker, which reports it
            error.append(exc)
        finally:
            done.set()

    threading.Thread(target=target, name="govtui-doctor", daemon=True).start()
    while not done.wait(POLL):
        if cancelled():
            return None
    if error:
        raise error[0]
    return outcome[0]


def doctor_text(report: Report | None) -> Text:
    """'doctor: every check passed (1.9 s)', or in red how many failed and the first of them
    (a file name in site-packages is data: escaped, never markup)."""
    if report is None:
        return Text("doctor: checking the installation, keyring and database…", style="dim")
    warns = report.count("warn")
    warned = f", {warns} warning{'s' if warns != 1 else ''}" if warns else ""
    if not report.failed:
        return Text(
            f"doctor: every check passed{warned} ({report.seconds:.1f} s; `govtui doctor`)",
            style="dim",
        )
    fails = [f for f in report.findings if f.status == "fail"]
    first = fails[0]
    count = len(fails)
    head = f"doctor: {count} check{'s' if count != 1 else ''} FAILED{warned} · "
    what = line(f"{first.check}: {first.subject}: {first.detail}")
    if len(what) > SHOWN:
        what = what[: SHOWN - 1] + "…"
    return Text.assemble(
        (head, ALERT_STYLE), (what, ALERT_STYLE), (" · run `govtui doctor`", ALERT_STYLE)
    )
