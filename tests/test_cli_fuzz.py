"""A fuzz test over the whole command line (issue 11): every argument of every command, from
the argparse tree itself, gets generated bad values, and each run must end in one line on
stderr, no traceback, exit 2 (or 0 where the value is one a person may legitimately give), and
the database exactly as it was whenever the command refused.

Values come in two classes:
- `refuse`: a value no command may take (control characters, ESC sequences, bidi controls,
  huge strings, integers out of their argparse bounds or not integers, words outside the
  choices, missing files, a folder where a file is wanted): exit 2, nothing written.
- `odd`: printable values that are strange but may be valid (Rich markup, LDAP and SQL
  injection strings, odd dates, long text): exit 0 or 2; if 2, nothing written.
Exit 1 or an exception is always a failure.

Seeded and bounded (GOVTUI_FUZZ_SEED, default 11); the count is printed in the summary. The
`--many` mode is GOVTUI_FUZZ_MANY=N: N cases drawn at random instead of the fixed sweep.

Why no `hypothesis`: the cases are a sweep over a finite tree with hand-picked hostile values;
shrinking buys little when each failing case is already one argv, and it would add a package
(and its hashes) to the dev lock for one test. (Also said in pyproject.toml.)"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from govtui import clock, db
from govtui.cli import main as cli_main_function
from govtui.cli.main import build_parser
from govtui.services import operators, reviews
from govtui.text import hostile_char

from .conftest import snapshot
from .factories import ADMIN, World, bound, small_vendor
from .memory_keyring import MemoryKeyring

SEED = int(os.environ.get("GOVTUI_FUZZ_SEED", "11"))
MANY = int(os.environ.get("GOVTUI_FUZZ_MANY", "0"))
PER_ARGUMENT = 3  # values per argument in the bounded sweep (one refuse, one odd, one more)

# Options whose value is a TOTP code: a wrong one is counted and audited by design (lock-out),
# so the database may change on a refusal; only the exit code and stderr are checked for them.
CODE_OPTIONS = frozenset({"totp", "second_totp", "confirm", "current_code", "admin_code"})
# Path-valued arguments (dest): a missing file or a folder must be refused.
PATH_ARGUMENTS = frozenset({"file", "out", "ca_file"})
# Commands never run: the TUI (no command) is not a command line, and `sync --watch` loops
# forever (flags are never fuzzed, so it is only named here as the reason none are).
ACTING_AS = {
    ("grant", "approve"): "ann",
    ("client", "resume"): "ann",
    ("review", "decide"): "rita",
    ("review", "items"): "rita",
}
# A valid value per (command, dest), so that only the fuzzed argument is wrong; anything not
# listed gets a generic value (which may itself be refused: then the case still must be 2).
BASELINE: dict[tuple[str, ...], dict[str, str]] = {
    ("client", "add"): {"name": "newco"},
    ("client", "pause"): {"name": "other", "reason": "audit finding"},
    ("client", "resume"): {"name": "acme"},
    ("client", "status"): {"name": "acme"},
    ("project", "add"): {"path": "acme/newproj"},
    ("scope", "add"): {"path": "acme/rlhf/newscope", "sensitivity": "internal"},
    ("scope", "map"): {"path": "acme/rlhf/pairs", "access": "read", "group": "cn=g,dc=x"},
    ("contractor", "add"): {
        "external_id": "E77",
        "name": "Cy",
        "email": "cy@x.example",
        "uid": "cy",
        "contract_end": "2027-06-30",
    },
    ("contractor", "show"): {"external_id": "E1"},
    ("contractor", "offboard"): {"external_id": "E2", "reason": "left"},
    ("grant", "request"): {
        "contractor": "E1",
        "scope": "acme/rlhf/notes",
        "access": "read",
        "days": "5",
        "reason": "batch",
    },
    ("grant", "approve"): {"ids": "1"},
    ("grant", "deny"): {"ids": "1", "reason": "no"},
    ("grant", "revoke"): {"id": "1", "reason": "done"},
    ("grant", "extend"): {"id": "1", "days": "3", "reason": "more"},
    ("grant", "show"): {"id": "1"},
    ("directory", "add"): {
        "name": "corp",
        # Loopback port 9 (discard) refuses at once: the check fails fast, nothing is stored.
        "url": "ldap://127.0.0.1:9",
        "bind_dn": "cn=admin,dc=x",
        "users_base": "ou=people,dc=x",
        "groups_base": "ou=groups,dc=x",
    },
    ("operator", "add"): {"name": "newop", "role": "requester"},
    ("operator", "enroll"): {"name": "req"},
    # The template's campaign q1 (grant 2, reviewed by rita); a start makes another.
    ("review", "start"): {"name": "q2", "client": "acme", "reviewers": "rita", "due_in": "7"},
    ("review", "decide"): {"campaign": "q1", "words": "revoke", "reason": "left"},
    ("review", "close"): {"campaign": "q1"},
    ("review", "reassign"): {
        "campaign": "q1",
        "from_reviewer": "rita",
        "to_reviewer": "ann",
        "reason": "on leave",
    },
    ("review", "show"): {"campaign": "q1"},
    ("review", "items"): {"campaign": "q1"},
    ("review", "schedule", "add"): {
        "name": "monthly",
        "client": "acme",
        "reviewers": "rita",
        "if_no_answer": "keep",
        "due_in": "7",
    },
    ("review", "schedule", "remove"): {"name": "monthly"},
}

CONTROLS = [
    "\x1b[1A\x1b[2K",
    "\x1b]0;PWNED\x07",
    "\x1b[32mok\x1b[0m",
    "\x9b2J",
    "\u202e",
    "\u2066x\u2069",
    "\u200f",
    "\u061c",
    "\x00",
    "\x7f",
    "\n",
    "\r",
    "\t",
    "\u2028",
    "\x85",
]
ODD = [
    "[/b]",
    "Bob [/b] Smith",
    "[link=https://evil.example]x[/link]",
    "[bold red]x",
    "*)(uid=*))(|(uid=*",
    "admin)(|(objectClass=*",
    "cn=x\\,dc=y",
    "'; DROP TABLE grant; --",
    '" OR 1=1 --',
    "%s%s%n%x",
    "${jndi:ldap://127.0.0.1:9/x}",
    "$(id)",
    "../../../etc/passwd",
    "acme/../other",
    "-",
    "--",
    "",
    " ",
    "0",
    "-1",
    "1e309",
    "NaN",
    "99999999999999999999999",
    "2024-02-30",
    "9999-12-31",
    "0001-01-01",
    "1999-12-31",
    "2026-13-01",
    "20270101",
    "é" * 70,
    "😀",
    "\uff21\uff43\uff4d\uff45",  # fullwidth "Acme"
]


@dataclass(frozen=True)
class Case:
    command: tuple[str, ...]
    dest: str
    value: str
    kind: str  # "refuse" or "odd"

    def label(self) -> str:
        shown = self.value if len(self.value) < 40 else f"{self.value[:20]}…({len(self.value)})"
        return f"{' '.join(self.command)} {self.dest}={shown!r} [{self.kind}]"


def _leaves(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every command with a handler: (its words, its parser)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if parser.get_default("handler") is not None:
        yield path, parser
    for sub in subs:
        for word, child in sub.choices.items():
            yield from _leaves(child, (*path, word))


def _valued(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The arguments that take a value (flags and --help take none)."""
    return [
        a
        for a in parser._actions
        if a.nargs != 0
        and not isinstance(a, argparse._SubParsersAction | argparse._HelpAction)
        and a.dest != "command"
    ]


