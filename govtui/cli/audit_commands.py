"""`govtui audit verify|checkpoint|export`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from govtui import private_files
from govtui.cli.context import Context
from govtui.errors import InputError
from govtui.security import signed_note
from govtui.services import act_signatures, audit, audit_state
from govtui.text import one_line


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("audit", help="the hash-chained audit log")
    asub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = asub.add_parser("verify", help="recompute the chain; exit 1 naming the first bad event")
    p.add_argument(
        "--accept-missing-checkpoint",
        action="store_true",
        help="verify a database whose checkpoint is gone (a deleted tail then goes unseen) "
        "and, if it verifies, record a new checkpoint of its head",
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        metavar="FILE",
        help="a signed checkpoint handed out earlier (`audit checkpoint --out`): prove the "
        "chain still extends it, so nothing up to it changed",
    )
    p.set_defaults(handler=run_verify)
    p = asub.add_parser(
        "checkpoint",
        help="write the chain head as a checkpoint signed by the evidence key, to hand out",
    )
    p.add_argument("--out", type=Path, required=True, metavar="FILE", help="file to write")
    p.set_defaults(handler=run_checkpoint)
    p = asub.add_parser("export", help="write the log as JSON Lines")
    p.add_argument("--out", type=Path, help="file to write (default: standard output)")
    p.set_defaults(handler=run_export)


def run_verify(ctx: Context, args: argparse.Namespace) -> int:
    ws = ctx.workspace()
    accept = bool(args.accept_missing_checkpoint)
    handed_out = _read_note(args.checkpoint) if args.checkpoint is not None else None
    result = ws.read(
        lambda session: audit.verify(
            session, ws.engine, accept_missing_checkpoint=accept, handed_out=handed_out
        )
    )
    if not result.ok:
        where = (
            f"BROKEN at event {result.first_bad_seq}" if result.first_bad_seq else "NOT verified"
        )
        print(f"audit chain {where}: {one_line(result.problem or '', 1000)}")
        return 1
    print(f"audit chain intact: {result.checked} events verified")
    if result.signature:
        print(f"audit chain {result.signature}")
    if result.extends:
        print(one_line(result.extends, 1000))
    state = ws.read(audit_state.check)
    if not state.ok:
        for problem in state.problems:
            print(f"state not backed by the chain: {one_line(problem, 1000)}")
        if state.more:
            print(f"state not backed by the chain: {state.more} more rows")
        print("audit state BROKEN: rows above were inserted or changed outside govtui")
        return 1
    print("state backed by the chain: operators, roles, grants, pauses, scopes, directories")
    acts = ws.read(act_signatures.verify_all)
    for line in acts.lines():
        print(one_line(line, 1000))
    if not acts.ok:
        return 1
    if result.warning:
        print(f"warning: {one_line(result.warning, 1000)}")
    if accept and result.warning:
        # Only once both the chain and the state verified: from here on a cut tail is caught
        # against this head again, and writes are no longer refused.
        adopted = ws.read(lambda session: audit.adopt_head(session, ws.engine))
        if adopted is not None:
            path, seq = adopted
            print(f"recorded a new audit checkpoint at {path}: the chain up to event {seq}")
    return 0


def _read_note(path: Path) -> str:
    with path.open("rb") as file:
        data = file.read(signed_note.MAX_NOTE + 1)
    if len(data) > signed_note.MAX_NOTE:
        raise InputError(f"{path} is too large for a signed checkpoint")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path} is not a signed checkpoint (not UTF-8 text)") from None


def run_checkpoint(ctx: Context, args: argparse.Namespace) -> int:
    ws = ctx.workspace()
    # Only a chain that verifies is vouched for: a signature over a broken one misleads.
    result = ws.read(lambda session: audit.verify(session, ws.engine))
    if not result.ok:
        raise InputError(
            f"the audit chain does not verify, nothing signed: {result.problem} "
            "(see `govtui audit verify`)"
        )
    note = ws.read(audit.signed_head)
    with private_files.private_output(args.out, "checkpoint file") as out:
        out.write(note)
    seq = note.split("\n", 2)[1]
    print(f"wrote a signed checkpoint of event {seq} to {args.out}")
    return 0


def run_export(ctx: Context, args: argparse.Namespace) -> int:
    ws = ctx.workspace()
    if args.out is None:
        ws.read(lambda session: _write_lines(sys.stdout, audit.export_lines(session)))
        return 0
    # Private (0600), written beside the target and renamed: a failed export never leaves
    # half a file or a temporary one, and never writes through a planted link.
    with private_files.private_output(args.out, "export file") as out:
        count = ws.read(lambda session: _write_lines(out, audit.export_lines(session)))
    print(f"exported {count} events to {args.out}")
    return 0


def _write_lines(out: TextIO, lines: Iterable[str]) -> int:
    count = 0
    for line in lines:
        out.write(line + "\n")
        count += 1
    return count
