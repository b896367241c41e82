"""`govtui doctor [--json]`: every check of services.doctor, one line each; exit 1 when any
failed. Any operator may run it (no role, no operator row needed): it only reads."""

from __future__ import annotations

import argparse

from govtui import db
from govtui.cli.context import Context, print_json
from govtui.services import doctor
from govtui.services.doctor_findings import Finding
from govtui.text import one_line

REPORT_VERSION = 1
LABELS = {"ok": "ok", "warn": "WARN", "fail": "FAIL"}
MAX_FIELD = 1000


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "doctor",
        help="check the installed files against the lock, the keyring, the database and the "
        "directories' TLS settings (read-only; exit 1 when a check fails)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="the report as one JSON object (schemas/doctor-report.schema.json)",
    )
    parser.set_defaults(handler=run_doctor)


def report_json(report: doctor.Report, database: str) -> dict[str, object]:
    """The report as schemas/doctor-report.schema.json describes it."""
    return {
        "version": REPORT_VERSION,
        "ok": not report.failed,
        "database": database,
        "counts": {status: report.count(status) for status in LABELS},
        "seconds": round(report.seconds, 3),
        "findings": [
            {"check": f.check, "status": f.status, "subject": f.subject, "detail": f.detail}
            for f in report.findings
        ],
    }


def finding_line(finding: Finding) -> str:
    """`FAIL  database  /path/govtui.db: mode 0644, ...`: escaped, each part one line (a file
    name in site-packages or a server's words are data)."""
    label = LABELS[finding.status]
    subject = one_line(finding.subject, MAX_FIELD)
    detail = one_line(finding.detail, MAX_FIELD)
    return f"{label:<4}  {finding.check:<9}  {subject}: {detail}"


def run_doctor(ctx: Context, args: argparse.Namespace) -> int:
    # ctx.engine is not used: opening a SQLite URL creates a missing file, and doctor writes
    # nothing; the service opens the database only once it knows it is there.
    report = doctor.run(ctx.url)
    if args.json:
        print_json(report_json(report, db.redacted(ctx.url)))
    else:
        for finding in report.findings:
            print(finding_line(finding))
        fails, warns = report.count("fail"), report.count("warn")
        if fails:
            summary = f"doctor: {fails} check{'s' if fails != 1 else ''} failed"
        else:
            summary = f"doctor: every check passed ({len(report.findings)} lines)"
        if warns:
            summary += f", {warns} warning{'s' if warns != 1 else ''}"
        print(f"{summary} in {report.seconds:.1f} s")
    return 1 if report.failed else 0
