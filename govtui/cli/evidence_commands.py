"""`govtui evidence key init|show|rotate|export|verify`: the evidence key
(services/evidence_keys.py) and the evidence packs an auditor checks without trusting govtui
(services/evidence_pack.py, evidence_verify.py).

The key commands are registered by `register_key_commands`, the pack commands by
`register_pack_commands`."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from govtui.cli import key_commands
from govtui.cli.arguments import read_code
from govtui.cli.context import Context, print_json
from govtui.errors import InputError
from govtui.services import evidence_keys, evidence_pack, evidence_verify
from govtui.services.audit import format_time
from govtui.text import escaped, one_line

FINGERPRINT = re.compile(r"SHA256:[0-9a-fA-F]{64}", re.IGNORECASE)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "evidence", help="evidence an auditor can verify: the signing key, packs (export, verify)"
    )
    esub = parser.add_subparsers(dest="evidence_action", required=True, metavar="ACTION")
    register_key_commands(esub)
    register_pack_commands(esub)


def register_key_commands(esub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = esub.add_parser("key", help="the evidence key that signs packs and checkpoints")
    ksub = parser.add_subparsers(dest="key_action", required=True, metavar="ACTION")
    p = ksub.add_parser(
        "init", help="make the evidence key (an admin; its private half only in your keyring)"
    )
    p.add_argument("--totp", metavar="CODE", help="your current code (prompted for when omitted)")
    p.set_defaults(handler=run_key_init)
    p = ksub.add_parser(
        "show", help="every evidence key's public key and fingerprint (give them to the auditor)"
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=run_key_show)
    p = ksub.add_parser(
        "rotate",
        help="retire the current key (still listed: what it signed verifies) for a new one",
    )
    p.add_argument("--totp", metavar="CODE", help="your current code (prompted for when omitted)")
    p.set_defaults(handler=run_key_rotate)
    p = ksub.add_parser(
        "trust",
        help="trust a listed evidence key in this login (check its fingerprint with its admin)",
        description="Signatures are verified only against evidence keys vouched for outside "
        "the database: held or pinned in this login's keyring, or signed at rotation by a key "
        "it trusts. A login that did not make the key (e.g. the one `govtui sync` runs under) "
        "pins it here, once the fingerprint is checked with the admin who made it.",
    )
    p.add_argument(
        "fingerprint", metavar="FINGERPRINT", help="SHA256:… as `evidence key show` prints"
    )
    p.set_defaults(handler=run_key_trust)
    key_commands.register_key_register(ksub)  # operators' signing keys (act_signatures)


def run_key_init(ctx: Context, args: argparse.Namespace) -> int:
    code = read_code(args.totp)
    key = ctx.workspace().act(evidence_keys.init_key, code=code)
    print(f"evidence key {key.fingerprint} made; its private half is only in your keyring")
    print("give the public key (`govtui evidence key show`) to your auditor, out of band")
    return 0


def run_key_rotate(ctx: Context, args: argparse.Namespace) -> int:
    code = read_code(args.totp)
    key = ctx.workspace().act(evidence_keys.rotate, code=code)
    print(f"evidence key {key.fingerprint} made; the previous key is retired and stays listed")
    print("give the new public key (`govtui evidence key show`) to your auditor, out of band")
    return 0


def run_key_trust(ctx: Context, args: argparse.Namespace) -> int:
    fingerprint = str(args.fingerprint).strip()
    if not FINGERPRINT.fullmatch(fingerprint):
        raise InputError(
            "a fingerprint is SHA256: and 64 hex digits, as `evidence key show` prints"
        )
    key = ctx.workspace().read(
        evidence_keys.trust, fingerprint.lower().replace("sha256:", "SHA256:")
    )
    print(f"evidence key {key.fingerprint} is trusted in this login from now on")
    return 0


def run_key_show(ctx: Context, args: argparse.Namespace) -> int:
    keys = ctx.workspace().read(evidence_keys.keys)
    if args.json:
        print_json(
            [
                {
                    "fingerprint": k.fingerprint,
                    "current": k.retired_at is None,
                    "trusted_here": k.trusted,
                    "created_by": k.created_by,
                    "created_at": format_time(k.created_at),
                    "retired_at": format_time(k.retired_at) if k.retired_at else None,
                    "public_key": k.public_pem,
                }
                for k in keys
            ]
        )
        return 0
    if not keys:
        print("no evidence key yet: an admin makes one with `govtui evidence key init`")
        return 0
    for number, k in enumerate(keys):
        if number:
            print()
        state = "current" if k.retired_at is None else f"retired {format_time(k.retired_at)}"
        trusted = "trusted here" if k.trusted else "NOT trusted in this login"
        made = f"made by {k.created_by} {format_time(k.created_at)}"
        print(f"{k.fingerprint} ({state}; {made}; {trusted})")
        print(k.public_pem.rstrip("\n"))
    return 0


def register_pack_commands(esub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`evidence export` and `evidence verify`."""
    p = esub.add_parser(
        "export",
        help="write a signed evidence pack of a campaign, or of a client over a period",
        description="An admin, or an approver or reviewer of the client, exports; the pack is "
        "signed with the evidence key, so it runs where that key's keyring is.",
    )
    p.add_argument("--campaign", metavar="NAME_OR_ID", help="an access review campaign")
    p.add_argument("--client", metavar="CLIENT", help="a client (with --from and --to)")
    p.add_argument("--from", dest="first", metavar="DATE", help="first day, YYYY-MM-DD (UTC)")
    p.add_argument("--to", dest="last", metavar="DATE", help="last day, YYYY-MM-DD (included)")
    p.add_argument("--out", type=Path, required=True, metavar="FILE.zip", help="pack to write")
    p.set_defaults(handler=run_export)
    p = esub.add_parser(
        "verify",
        help="check a pack on its own (no database): signature, hashes, audit links, population",
    )
    p.add_argument("file", type=Path, metavar="FILE.zip")
    p.add_argument(
        "--expect-key",
        metavar="FINGERPRINT",
        help="the evidence key's fingerprint as the vendor gave it (SHA256:...); without it the "
        "pack's key is only self-asserted",
    )
    p.set_defaults(handler=run_verify)


