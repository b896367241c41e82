"""Listing commands stream every row: `grant list` (and `contractor list`) without --limit
write all of a 300,000-grant world with memory bounded by one window, as JSON Lines, one JSON
array or text; never an IN list of ids (no SQL-variable limit at any size); with --limit N,
"N of M grants (--limit)" on stderr."""

from __future__ import annotations

import io
import json
import sys
import tracemalloc
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from govtui import db
from govtui.cli import main
from govtui.services import grant_views

from .factories import ADMIN, BulkVendor, Scope, World, bulk_vendor, every_pair, small_vendor
from .memory_keyring import MemoryKeyring

PEOPLE = 2_500
SCOPES = 20  # PEOPLE x SCOPES grants
BIG = PEOPLE * SCOPES
PEAK_BYTES = 24 * 2**20  # the whole list as rows would be well over 60 MB


def run(engine: Engine, *args: str, actor: str = ADMIN) -> int:
    url = engine.url.render_as_string(hide_password=False)
    try:
        return main(["--db", url, "--as", actor, *args])
    except SystemExit as exited:
        return int(exited.code or 0)


@pytest.fixture
def big(engine: Engine, memory_keyring: MemoryKeyring) -> BulkVendor:
    vendor = bulk_vendor(
        engine,
        scopes=[Scope(f"acme/p{p}/s{s}") for p in range(4) for s in range(SCOPES // 4)],
        contractors=PEOPLE,
        target=None,
    )
    for k, scope in enumerate(vendor.scopes):  # a scope at a time: each INSERT stays small
        vendor.grant(every_pair(range(PEOPLE), [scope]), expires_in=timedelta(days=1 + k))
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:  # as autovacuum would soon after a bulk insert
            conn.execute(sa.text("ANALYZE"))
            conn.commit()
    return vendor


class Sink(io.TextIOBase):
    """stdout into a file on disk: what is written is not held in memory (tracemalloc)."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("w", encoding="utf-8")

    def write(self, text: str) -> int:
        return self.file.write(text)

    def flush(self) -> None:
        self.file.flush()


def _listed(engine: Engine, path: Path, *args: str, traced: bool = False) -> int:
    """Run a listing with stdout into `path`; the peak traced memory (0 untraced)."""
    saved, sys.stdout = sys.stdout, Sink(path)
    peak = 0
    try:
        if traced:
            tracemalloc.start()
        assert run(engine, *args) == 0
        if traced:
            _current, peak = tracemalloc.get_traced_memory()
    finally:
        if traced:
            tracemalloc.stop()
        sink, sys.stdout = sys.stdout, saved
        assert isinstance(sink, Sink)
        sink.file.close()
    return peak


def _lines(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8") as f:
        yield from f


def test_grant_list_streams_every_row_with_bounded_memory(
    big: BulkVendor, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """(Slow under tracemalloc, about a minute a database: the size is the point.)"""
    out = tmp_path / "grants.jsonl"
    peak = _listed(big.engine, out, "grant", "list", "--jsonl", traced=True)
    ids = [json.loads(line)["id"] for line in _lines(out)]
    assert len(ids) == BIG == len(set(ids))
    assert ids == sorted(ids, reverse=True)  # newest first, as the help says
    assert peak < PEAK_BYTES, f"peak {peak / 2**20:.1f} MiB"
    assert capsys.readouterr().err == ""  # no --limit: no note

    # 250,000 rows used to become an IN list of 250,000 ids: "too many SQL variables". Now
    # no statement binds more than a window's few parameters at any size, and --json is one
    # array.
    statements: list[int] = []

    def count(_conn: object, _cursor: object, _sql: str, params: object, *_: object) -> None:
        statements.append(len(params) if isinstance(params, tuple | dict | list) else 0)

    sa.event.listen(Engine, "before_cursor_execute", count)  # the CLI makes its own engine
    try:
        out = tmp_path / "limited.json"
        _listed(big.engine, out, "grant", "list", "--json", "--limit", "40000")
    finally:
        sa.event.remove(Engine, "before_cursor_execute", count)
    with out.open(encoding="utf-8") as f:
        assert [r["id"] for r in json.load(f)] == ids[:40_000]
    assert max(statements) < 50
    assert capsys.readouterr().err == f"40,000 of {BIG:,} grants (--limit)\n"

    # A filter: the note counts the filter, not the table.
    _listed(big.engine, out, "grant", "list", "--state", "revoked", "--limit", "5", "--jsonl")
    assert capsys.readouterr().err == "0 of 0 grants (--limit)\n"
    _listed(big.engine, out, "grant", "list", "--client", "acme", "--limit", "200", "--jsonl")
    assert sum(1 for _ in _lines(out)) == 200
    assert capsys.readouterr().err == f"200 of {BIG:,} grants (--limit)\n"


@pytest.fixture
def world(engine: Engine, memory_keyring: MemoryKeyring) -> World:
    return small_vendor(engine)


def test_text_json_and_jsonl_say_the_same_rows(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    first = world.request("E1", "acme/rlhf/pairs")
    second = world.request("E2", "acme/rlhf/notes")
    world.approve(first)
    engine = world.engine
    assert run(engine, "grant", "list", "--jsonl") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["id"] for line in lines] == [second, first]
    assert run(engine, "grant", "list", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == [json.loads(line) for line in lines]
    assert rows[1]["approvals"] == ["ann"] and rows[1]["state"] == "active"
    assert run(engine, "grant", "list") == 0
    text = capsys.readouterr().out.splitlines()
    assert (
        text[0]
        == "ID  CONTRACTOR  SCOPE            ACCESS  STATE      EXPIRES           APPROVED BY"
    )
    assert [line.split()[0] for line in text[1:]] == [str(second), str(first)]
    # Sorted by expiry: the active grant first, the request (no expiry yet) last.
    assert run(engine, "grant", "list", "--sort", "expires", "--jsonl") == 0
    assert [json.loads(x)["id"] for x in capsys.readouterr().out.splitlines()] == [first, second]
    # Nothing: an empty array, no lines, "(none)".
    assert run(engine, "grant", "list", "--state", "revoked", "--json") == 0
    assert json.loads(capsys.readouterr().out) == []
    assert run(engine, "grant", "list", "--state", "revoked", "--jsonl") == 0
    assert capsys.readouterr().out == ""
    assert run(engine, "grant", "list", "--state", "revoked") == 0
    assert capsys.readouterr().out == "(none)\n"
    # The contractors screen's search, from the command line too.
    assert run(engine, "grant", "list", "--search", "ad", "--jsonl") == 0
    assert [json.loads(x)["contractor"] for x in capsys.readouterr().out.splitlines()] == ["E1"]


def test_contractor_list_streams_and_notes_a_limit(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(world.engine, "contractor", "list", "--jsonl") == 0
    out = capsys.readouterr()
    assert [json.loads(x)["external_id"] for x in out.out.splitlines()] == ["E1", "E2"]
    assert out.err == ""
    assert run(world.engine, "contractor", "list", "--limit", "1", "--json") == 0
    out = capsys.readouterr()
    assert [r["external_id"] for r in json.loads(out.out)] == ["E1"]
    assert out.err == "1 of 2 contractors (--limit)\n"


def test_stream_pages_by_keyset_in_every_sort(world: World) -> None:
    """Small windows in each order give the same rows as one big window, each once."""
    ids = [world.request("E1" if i % 2 else "E2", p) for i, p in enumerate(_paths())]
    world.approve(ids[0], ids[1])
    with db.read_session(world.engine) as session:
        for sort in grant_views.GRANT_SORTS:
            whole = [r.id for r in grant_views.window(session, sort=sort, limit=1000)]
            paged = [r.id for r in grant_views.stream(session, sort=sort, window_size=1)]
            assert paged == whole and sorted(whole) == sorted(ids), sort
            last = grant_views.window(session, sort=sort, from_end=True, limit=2)
            assert [r.id for r in last] == whole[-2:], sort
            before = grant_views.window(
                session, sort=sort, before=grant_views.sort_key(sort, last[0]), limit=2
            )
            assert [r.id for r in before] == whole[-4:-2], sort


def _paths() -> list[str]:
    return ["acme/rlhf/pairs", "acme/rlhf/notes", "other/p/s", "acme/rlhf/redteam"]


@pytest.mark.parametrize(
    ("command", "key", "expected"),
    [
        (("client", "list"), "name", ["acme", "other"]),
        (("scope", "list", "--client", "acme"), "path", ["acme/rlhf/notes", "acme/rlhf/pairs"]),
        (("operator", "list"), "name", ["ann", "bob", "olga", "req", "root", "vera"]),
    ],
)
def test_the_short_lists_take_json_and_jsonl_too(
    world: World,
    capsys: pytest.CaptureFixture[str],
    command: tuple[str, ...],
    key: str,
    expected: list[str],
) -> None:
    assert run(world.engine, *command, "--jsonl") == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert run(world.engine, *command, "--json") == 0
    assert json.loads(capsys.readouterr().out) == lines
    assert sorted(r[key] for r in lines)[: len(expected)] == expected
    assert run(world.engine, *command, "--json", "--jsonl") == 2  # one or the other