def _bounds(action: argparse.Action) -> tuple[int, int] | None:
    kind = action.type
    lo, hi = getattr(kind, "lo", None), getattr(kind, "hi", None)
    if isinstance(lo, int) and isinstance(hi, int):
        return lo, hi
    return None


def _refusals(action: argparse.Action, rng: random.Random, tmp: Path) -> list[str]:
    """Values this argument must refuse."""
    values = [
        rng.choice(["x", "acme", ""]) + rng.choice(CONTROLS) + rng.choice(["", "y"]),
        "A" * rng.choice([5000, 100_000, 1_000_000]),
    ]
    bounds = _bounds(action)
    if bounds is not None:
        lo, hi = bounds
        values += [
            str(lo - 1),
            str(hi + 1),
            "9" * rng.choice([20, 30, 5000]),
            "-" + "9" * 25,
            rng.choice(["abc", "1.5", "0x10", "\uff11\uff12", "1_000", "", " "]),
        ]
    elif action.type is int:
        values += ["9" * 30]  # an unbounded int: the sweep makes it fail loudly
    if action.choices is not None:
        values.append(rng.choice(["nosuch", "READ", "admin "]))
    if action.dest in PATH_ARGUMENTS:
        values += [str(tmp / "missing-folder" / "x.csv"), str(tmp)]
    return values