class _Bar:
    """A progress line on stderr, redrawn when the percentage moves."""

    def __init__(self) -> None:
        self._shown = -1

    def __call__(self, done: int, total: int) -> None:
        percent = 100 * done // max(total, 1)
        if percent == self._shown:
            return
        self._shown = percent
        filled = 30 * percent // 100
        bar = "#" * filled + "-" * (30 - filled)
        print(f"\r  evidence [{bar}] {percent:3d}%", end="", file=sys.stderr, flush=True)

    def end(self) -> None:
        if self._shown >= 0:
            print(file=sys.stderr)


def run_export(ctx: Context, args: argparse.Namespace) -> int:
    if (args.campaign is None) == (args.client is None):
        raise InputError("name what to export: --campaign NAME_OR_ID or --client CLIENT (one)")
    bar = _Bar()
    try:
        written = evidence_pack.write(
            ctx.workspace(),
            args.out,
            campaign=args.campaign,
            client=args.client,
            first=args.first,
            last=args.last,
            progress=bar,
        )
    finally:
        bar.end()
    pack = written.pack
    what = ", ".join(f"{k} {escaped(str(v))}" for k, v in pack.subject.items())
    print(
        f"wrote {escaped(str(args.out))}: {pack.kind} pack ({what}), {len(pack.files)} files "
        f"and the signature, {pack.rows} rows, as of audit event #{pack.chain_head['seq']}"
    )
    print(f"signed by evidence key {pack.fingerprint}")
    print(f"sha256 {written.sha256}  {escaped(args.out.name)}")
    return 0


def run_verify(ctx: Context, args: argparse.Namespace) -> int:
    # No database is opened: an auditor checks a pack on a machine without one.
    result = evidence_verify.verify(args.file, expect_key=args.expect_key)
    # The kind, subject and head come from the pack, signed or not: escaped and cut, like
    # every problem (a name holding ESC[2J or a megabyte is shown, not obeyed or repeated).
    what = ", ".join(f"{one_line(k, 40)} {one_line(v, 120)}" for k, v in result.subject.items())
    head = one_line(result.chain_head.get("seq", "?"), 40)
    print(
        one_line(
            f"pack: {result.kind} ({what}), {result.files} files, "
            f"{result.events} audit events, chain head #{head}",
            1000,
        )
    )
    if result.fingerprint is not None:
        print(f"signed by: {result.fingerprint}")
    for problem in result.problems:
        print(f"PROBLEM: {one_line(problem, 1000)}")
    if not result.ok:
        print(f"NOT VERIFIED: {len(result.problems)} problem(s) above")
        return 1
    checks = "the signature, every file's hash and size, no file missing or extra, the audit"
    checks += " slice's hashes and links"
    if result.kind == "campaign":
        checks += ", the population digest against review.start"
    if result.key_expected:
        print(f"VERIFIED: {checks}; signed by the expected key")
        return 0
    print(f"VERIFIED against the pack's own key only: {checks}")
    print(
        "WARNING: THE SIGNING KEY IS ONLY SELF-ASSERTED. Whoever rebuilt this pack could have "
        "signed it with a key of their own. Compare the fingerprint above with the one the "
        "vendor gave you out of band, or run again with --expect-key FINGERPRINT."
    )
    return 0
