"""What every listing command writes: every row, streamed as it is read (memory bounded by
one window whatever the count), as aligned text, one JSON array (`--json`) or JSON Lines
(`--jsonl`); with `--limit N` the first N and, on stderr, how many there are in all."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import Any, TypeVar

from govtui.cli import arguments
from govtui.cli.context import PAD_LIMIT, _cell, json_text

T = TypeVar("T")

SAMPLE = 1_000  # text columns are as wide as the widest cell of the first SAMPLE rows


def add_output_arguments(p: argparse.ArgumentParser, *, limit: bool = True) -> None:
    """`--json` / `--jsonl` (and `--limit`) as every listing command takes them."""
    if limit:
        p.add_argument(
            "--limit",
            type=arguments.LIMIT,
            metavar="N",
            help="only the first N rows, and how many there are on stderr (default: every row)",
        )
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one JSON array, written as it is read")
    out.add_argument("--jsonl", action="store_true", help="one JSON object per line")


def emit(
    args: argparse.Namespace,
    rows: Iterable[T],
    *,
    headers: Sequence[str],
    cells: Callable[[T], Sequence[Any]],
    json_of: Callable[[T], Any] = lambda row: row,
) -> int:
    """Write `rows` in the form `args` asks for, as they come; how many were written."""
    write = sys.stdout.write
    count = 0
    if getattr(args, "jsonl", False):
        for row in rows:
            write(json_text(json_of(row), indent=None) + "\n")
            count += 1
        return count
    if args.json:
        write("[")
        for row in rows:
            write(",\n  " if count else "\n  ")
            write(json_text(json_of(row), indent=None))
            count += 1
        write("\n]\n" if count else "]\n")
        return count
    return _text(iter(rows), headers, cells)


def _text(rows: Iterator[T], headers: Sequence[str], cells: Callable[[T], Sequence[Any]]) -> int:
    first = [[_cell(c) for c in cells(row)] for row in islice(rows, SAMPLE)]
    if not first:
        print("(none)")
        return 0
    head = [str(h) for h in headers]
    widths = [min(max(len(r[i]) for r in [head, *first]), PAD_LIMIT) for i in range(len(head))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(values, widths, strict=True)).rstrip()

    out = [line(head), *(line(r) for r in first)]
    sys.stdout.write("\n".join(out) + "\n")
    count = len(first)
    for row in rows:
        sys.stdout.write(line([_cell(c) for c in cells(row)]) + "\n")
        count += 1
    return count


def note_limit(args: argparse.Namespace, shown: int, total: Callable[[], int], noun: str) -> None:
    """With --limit: "200 of 1,000,000 grants (--limit)" on stderr."""
    if getattr(args, "limit", None) is None:
        return
    sys.stdout.flush()
    print(f"{shown:,} of {total():,} {noun} (--limit)", file=sys.stderr)


def json_rows(args: argparse.Namespace, rows: Iterable[Any]) -> bool:
    """Write `rows` as --json (one array) or --jsonl asked; whether either was (else the
    caller writes its table). For the short lists (clients, scopes, operators, targets,
    campaigns, schedules), whose rows are as many as the catalogue's."""
    if not (args.json or getattr(args, "jsonl", False)):
        return False
    emit(args, rows, headers=(), cells=lambda row: ())
    return True