def _odd(action: argparse.Action, rng: random.Random) -> list[str]:
    if _bounds(action) is not None or action.choices is not None:
        return []  # every odd value is covered by the refusals for these
    return [rng.choice(ODD), rng.choice(ODD), "x" * rng.choice([65, 201, 1001, 4096])]


def _cases(parser: argparse.ArgumentParser, rng: random.Random, tmp: Path) -> list[Case]:
    """The bounded sweep: for every argument of every command, PER_ARGUMENT values."""
    cases: list[Case] = []
    for command, leaf in _leaves(parser):
        for action in _valued(leaf):
            pool = [Case(command, action.dest, v, "refuse") for v in _refusals(action, rng, tmp)]
            pool += [Case(command, action.dest, v, "odd") for v in _odd(action, rng)]
            refuse = [c for c in pool if c.kind == "refuse"]
            chosen = rng.sample(refuse, 1) + rng.sample(pool, min(len(pool), PER_ARGUMENT - 1))
            cases += chosen
    return cases


def _many(parser: argparse.ArgumentParser, rng: random.Random, tmp: Path, n: int) -> list[Case]:
    every = [(command, action) for command, leaf in _leaves(parser) for action in _valued(leaf)]
    out = []
    for _ in range(n):
        command, action = rng.choice(every)
        if rng.random() < 0.5:
            out.append(
                Case(command, action.dest, rng.choice(_refusals(action, rng, tmp)), "refuse")
            )
        else:
            odd = _odd(action, rng) or _refusals(action, rng, tmp)
            kind = "odd" if _odd(action, rng) else "refuse"
            out.append(Case(command, action.dest, rng.choice(odd), kind))
    return out


def _argv(case: Case, leaf: argparse.ArgumentParser, url: str, world: World) -> list[str]:
    """The command line of a case: the baseline values, the fuzzed one in its place."""
    actor = ACTING_AS.get(case.command, "root")
    if case.dest == "db":
        url = case.value
    elif case.dest == "actor":
        actor = case.value
    words = ["--db", url, "--as", actor, *case.command]
    known = BASELINE.get(case.command, {})
    options: list[str] = []
    for action in _valued(leaf):
        if action.dest == case.dest:
            value = case.value
        elif action.dest in CODE_OPTIONS:
            if not action.required:
                continue
            value = world.code(actor) if actor in world.secrets else "000000"
        elif action.dest in known:
            value = known[action.dest]
        elif action.required:
            value = action.choices[0] if action.choices else "x"  # type: ignore[index]
        else:
            continue
        if action.option_strings:
            options.append(f"{action.option_strings[-1]}={value}")
        else:
            words.append(value)
    if case.command in (("grant", "approve"), ("client", "resume")) and case.dest not in ("totp",):
        options.append(f"--totp={world.code(actor)}")
    return words + options


def _snapshot(path: Path) -> dict[str, list[tuple[object, ...]]]:
    engine = db.make_engine(f"sqlite:///{path}")
    try:
        return snapshot(engine)
    finally:
        engine.dispose()


class _Summary:
    """Prints how many cases ran in pytest's terminal summary (visible with -q)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        for line in self.lines:
            terminalreporter.write_line(line)


@pytest.fixture
def template(tmp_path: Path, memory_keyring: MemoryKeyring) -> Iterator[tuple[Path, World]]:
    """A small world in a SQLite file, with one pending request (grant 1), to copy per case."""
    path = tmp_path / "template.db"
    url = f"sqlite:///{path}"
    assert cli_main_function(["--db", url, "init"]) == 0
    engine: Engine = db.make_engine(url)
    world = small_vendor(engine)
    world.request()
    # An open access review over one active grant, for the review commands.
    with db.write_session(engine) as session:
        root = operators.find(session, ADMIN)
        operators.add(session, root, name="rita", roles=["reviewer"], reviews=["acme"], **bound())
    world.approve(world.request("E2", access="label"))
    with db.write_session(engine) as session:
        spec = reviews.CampaignSpec(
            "q1", "acme", ("rita",), clock.now() + timedelta(days=14), "keep"
        )
        reviews.start(session, operators.find(session, ADMIN), spec=spec)
    engine.dispose()  # the WAL is folded back: a copy of the one file is the whole database
    return path, world


def test_every_argument_of_every_command_refuses_bad_values_in_one_line(
    template: tuple[Path, World],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    path, world = template
    parser = build_parser()
    leaves = dict(_leaves(parser))
    globals_ = [a for a in _valued(parser) if a.dest in ("db", "actor")]
    rng = random.Random(SEED)
    cases = _many(parser, rng, tmp_path, MANY) if MANY else _cases(parser, rng, tmp_path)
    for action in globals_:  # --db and --as, on a command that reads
        cases += [
            Case(("client", "list"), action.dest, v, "refuse")
            for v in _refusals(action, rng, tmp_path)
        ]
    cases += [
        Case(("client", "list"), "db", v, "refuse")
        for v in (
            f"sqlite:///{tmp_path / 'not-a-db.txt'}",
            f"sqlite:///{tmp_path / 'missing-folder' / 'x.db'}",
            f"sqlite:///{tmp_path}",
            "nosuch://x",
            "sqlite:///:memory:",
            "postgresql://u@127.0.0.1:9/x",
        )
    ]
    (tmp_path / "not-a-db.txt").write_text("hello, not SQLite\n" * 100)
    before = _snapshot(path)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # a relative --out lands here
    engines: list[Engine] = []
    make_engine = db.make_engine

    def tracked(url: str) -> Engine:
        engine = make_engine(url)
        engines.append(engine)
        return engine

    monkeypatch.setattr(db, "make_engine", tracked)
    failures: list[str] = []
    for number, case in enumerate(cases):
        copy = tmp_path / f"case-{number}.db"
        shutil.copyfile(path, copy)
        # With its checkpoint: a database with events but none is refused every write.
        shutil.copyfile(f"{path}.audit-head", f"{copy}.audit-head")
        argv = _argv(case, leaves[case.command], f"sqlite:///{copy}", world)
        monkeypatch.setattr(sys, "stdin", io.StringIO("bind-password\n"))
        capsys.readouterr()
        try:
            code = cli_main_function(argv)
        except SystemExit as exited:  # argparse's refusals
            code = exited.code if isinstance(exited.code, int) else 2
        except BaseException:
            failures.append(f"{case.label()}: raised {traceback.format_exc(limit=-3)}")
            continue
        finally:
            for engine in engines:
                engine.dispose()
            engines.clear()
        out, err = capsys.readouterr()
        problems = []
        allowed = (2,) if case.kind == "refuse" else (0, 2)
        if code not in allowed:
            problems.append(f"exit {code}")
        lines = err.splitlines()
        if len(lines) > 3 or "Traceback" in err:
            problems.append(f"{len(lines)} lines on stderr")
        if any(len(line) > 1100 for line in lines):
            problems.append("a stderr line over 1100 characters (a value echoed whole?)")
        if any(hostile_char(line) for line in (out + err).splitlines()):
            problems.append("a control character reached the terminal")
        if code != 0 and case.dest not in CODE_OPTIONS and _snapshot(copy) != before:
            problems.append("refused, yet the database changed")
        if problems:
            failures.append(f"{case.label()}: {', '.join(problems)}; stderr: {err[:300]!r}")
        copy.unlink()
        for extra in ("-wal", "-shm", ".audit-head", ".audit-head.lock"):
            Path(f"{copy}{extra}").unlink(missing_ok=True)
    summary = _Summary()
    summary.lines.append(
        f"cli fuzz: {len(cases)} cases over {len(leaves)} commands (seed {SEED}"
        f"{f', many={MANY}' if MANY else ''}), {len(failures)} failed"
    )
    request.config.pluginmanager.register(summary, f"cli-fuzz-summary-{id(summary)}")
    assert not failures, "\n".join(failures[:40]) + f"\n({len(failures)} failures)"
