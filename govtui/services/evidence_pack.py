"""Evidence packs: what an auditor takes away and checks without trusting govtui. A zip of
canonical CSV, JSON Lines and text files, a manifest of every file's SHA-256 and size signed
with the evidence key (Ed25519), the public key, a SHA256SUMS file and a README with the stock
commands that check it all (sha256sum, grep, openssl).

Deterministic: the same data gives the same bytes. The files come in a fixed order with fixed
zip metadata (the time of the chain head's event, 0644, one compression level), every value
has one text form (evidence_csv), and nothing says when the export ran.

Streamed: each CSV is one query read a window at a time (a server-side cursor on
PostgreSQL), its rows written by csv.writer into their zip entry and hashed on the way, so a
campaign of 100,000 items takes the memory of one window. Rows stay plain values: times are
read as stored and each distinct one formatted once (evidence_csv.Times); a window's helper
lookups are one query each over the window's id range. Verification needs no database."""

from __future__ import annotations

import hashlib
import stat
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from importlib import metadata
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from govtui import private_files
from govtui.db import ident
from govtui.errors import ConfigurationError, ConflictError, InputError, NotFoundError, PolicyError
from govtui.models import (
    Approval,
    AuditEvent,
    AuditHead,
    Client,
    ClientPause,
    Contractor,
    DatabaseIdentity,
    DatasetScope,
    DirectoryTarget,
    Grant,
    GrantExtension,
    Operator,
    OutboxOp,
    PausedGrant,
    Project,
    ReviewCampaign,
    ReviewItem,
)
from govtui.services import (
    audit,
    catalog,
    evidence_keys,
    operators,
    review_close,
    review_views,
    reviews,
    validation,
)
from govtui.services.evidence_csv import COLUMNS, Sink, Times, json_line, utc_text
from govtui.services.grant_lifecycle import paused_ids
from govtui.services.pause_views import Convergence, convergence_of
from govtui.services.workspace import Workspace
from govtui.sqltypes import UTCDateTime
from govtui.text import quoted
from govtui.vocabulary import (
    Decision,
    GrantState,
    ItemOutcome,
    OutboxOperation,
    OutboxState,
    Role,
)

FORMAT = "govtui-evidence-pack/1"
# Deflate level: one level, so one byte form (for a given zlib). 1, the fastest: a
# 100,000-item campaign's 35 MB of CSV deflate in 0.4 s to 3.5 MB (6: 3 s, 3.1 MB).
LEVEL = 1
WINDOW = 2_000  # rows read and written at a time
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
KEY_FILE = "signing-key.pub"
SUMS = "SHA256SUMS"
README = "README.txt"
CAMPAIGN_DATA = ("population.csv", "decisions.csv", "remediation.csv", "summary.txt", "audit.jsonl")
CLIENT_DATA = (
    "grants.csv",
    "grant-history.csv",
    "pauses.csv",
    "campaigns.csv",
    "decisions.csv",
    "audit.jsonl",
    "summary.txt",  # last: it counts what the others hold
)
# Changed by close: these items' grants were ended or shortened at close_started_at.
_APPLIED = (ItemOutcome.REVOKED, ItemOutcome.NO_ANSWER_REVOKED, ItemOutcome.SHORTENED)
_ENDING = (ItemOutcome.REVOKED, ItemOutcome.NO_ANSWER_REVOKED)
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)

Progress = Callable[[int, int], None]  # rows written so far, rows in all


@dataclass(frozen=True)
class PackFile:
    name: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Pack:
    """What was exported: the files as the manifest lists them, and the key that signed."""

    kind: str  # campaign | client-period
    subject: dict[str, Any]
    files: list[PackFile]
    fingerprint: str
    chain_head: dict[str, Any]
    rows: int


class _Rows:
    """Rows written so far; each step is reported to `progress` with the total expected."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total = total
        self.done = 0
        self._progress = progress

    def __call__(self, n: int) -> None:
        self.done += n
        if self._progress is not None:
            self._progress(self.done, self.total)


# --- the zip -------------------------------------------------------------------------------


class _Zip:
    """Entries in the order written, each with fixed metadata, each hashed as it streams."""

    def __init__(self, out: IO[bytes], when: tuple[int, int, int, int, int, int]) -> None:
        self._zip = zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=LEVEL)
        self._when = when
        self.files: list[PackFile] = []

    @contextmanager
    def entry(self, name: str) -> Iterator[Sink]:
        info = zipfile.ZipInfo(name, date_time=self._when)
        info.compress_type = zipfile.ZIP_DEFLATED
        info._compresslevel = LEVEL  # type: ignore[attr-defined]  # what ZipFile.write sets
        info.create_system = 3  # Unix, wherever it runs
        info.external_attr = (stat.S_IFREG | 0o644) << 16
        with self._zip.open(info, "w") as raw:
            sink = Sink(raw)
            yield sink
            sink.close()
        self.files.append(PackFile(name, sink.sha256, sink.size))

    @contextmanager
    def csv(self, name: str) -> Iterator[Sink]:
        """A CSV entry, its header row (COLUMNS[name]) written."""
        with self.entry(name) as sink:
            sink.row(COLUMNS[name])
            yield sink

    def text(self, name: str, text: str) -> PackFile:
        with self.entry(name) as sink:
            sink.text(text)
        return self.files[-1]

    def close(self) -> None:
        self._zip.close()


def _zip_time(at: str | None) -> tuple[int, int, int, int, int, int]:
    if at is None:
        return _ZIP_EPOCH
    t = datetime.strptime(at, "%Y-%m-%dT%H:%M:%S.%fZ")
    return max((t.year, t.month, t.day, t.hour, t.minute, t.second), _ZIP_EPOCH)


def file_sha256(path: Path) -> str:
    """The SHA-256 of a written pack (what two exports are compared by)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Written:
    """A pack written to a file, and the file's SHA-256 (what two exports compare by)."""

    path: Path
    pack: Pack
    sha256: str


def write(
    workspace: Workspace,
    path: Path,
    *,
    campaign: str | None = None,
    client: str | None = None,
    first: str | date | None = None,
    last: str | date | None = None,
    progress: Progress | None = None,
) -> Written:
    """Export a campaign's pack, or a client's over [first, last], to `path` (private, 0600,
    written beside it and renamed: a failed export leaves the old file): the one way the CLI
    and the TUI write a pack."""
    if (campaign is None) == (client is None):
        raise InputError("name what to export: a campaign, or a client and a period (one)")
    if client is not None:
        if first is None or last is None:
            raise InputError("a client's pack covers a period: give --from DATE and --to DATE")
        period(first, last)  # bad dates: refused before any file
    elif first is not None or last is not None:
        raise InputError("--from and --to are for a client's pack, not a campaign's")
    with private_files.private_binary_output(path, "evidence pack") as out:
        if client is None:
            pack = workspace.read_as(
                export_campaign, campaign=str(campaign), out=out, progress=progress
            )
        else:
            pack = workspace.read_as(
                export_client,
                client=client,
                first=str(first),
                last=str(last),
                out=out,
                progress=progress,
            )
    return Written(path, pack, file_sha256(path))


# --- shared pieces ---------------------------------------------------------------------------


def version() -> str:
    try:
        return metadata.version("govtui")
    except metadata.PackageNotFoundError:  # run from a checkout without installing
        return "unknown"


def _head(session: Session) -> dict[str, Any]:
    """The chain head now: seq, hash, and its event's time (the pack's only time)."""
    head = session.get(AuditHead, 1)
    if head is None or head.seq == 0:
        return {"seq": 0, "hash": head.hash if head else "0" * 64, "at": None}
    event = session.get(AuditEvent, head.seq)
    return {
        "seq": head.seq,
        "hash": head.hash,
        "at": audit.format_time(event.at) if event is not None else None,
    }


def _database_id(session: Session) -> str:
    row = session.get(DatabaseIdentity, 1)
    return row.database_id if row is not None else "unknown"


def _signing_key(session: Session) -> evidence_keys.KeyView:
    """The current evidence key, refused in one line when this keyring cannot sign with it
    (checked before any row is read: a long export must not fail at its last step)."""
    current = [k for k in evidence_keys.keys(session) if k.retired_at is None]
    if not current:
        raise ConfigurationError(
            "there is no evidence key to sign the pack with: an admin creates it with "
            "`govtui evidence key init`"
        )
    if not evidence_keys.available(session):
        raise ConfigurationError(
            f"the evidence key {current[0].fingerprint} is not in this user's keyring: export "
            "as the admin who holds it"
        )
    return current[0]


def _may_export(session: Session, actor: Operator, client: Client) -> None:
    """An admin, or an approver or reviewer of the client: those who see its grants in govtui
    already. Exporting removes nothing and adds no access, so it asks no code."""
    if Role.ADMIN in operators.roles_of(session, actor):
        return
    if operators.is_approver_for(session, actor, client) or operators.is_reviewer_for(
        session, actor, client
    ):
        return
    raise PolicyError(
        f"{quoted(actor.name)} may not export evidence of client {quoted(client.name)}: an "
        "admin, or an approver or reviewer of the client, may"
    )


def _consistent(session: Session) -> None:
    # One snapshot for the whole export on PostgreSQL (SQLite's read transaction is one).
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


def _stream(session: Session, query: sa.Select[Any]) -> Iterator[Sequence[Any]]:
    """The rows of one query, a window at a time: one statement read as it goes (a
    server-side cursor on PostgreSQL), not a query per window, so each row is read once."""
    result = session.connection().execute(query, execution_options={"yield_per": WINDOW})
    try:
        yield from result.partitions()
    finally:
        result.close()


def _raw_times(query: Any) -> tuple[sa.Select[Any], tuple[int, ...]]:
    """The query with its time columns read as stored (no conversion per value: Sink's
    Times formats each distinct one once), and their positions."""
    columns: list[Any] = []
    times: list[int] = []
    for i, column in enumerate(query.selected_columns):
        if isinstance(column.type, UTCDateTime):
            columns.append(sa.type_coerce(column, sa.String()).label(f"raw_time_{i}"))
            times.append(i)
        else:
            columns.append(column)
    return query.with_only_columns(*columns, maintain_column_froms=True), tuple(times)


def _plain(
    session: Session, query: sa.Select[Any], sink: Sink, advance: Callable[[int], None]
) -> None:
    """A query's rows as they come (str, int, None and times only) into a CSV entry."""
    raw, times = _raw_times(query)
    for rows in _stream(session, raw):
        sink.plain_rows(rows, times)
        advance(len(rows))


def _names(session: Session, ids: set[int | None]) -> dict[int, str]:
    wanted = sorted(i for i in ids if i is not None)
    if not wanted:
        return {}
    return dict(
        session.execute(
            sa.select(col(Operator.id), col(Operator.name)).where(col(Operator.id).in_(wanted))
        ).all()
    )


def _audit_lines(session: Session, where: sa.ColumnElement[bool], sink: Sink) -> int:
    """The events the condition selects, oldest first, a window at a time; how many."""
    last, count = 0, 0
    while True:
        rows = (
            session.execute(
                sa.select(AuditEvent)
                .where(where, col(AuditEvent.seq) > last)
                .order_by(col(AuditEvent.seq))
                .limit(WINDOW)
            )
            .scalars()
            .all()
        )
        for row in rows:
            sink.text(json_line(audit.event_record(row)))
        count += len(rows)
        if len(rows) < WINDOW:
            return count
        last = rows[-1].seq
        session.expunge_all()  # the window's rows are written: let them go


def _finish(
    session: Session,
    zf: _Zip,
    *,
    kind: str,
    subject: dict[str, Any],
    head: dict[str, Any],
    key: evidence_keys.KeyView,
    extra: dict[str, Any],
    rows: int,
) -> Pack:
    """The key file, README and SHA256SUMS, then the manifest and its signature."""
    zf.text(KEY_FILE, key_file(key.public_pem, key.fingerprint))
    zf.text(README, readme(kind, [f.name for f in zf.files] + [README, SUMS], key.fingerprint))
    zf.text(SUMS, sums_text(zf.files))
    manifest = manifest_bytes(
        kind=kind,
        subject=subject,
        files=zf.files,
        head=head,
        database_id=_database_id(session),
        fingerprint=key.fingerprint,
        extra=extra,
    )
    signed = evidence_keys.sign(session, manifest)
    if signed.fingerprint != key.fingerprint:
        raise ConflictError(
            "the evidence key was rotated during the export: export again"
            f" (expected {key.fingerprint}, signed by {signed.fingerprint})"
        )
    files = list(zf.files)
    zf.text(MANIFEST, manifest.decode())
    with zf.entry(SIGNATURE) as sink:
        sink.write(signed.signature)  # raw 64 bytes: what `openssl pkeyutl -sigfile` reads
    zf.close()
    return Pack(kind, subject, files, key.fingerprint, head, rows)


def key_file(public_pem: str, fingerprint: str) -> str:
    """signing-key.pub: the PEM (what openssl reads) and a line naming its fingerprint."""
    return public_pem.rstrip("\n") + "\n" + f"fingerprint: {fingerprint}\n"


def sums_text(files: Sequence[PackFile]) -> str:
    """SHA256SUMS in the format `sha256sum -c` reads: hash, two spaces, name."""
    return "".join(f"{f.sha256}  {f.name}\n" for f in files if f.name != SUMS)


def manifest_bytes(
    *,
    kind: str,
    subject: dict[str, Any],
    files: Sequence[PackFile],
    head: dict[str, Any],
    database_id: str,
    fingerprint: str,
    extra: dict[str, Any],
) -> bytes:
    body = {
        "format": FORMAT,
        "kind": kind,
        "subject": subject,
        "govtui_version": version(),
        "database_id": database_id,
        "chain_head": head,
        "signing_key": {"algorithm": "ed25519", "fingerprint": fingerprint},
        "files": [{"name": f.name, "sha256": f.sha256, "size": f.size} for f in files],
        **extra,
    }
    return (audit.canonical_json(body) + "\n").encode("utf-8")


def readme(kind: str, names: Sequence[str], fingerprint: str) -> str:
    """How to check the pack with stock tools, and what each file holds."""
    what = {
        "population.csv": "the campaign's items as frozen at start (grant_id first)",
        "decisions.csv": "each item's decision, reviewer, helpers, when applied and confirmed",
        "remediation.csv": "each grant the close ended, and each directory's read-back",
        "summary.txt": "counts, dates, reviewers, the no-answer action",
        "audit.jsonl": "the audit events of the subject (prev_hash, hash), then the chain head",
        "grants.csv": "every grant of the client live at any time in the period",
        "grant-history.csv": "each grant's request, approvals, extensions, pauses and end",
        "pauses.csv": "every pause of the period and how far the directory followed it",
        "campaigns.csv": "every access review of the client in the period",
        KEY_FILE: "the public key that signed manifest.json (PEM) and its fingerprint",
        README: "this file",
        SUMS: "SHA-256 of every file above, for `sha256sum -c`",
    }
    listing = "".join(f"  {n:<18} {what.get(n, '')}\n" for n in names)
    population = (
        "\n5. The population digest (the review.start event's population_sha256 in\n"
        "   audit.jsonl and in manifest.json) recomputes from population.csv:\n"
        "     tail -n +2 population.csv | cut -d, -f1 | sort -n | paste -sd, - \\\n"
        "       | tr -d '\\n' | sha256sum\n"
        if kind == "campaign"
        else ""
    )
    return (
        f"govtui evidence pack ({kind})\n"
        "\n"
        "Files:\n"
        f"{listing}"
        f"  {MANIFEST:<18} every file's SHA-256 and size, govtui's version, the database id,\n"
        f"  {'':<18} the audit chain head (canonical JSON, signed)\n"
        f"  {SIGNATURE:<18} the Ed25519 signature of manifest.json (64 raw bytes)\n"
        "\n"
        "Verify with stock tools (unzip the pack into an empty folder, run these in it):\n"
        "\n"
        "1. The signature of the manifest (must print 'Signature Verified Successfully'):\n"
        f"     openssl pkeyutl -verify -pubin -inkey {KEY_FILE} -rawin -in {MANIFEST} \\\n"
        f"       -sigfile {SIGNATURE}\n"
        "\n"
        "2. The key is the vendor's: compare its fingerprint with the one they gave you out\n"
        "   of band (the pack's own key proves nothing by itself):\n"
        f"     openssl pkey -pubin -in {KEY_FILE} -outform DER | tail -c 32 | sha256sum\n"
        f"   must print the hex after 'SHA256:' of {fingerprint}\n"
        "\n"
        "3. SHA256SUMS is the one the signed manifest names (must print one line):\n"
        f'     grep -F "\\"name\\":\\"{SUMS}\\",\\"sha256\\":\\"$(sha256sum {SUMS} | cut -c1-64)\\"" \\\n'
        f"       {MANIFEST}\n"
        "\n"
        "4. Every file is the one hashed (each must say OK; --strict fails on a bad line):\n"
        f"     sha256sum --strict -c {SUMS}\n"
        f"{population}"
        "\n"
        "Or, with govtui (no database needed):\n"
        f"  govtui evidence verify PACK.zip --expect-key {fingerprint}\n"
        "which also checks that the zip holds no file the manifest does not list, and that\n"
        "each audit event's hash recomputes and links to the one before it.\n"
        "\n"
        "Formats: CSV is UTF-8, comma-separated, quoted only where needed, \\n line ends, a\n"
        "header line; times are UTC, ISO 8601 with microseconds and Z; an empty cell is no\n"
        "value. audit.jsonl is one canonical JSON event per line (sorted keys, no spaces);\n"
        "an event's hash is the SHA-256 of the canonical JSON of its seq, at, actor, action,\n"
        "object, details (as canonical JSON text) and prev_hash; the last line is the chain\n"
        "head when the pack was made. The audit events are those of this subject only, so\n"
        "two events link directly only when their seq numbers are consecutive.\n"
        "Open the CSV files as text: a cell starting with =, + or @ is data, not a formula.\n"
    )


def _chain_head_line(sink: Sink, head: dict[str, Any]) -> None:
    sink.text(json_line({"chain_head": head}))


# --- a campaign's pack -----------------------------------------------------------------------


def find_campaign(session: Session, name_or_id: str) -> ReviewCampaign:
    """The campaign by name, else by id when the text is a number."""
    try:
        return reviews.find_campaign(session, name_or_id)
    except NotFoundError:
        if name_or_id.isdigit():
            found = session.get(ReviewCampaign, int(name_or_id))
            if found is not None:
                return found
        raise


def export_campaign(
    session: Session,
    actor: Operator,
    *,
    campaign: str,
    out: IO[bytes],
    progress: Progress | None = None,
) -> Pack:
    """Write the campaign's evidence pack to `out` (seekable), reading one window at a time."""
    _consistent(session)
    record = find_campaign(session, campaign)
    client = session.get(Client, record.client_id)
    assert client is not None
    _may_export(session, actor, client)
    key = _signing_key(session)
    head = _head(session)
    zf = _Zip(out, _zip_time(head["at"]))
    campaign_id = ident(record)
    total = 2 * record.item_count + _remediation_count(session, record)
    advance = _Rows(total, progress)
    with zf.csv("population.csv") as sink:
        _population(session, record, client, sink, advance)
    with zf.csv("decisions.csv") as sink:
        _decisions(session, record, sink, advance)
    with zf.csv("remediation.csv") as sink:
        _remediation(session, record, sink, advance)
    zf.text("summary.txt", _campaign_summary(session, record, client, head))
    with zf.entry("audit.jsonl") as sink:
        _audit_lines(session, col(AuditEvent.object) == f"review:{record.name}", sink)
        _chain_head_line(sink, head)
    subject = {"campaign": record.name, "campaign_id": campaign_id, "client": client.name}
    extra = {"population": {"item_count": record.item_count, "sha256": record.population_sha256}}
    return _finish(
        session,
        zf,
        kind="campaign",
        subject=subject,
        head=head,
        key=key,
        extra=extra,
        rows=advance.done,
    )


def _suspended_at(at: datetime) -> sa.ColumnElement[bool]:
    """Whether the outer grant row was suspended by a pause in force at `at`."""
    return sa.exists().where(
        col(PausedGrant.grant_id) == col(Grant.id),
        col(ClientPause.id) == col(PausedGrant.pause_id),
        col(ClientPause.paused_at) <= at,
        sa.or_(col(ClientPause.resumed_at).is_(None), col(ClientPause.resumed_at) > at),
    )


def _population(
    session: Session,
    record: ReviewCampaign,
    client: Client,
    sink: Sink,
    advance: Callable[[int], None],
) -> None:
    """Every item by grant id, with the reviewer it went to at start."""
    first = aliased(Operator)
    state = sa.case(
        (_suspended_at(record.created_at), GrantState.SUSPENDED.value),
        else_=GrantState.ACTIVE.value,
    )
    columns: list[Any] = [
        col(ReviewItem.grant_id),
        col(ReviewItem.id),
        col(Contractor.external_id),
        col(Contractor.name),
        col(Contractor.directory_uid),
        sa.literal(client.name),
        col(Project.name),
        col(DatasetScope.name),
        col(DatasetScope.sensitivity),
        col(Grant.access),
        state,
        first.name,
    ]
    query = (
        sa.select(*columns)
        .select_from(ReviewItem)
        .join(Grant, col(Grant.id) == col(ReviewItem.grant_id))
        .join(Contractor, col(Contractor.id) == col(Grant.contractor_id))
        .join(DatasetScope, col(DatasetScope.id) == col(Grant.scope_id))
        .join(Project, col(Project.id) == col(DatasetScope.project_id))
        .join(
            first,
            col(first.id)
            == sa.func.coalesce(col(ReviewItem.original_reviewer_id), col(ReviewItem.reviewer_id)),
        )
        .where(col(ReviewItem.campaign_id) == ident(record))
        .order_by(col(ReviewItem.grant_id))
    )
    _plain(session, query, sink, advance)


@dataclass
class _ItemRow:
    values: list[Any]
    grant_id: int
    decided_at: datetime | None
    starts_at: datetime | None


def _decision_query(campaigns: sa.ColumnElement[bool]) -> sa.Select[Any]:
    reviewer, original, decider, requester = (aliased(Operator) for _ in range(4))
    columns: list[Any] = [
        col(ReviewCampaign.name),
        col(ReviewItem.id),
        col(ReviewItem.grant_id),
        col(Contractor.external_id),
        col(Project.name),
        col(DatasetScope.name),
        col(Grant.access),
        reviewer.name,
        original.name,
        col(ReviewItem.decision),
        col(ReviewItem.shorten_days),
        col(ReviewItem.reason),
        decider.name,
        col(ReviewItem.decided_at),
        col(ReviewItem.outcome),
        requester.name,
        col(Grant.starts_at),
        col(Contractor.contract_end),
        col(ReviewCampaign.close_started_at),
        col(ReviewCampaign.id),
        col(ReviewCampaign.client_id),
        col(ReviewCampaign.created_at),
    ]
    return (
        review_views.item_joins(
            sa.select(*columns)
            .select_from(ReviewItem)
            .join(ReviewCampaign, col(ReviewCampaign.id) == col(ReviewItem.campaign_id)),
            reviewer=reviewer,
            requester=requester,
            decider=decider,
        )
        .outerjoin(original, col(original.id) == col(ReviewItem.original_reviewer_id))
        .where(campaigns)
    )


def _decisions(
    session: Session,
    record: ReviewCampaign,
    sink: Sink,
    advance: Callable[[int], None],
) -> None:
    """Every item of the campaign by item id (undecided ones too, their outcome says what
    close did), with the helpers a reviewer saw as of the decision."""
    _decision_rows(session, col(ReviewItem.campaign_id) == ident(record), sink, advance)


def _decision_rows(
    session: Session,
    campaigns: sa.ColumnElement[bool],
    sink: Sink,
    advance: Callable[[int], None],
) -> None:
    query, _ = _raw_times(_decision_query(campaigns).order_by(col(ReviewItem.id)))
    for raw in _stream(session, query):
        # The window's grants, by the item id range it spans (it is ordered by item id): what
        # the helpers' queries read, rather than a bound value per grant id. Items of other
        # campaigns in the range only add grants no row looks up; no campaign condition, so
        # SQLite reads the range by rowid rather than the campaign's whole index.
        window = (
            sa.select(col(ReviewItem.grant_id))
            .where(col(ReviewItem.id).between(raw[0][1], raw[-1][1]))
            .correlate(None)  # its own review_item, also inside previous_decisions' query
        )
        _write_decisions(session, raw, sink, window)
        advance(len(raw))


def _write_decisions(
    session: Session, raw: Sequence[Any], sink: Sink, window: sa.Select[Any]
) -> None:
    """A window of _decision_query's rows (times raw) with their helpers: three queries over
    the window's grants, then each row's cells as text."""
    times = sink.times
    approvals = review_views.approvals(session, window)
    confirmed = _confirmed(session, {(r[19], r[2]) for r in raw})
    previous = _previous(session, raw, times, window)
    day = timedelta(days=1)
    out: list[list[Any]] = []
    for (
        campaign,
        item_id,
        grant_id,
        contractor,
        project,
        scope,
        access,
        reviewer,
        original,
        decision,
        days,
        reason,
        decider,
        decided_raw,
        outcome,
        requester,
        starts_raw,
        contract_end,
        close_raw,
        campaign_id,
        _client_id,
        _created_at,
    ) in raw:
        if decided_raw is not None:
            decided_at = times.at(decided_raw)
            assert decided_at is not None
            shown = [a for when, a in approvals.get(grant_id, ()) if when <= decided_at]
            starts_at = times.at(starts_raw)
            helpers = [
                requester,
                ";".join(dict.fromkeys(shown)),
                (decided_at - starts_at) // day if starts_at is not None else None,
                contract_end.isoformat() if contract_end is not None else None,
                previous.get((campaign_id, grant_id)),
            ]
        else:
            helpers = [None] * 5
        done = confirmed.get((campaign_id, grant_id))
        out.append(
            [
                campaign,
                item_id,
                grant_id,
                contractor,
                project,
                scope,
                access,
                reviewer,
                original,
                decision,
                days,
                reason,
                decider,
                times.text(decided_raw),
                outcome,
                *helpers,
                times.text(close_raw) if outcome in _APPLIED else None,
                utc_text(done) if done is not None else None,
            ]
        )
    sink.plain_rows(out)


def _confirmed(session: Session, pairs: set[tuple[int, int]]) -> dict[tuple[int, int], datetime]:
    """When the directory confirmed each (campaign, grant)'s removals: the last done_at of its
    remove_member ops tagged with the campaign, once all of them are done."""
    if not pairs:
        return {}
    campaigns = sorted({c for c, _ in pairs})
    grants = sorted({g for _, g in pairs})
    found: dict[tuple[int, int], datetime] = {}
    for campaign_id, grant_id, n, done, last in session.execute(
        sa.select(
            col(OutboxOp.review_campaign_id),
            col(OutboxOp.grant_id),
            sa.func.count(),
            sa.func.count().filter(col(OutboxOp.state) == OutboxState.DONE),
            sa.func.max(col(OutboxOp.done_at)),
        )
        .where(
            col(OutboxOp.review_campaign_id).in_(campaigns),
            col(OutboxOp.grant_id).between(grants[0], grants[-1]),  # pairs picks
            col(OutboxOp.operation) == OutboxOperation.REMOVE_MEMBER,
        )
        .group_by(col(OutboxOp.review_campaign_id), col(OutboxOp.grant_id))
    ):
        if n == done and last is not None:
            found[(campaign_id, grant_id)] = _aware(last)
    return found


def _aware(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite's max() of a timestamp comes back as its text
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _previous(
    session: Session, raw: Sequence[Any], times: Times, window: sa.Select[Any]
) -> dict[tuple[int, int], str]:
    """Each item's grant's decision (or close outcome) in the latest earlier campaign of the
    same client: the 'previous decision' helper, as the reviewer saw it. `window`: the
    query of the window's grant ids."""
    found: dict[tuple[int, int], str] = {}
    campaigns = {(r[19], r[20], r[21]) for r in raw}
    for campaign_id, client_id, created_at in sorted(campaigns, key=lambda c: c[0]):
        at = times.at(created_at)
        assert at is not None
        decisions = review_views.previous_decisions(
            session,
            window,
            client_id=client_id,
            campaign_id=campaign_id,
            created_at=at,
        )
        for grant_id, decision in decisions.items():
            found[(campaign_id, grant_id)] = decision
    return found


def _remediated(record: ReviewCampaign) -> sa.ColumnElement[bool]:
    """The items whose grant this campaign's close ended (revoked, or shortened into the past)."""
    return sa.and_(
        col(ReviewItem.campaign_id) == ident(record),
        sa.or_(
            col(ReviewItem.outcome).in_(_ENDING),
            sa.and_(
                col(ReviewItem.outcome) == ItemOutcome.SHORTENED,
                col(Grant.ended_at).is_not(None),
                col(Grant.ended_at) == record.close_started_at,
            ),
        ),
    )


def _remediation_count(session: Session, record: ReviewCampaign) -> int:
    return int(
        session.execute(
            sa.select(sa.func.count())
            .select_from(ReviewItem)
            .join(Grant, col(Grant.id) == col(ReviewItem.grant_id))
            .where(_remediated(record))
        ).scalar_one()
    )


def _remediation(
    session: Session, record: ReviewCampaign, sink: Sink, advance: Callable[[int], None]
) -> None:
    """Each grant the close ended, then one line per directory removal and its read-back
    (one line with no target when no directory had to be told)."""
    query = (
        sa.select(
            col(Grant.id),
            col(Contractor.external_id),
            col(Contractor.directory_uid),
            col(Project.name),
            col(DatasetScope.name),
            col(Grant.access),
            col(ReviewItem.outcome),
            col(Grant.state),
            col(Grant.ended_at),
            col(Grant.end_reason),
        )
        .select_from(ReviewItem)
        .join(Grant, col(Grant.id) == col(ReviewItem.grant_id))
        .join(Contractor, col(Contractor.id) == col(Grant.contractor_id))
        .join(DatasetScope, col(DatasetScope.id) == col(Grant.scope_id))
        .join(Project, col(Project.id) == col(DatasetScope.project_id))
        .where(_remediated(record))
        .order_by(col(Grant.id))
    )
    raw, times = _raw_times(query)  # ended_at
    for rows in _stream(session, raw):
        ops: dict[int, list[Any]] = {}
        if rows:
            for op in session.execute(
                sa.select(
                    col(OutboxOp.grant_id),
                    col(DirectoryTarget.name),
                    col(OutboxOp.group_dn),
                    col(OutboxOp.state),
                    col(OutboxOp.done_at),
                    col(OutboxOp.last_error),
                )
                .join(DirectoryTarget, col(DirectoryTarget.id) == col(OutboxOp.target_id))
                .where(
                    col(OutboxOp.review_campaign_id) == ident(record),
                    col(OutboxOp.operation) == OutboxOperation.REMOVE_MEMBER,
                    col(OutboxOp.grant_id).between(rows[0][0], rows[-1][0]),  # by id
                )
                .order_by(
                    col(OutboxOp.grant_id),
                    col(DirectoryTarget.name),
                    col(OutboxOp.group_dn),
                    col(OutboxOp.id),
                )
            ):
                ops.setdefault(op[0], []).append(op[1:])
        none = [(None,) * 5]
        sink.plain_rows(
            [(*r, *op) for r in rows for op in ops.get(r[0], none)],
            (*times, 13),  # and done_at
        )
        advance(len(rows))


def _campaign_summary(
    session: Session, record: ReviewCampaign, client: Client, head: dict[str, Any]
) -> str:
    campaign_id = ident(record)
    names = _names(session, {record.created_by, record.close_started_by})
    outcomes = dict(
        session.execute(
            sa.select(col(ReviewItem.outcome), sa.func.count())
            .where(col(ReviewItem.campaign_id) == campaign_id)
            .group_by(col(ReviewItem.outcome))
        ).all()
    )
    decisions = dict(
        session.execute(
            sa.select(col(ReviewItem.decision), sa.func.count())
            .where(col(ReviewItem.campaign_id) == campaign_id)
            .group_by(col(ReviewItem.decision))
        ).all()
    )
    per_reviewer = session.execute(
        sa.select(col(Operator.name), sa.func.count(), sa.func.count(col(ReviewItem.decision)))
        .join(Operator, col(Operator.id) == col(ReviewItem.reviewer_id))
        .where(col(ReviewItem.campaign_id) == campaign_id)
        .group_by(col(Operator.name))
        .order_by(col(Operator.name))
    ).all()
    reassigned = session.execute(
        sa.select(sa.func.count()).where(
            col(ReviewItem.campaign_id) == campaign_id,
            col(ReviewItem.original_reviewer_id).is_not(None),
        )
    ).scalar_one()
    directory: Convergence | None = (
        review_close.directory_state(session, campaign_id)
        if record.close_started_at is not None
        else None
    )
    scope = "/".join(
        p for p in (client.name, _project_name(session, record), _scope_name(session, record)) if p
    )
    no_answer = outcomes.get(ItemOutcome.NO_ANSWER_KEPT, 0) + outcomes.get(
        ItemOutcome.NO_ANSWER_REVOKED, 0
    )
    undecided = decisions.get(None, 0)
    lines = [
        f"campaign: {record.name} (id {campaign_id})",
        f"client: {client.name}",
        f"population: {scope}"
        + (f", sensitivity {record.sensitivity}" if record.sensitivity else ""),
        f"state: {record.state}",
        f"started: {audit.format_time(record.created_at)} by {names.get(record.created_by)}",
        f"due: {audit.format_time(record.due_at)}",
        f"close started: {_time_or_dash(record.close_started_at)}"
        + (
            f" by {names.get(record.close_started_by)}"
            if record.close_started_by is not None
            else ""
        ),
        f"closed: {_time_or_dash(record.closed_at)}",
        f"items: {record.item_count}",
        f"population_sha256: {record.population_sha256}",
        "  (SHA-256 of the sorted grant ids, comma-joined; see README.txt step 5)",
        f"if no answer: {record.if_no_answer}",
        f"unanswered items: {undecided}"
        + (
            f" (at close: {no_answer} no answer, "
            f"{outcomes.get(ItemOutcome.NO_ANSWER_REVOKED, 0)} revoked, "
            f"{outcomes.get(ItemOutcome.NO_ANSWER_KEPT, 0)} kept; "
            f"{outcomes.get(ItemOutcome.ENDED_BEFORE_DECISION, 0)} ended before decision)"
            if record.close_started_at is not None
            else " (not closed yet: the no-answer action is not applied)"
        ),
        "decisions: "
        + ", ".join(f"{d} {decisions.get(d, 0)}" for d in ("keep", "revoke", "shorten")),
        "outcomes: "
        + (
            ", ".join(f"{o} {n}" for o, n in sorted((str(o), n) for o, n in outcomes.items() if o))
            or "-"
        ),
        f"reassigned items: {reassigned}",
        "reviewers (items decided/assigned):",
        *(f"  {name}: {decided}/{total}" for name, total, decided in per_reviewer),
        "directory: " + (directory.in_words() if directory is not None else "not closed yet"),
        f"despite drift: {record.despite_drift or '-'}",
        f"as of audit event #{head['seq']} ({head['at'] or 'no events'}), hash {head['hash']}",
    ]
    return "\n".join(lines) + "\n"


def _project_name(session: Session, record: ReviewCampaign) -> str | None:
    project = session.get(Project, record.project_id) if record.project_id else None
    return project.name if project is not None else None


def _scope_name(session: Session, record: ReviewCampaign) -> str | None:
    scope = session.get(DatasetScope, record.scope_id) if record.scope_id else None
    return scope.name if scope is not None else None


def _time_or_dash(at: datetime | None) -> str:
    return audit.format_time(at) if at is not None else "-"


# --- a client's pack over a period -----------------------------------------------------------


@dataclass(frozen=True)
class Period:
    start: datetime  # the first day at 00:00 UTC
    end: datetime  # the day after the last one, 00:00 UTC (exclusive)
    first: date
    last: date


def period(first: str | date, last: str | date) -> Period:
    """The days from `first` to `last`, both included, in UTC."""
    day_from = validation.iso_date(first, "--from date")
    day_to = validation.iso_date(last, "--to date")
    if day_to < day_from:
        raise InputError(f"the period ends ({day_to}) before it starts ({day_from})")
    start = datetime.combine(day_from, time(), UTC)
    return Period(
        start, datetime.combine(day_to, time(), UTC) + timedelta(days=1), day_from, day_to
    )


def _client_grants(client: Client, span: Period) -> sa.ColumnElement[bool]:
    """Grants of the client that were live (active or suspended) at some time in the period."""
    return sa.and_(
        col(Project.client_id) == ident(client),
        col(Grant.starts_at).is_not(None),
        col(Grant.starts_at) < span.end,
        sa.or_(col(Grant.ended_at).is_(None), col(Grant.ended_at) >= span.start),
    )


def _grant_ids(client: Client, span: Period) -> sa.Select[Any]:
    return (
        sa.select(col(Grant.id))
        .join(DatasetScope, col(DatasetScope.id) == col(Grant.scope_id))
        .join(Project, col(Project.id) == col(DatasetScope.project_id))
        .where(_client_grants(client, span))
    )


def _client_campaigns(client: Client, span: Period) -> sa.ColumnElement[bool]:
    return sa.and_(
        col(ReviewCampaign.client_id) == ident(client),
        col(ReviewCampaign.created_at) < span.end,
        sa.or_(
            col(ReviewCampaign.closed_at).is_(None), col(ReviewCampaign.closed_at) >= span.start
        ),
    )


def _client_pauses(client: Client, span: Period) -> sa.ColumnElement[bool]:
    return sa.and_(
        col(ClientPause.client_id) == ident(client),
        col(ClientPause.paused_at) < span.end,
        sa.or_(col(ClientPause.resumed_at).is_(None), col(ClientPause.resumed_at) >= span.start),
    )


def export_client(
    session: Session,
    actor: Operator,
    *,
    client: str,
    first: str | date,
    last: str | date,
    out: IO[bytes],
    progress: Progress | None = None,
) -> Pack:
    """Write the client's evidence pack for the period to `out` (seekable)."""
    _consistent(session)
    span = period(first, last)
    found = catalog.find_client(session, client)
    _may_export(session, actor, found)
    key = _signing_key(session)
    head = _head(session)
    zf = _Zip(out, _zip_time(head["at"]))
    ids = _grant_ids(found, span)
    n_grants = int(
        session.execute(sa.select(sa.func.count()).select_from(ids.subquery())).scalar_one()
    )
    n_items = int(
        session.execute(
            sa.select(sa.func.count())
            .select_from(ReviewItem)
            .join(ReviewCampaign, col(ReviewCampaign.id) == col(ReviewItem.campaign_id))
            .where(_client_campaigns(found, span))
        ).scalar_one()
    )
    total = 2 * n_grants + n_items
    advance = _Rows(total, progress)
    with zf.csv("grants.csv") as sink:
        _grants(session, found, span, sink, advance)
    with zf.csv("grant-history.csv") as sink:
        _histories(session, found, span, sink, advance)
    with zf.csv("pauses.csv") as sink:
        pauses = _pauses(session, found, span, sink)
    with zf.csv("campaigns.csv") as sink:
        campaigns = _campaigns(session, found, span, sink)
    with zf.csv("decisions.csv") as sink:
        in_period = col(ReviewItem.campaign_id).in_(
            sa.select(col(ReviewCampaign.id)).where(_client_campaigns(found, span))
        )
        _decision_rows(session, in_period, sink, advance)
    events = _client_events(session, found, span)
    with zf.entry("audit.jsonl") as sink:
        n_events = _audit_lines(session, events, sink)
        _chain_head_line(sink, head)
    zf.text(
        "summary.txt",
        _client_summary(session, found, span, head, n_grants, pauses, campaigns, n_events),
    )
    subject = {"client": found.name, "from": span.first.isoformat(), "to": span.last.isoformat()}
    return _finish(
        session,
        zf,
        kind="client-period",
        subject=subject,
        head=head,
        key=key,
        extra={},
        rows=advance.done,
    )


def _grant_query(client: Client, span: Period) -> sa.Select[Any]:
    requester, ender = aliased(Operator), aliased(Operator)
    columns: list[Any] = [
        col(Grant.id),
        col(Contractor.external_id),
        col(Contractor.name),
        col(Contractor.directory_uid),
        col(Project.name),
        col(DatasetScope.name),
        col(DatasetScope.sensitivity),
        col(Grant.access),
        col(Grant.reason),
        requester.name,
        col(Grant.requested_at),
        col(Grant.requested_days),
        col(Grant.starts_at),
        col(Grant.expires_at),
        col(Grant.state),
        col(Grant.ended_at),
        ender.name,
        col(Grant.end_reason),
    ]
    return (
        sa.select(*columns)
        .select_from(Grant)
        .join(Contractor, col(Contractor.id) == col(Grant.contractor_id))
        .join(DatasetScope, col(DatasetScope.id) == col(Grant.scope_id))
        .join(Project, col(Project.id) == col(DatasetScope.project_id))
        .join(requester, col(requester.id) == col(Grant.requested_by))
        .outerjoin(ender, col(ender.id) == col(Grant.ended_by))
        .where(_client_grants(client, span))
    )


def _windows(session: Session, query: Any) -> Iterator[Sequence[Any]]:
    """The rows of a query whose first column is the grant id, by id, a window at a time."""
    return _stream(session, query.order_by(col(Grant.id)))


def _grants(
    session: Session, client: Client, span: Period, sink: Sink, advance: Callable[[int], None]
) -> None:
    _plain(session, _grant_query(client, span).order_by(col(Grant.id)), sink, advance)


_EVENT_ORDER = {
    "requested": 0,
    "approval": 1,
    "denial": 1,
    "extension_requested": 2,
    "extension_approved": 3,
    "extension_denied": 3,
    "extension_void": 3,
    "suspended": 4,
    "resumed": 5,
    "ended": 6,
}


def _histories(
    session: Session, client: Client, span: Period, sink: Sink, advance: Callable[[int], None]
) -> None:
    """Each grant's history as one line per event, by grant then time: requested, each
    approval or denial (round 0 is the request, N the Nth extension), extensions, each
    pause that suspended it and its resume, and its end with why. One streamed query of the
    grants; for each window of them, one query per kind of event over the window's id range
    (times raw, each distinct one parsed once)."""
    query, _ = _raw_times(
        sa.select(
            col(Grant.id),
            col(Grant.requested_at),
            col(Grant.requested_by),
            col(Grant.requested_days),
            col(Grant.reason),
            col(Grant.state),
            col(Grant.ended_at),
            col(Grant.ended_by),
            col(Grant.end_reason),
        )
        .join(DatasetScope, col(DatasetScope.id) == col(Grant.scope_id))
        .join(Project, col(Project.id) == col(DatasetScope.project_id))
        .where(_client_grants(client, span))
    )
    at = sink.times.at
    for rows in _windows(session, query):
        ids = {r[0] for r in rows}
        lo, hi = rows[0][0], rows[-1][0]  # by id: a range, not a bound value per id
        events: list[tuple[int, Any, int, str, int | None, str]] = []  # times never None
        people: set[int | None] = set()
        for gid, req_at, req_by, days, reason, state, ended_at, ended_by, why in rows:
            events.append((gid, at(req_at), 0, "requested", req_by, f"{days} days: {reason}"))
            people.add(req_by)
            if ended_at is not None:
                events.append((gid, at(ended_at), 6, "ended", ended_by, f"{state}: {why or ''}"))
                people.add(ended_by)
        approvals, _ = _raw_times(
            sa.select(
                col(Approval.grant_id),
                col(Approval.round),
                col(Approval.approver_id),
                col(Approval.decision),
                col(Approval.totp_step),
                col(Approval.decided_at),
            ).where(col(Approval.grant_id).between(lo, hi))
        )
        for gid, rnd, approver, decision, step, when in session.execute(approvals):
            if gid not in ids:
                continue
            kind = "approval" if decision == Decision.APPROVE else "denial"
            detail = f"round {rnd}" + (f", totp step {step}" if step is not None else "")
            events.append((gid, at(when), 1, kind, approver, detail))
            people.add(approver)
        extensions, _ = _raw_times(
            sa.select(
                col(GrantExtension.grant_id),
                col(GrantExtension.round),
                col(GrantExtension.days),
                col(GrantExtension.reason),
                col(GrantExtension.state),
                col(GrantExtension.requested_by),
                col(GrantExtension.requested_at),
                col(GrantExtension.decided_at),
                col(GrantExtension.previous_expires_at),
                col(GrantExtension.new_expires_at),
            ).where(col(GrantExtension.grant_id).between(lo, hi))
        )
        for gid, rnd, days, reason, state, by, when, decided, prev, new in session.execute(
            extensions
        ):
            if gid not in ids:
                continue
            events.append(
                (gid, at(when), 2, "extension_requested", by, f"round {rnd}, {days} days: {reason}")
            )
            people.add(by)
            if decided is not None and state != "requested":
                moved = (
                    f", expiry {_time_or_dash(at(prev))} -> {_time_or_dash(at(new))}" if new else ""
                )
                events.append(
                    (gid, at(decided), 3, f"extension_{state}", None, f"round {rnd}{moved}")
                )
        pauses, _ = _raw_times(
            sa.select(
                col(PausedGrant.grant_id),
                col(ClientPause.id),
                col(PausedGrant.prior_state),
                col(ClientPause.paused_at),
                col(ClientPause.paused_by),
                col(ClientPause.resumed_at),
                col(ClientPause.resumed_by),
            )
            .join(ClientPause, col(ClientPause.id) == col(PausedGrant.pause_id))
            .where(col(PausedGrant.grant_id).between(lo, hi))
        )
        for gid, pause_id, prior, paused_at, paused_by, resumed_at, resumed_by in session.execute(
            pauses
        ):
            if gid not in ids:
                continue
            events.append(
                (gid, at(paused_at), 4, "suspended", paused_by, f"pause {pause_id} (was {prior})")
            )
            people.update((paused_by, resumed_by))
            if resumed_at is not None:
                events.append((gid, at(resumed_at), 5, "resumed", resumed_by, f"pause {pause_id}"))
        names = _names(session, people)
        events.sort(key=lambda e: (e[0], e[1], e[2], e[3], e[5]))
        sink.plain_rows(
            [
                (gid, when, kind, names.get(by) if by is not None else None, detail)
                for gid, when, _rank, kind, by, detail in events
            ],
            (1,),
        )
        advance(len(rows))


def _pauses(session: Session, client: Client, span: Period, sink: Sink) -> int:
    """Every pause in force at some time in the period, with how far the directory followed
    its removals and (after a resume) its additions, and when it last confirmed one."""
    rows = (
        session.execute(
            sa.select(ClientPause).where(_client_pauses(client, span)).order_by(col(ClientPause.id))
        )
        .scalars()
        .all()
    )
    names = _names(session, {p.paused_by for p in rows} | {p.resumed_by for p in rows})
    for p in rows:
        pause_id = ident(p)
        suspended = session.execute(
            sa.select(sa.func.count()).where(col(PausedGrant.pause_id) == pause_id)
        ).scalar_one()
        removals = convergence_of(
            session,
            col(OutboxOp.pause_id) == pause_id,
            OutboxOperation.REMOVE_MEMBER,
            later=sa.and_(
                col(OutboxOp.grant_id).in_(paused_ids(pause_id)),
                sa.or_(col(OutboxOp.pause_id).is_(None), col(OutboxOp.pause_id) != pause_id),
            ),
        )
        additions = (
            convergence_of(session, col(OutboxOp.pause_id) == pause_id, OutboxOperation.ADD_MEMBER)
            if p.resumed_at is not None
            else None
        )
        sink.row(
            [
                pause_id,
                p.reason,
                names.get(p.paused_by),
                p.paused_at,
                names.get(p.resumed_by) if p.resumed_by is not None else None,
                p.resumed_at,
                suspended,
                *_convergence_cells(session, pause_id, removals),
                *_convergence_cells(session, pause_id, additions),
            ]
        )
    return len(rows)


def _convergence_cells(session: Session, pause_id: int, state: Convergence | None) -> list[Any]:
    if state is None:
        return [None] * 7
    last = session.execute(
        sa.select(sa.func.max(col(OutboxOp.done_at))).where(
            col(OutboxOp.pause_id) == pause_id,
            col(OutboxOp.operation) == state.operation,
            col(OutboxOp.state) == OutboxState.DONE,
        )
    ).scalar_one()
    return [
        state.queued,
        state.confirmed + state.superseded,
        state.pending + state.later_pending,
        state.failed,
        sum(n for _, n in state.cancelled),
        state.complete,
        _aware(last) if state.complete and last is not None else None,
    ]


def _campaigns(session: Session, client: Client, span: Period, sink: Sink) -> int:
    creator, closer = aliased(Operator), aliased(Operator)
    project, scope = aliased(Project), aliased(DatasetScope)
    columns: list[Any] = [
        col(ReviewCampaign.id),
        col(ReviewCampaign.name),
        sa.literal(client.name),
        project.name,
        scope.name,
        col(ReviewCampaign.sensitivity),
        creator.name,
        col(ReviewCampaign.created_at),
        col(ReviewCampaign.due_at),
        col(ReviewCampaign.if_no_answer),
        col(ReviewCampaign.state),
        col(ReviewCampaign.item_count),
        col(ReviewCampaign.population_sha256),
        closer.name,
        col(ReviewCampaign.close_started_at),
        col(ReviewCampaign.closed_at),
    ]
    rows = session.execute(
        sa.select(*columns)
        .join(creator, col(creator.id) == col(ReviewCampaign.created_by))
        .outerjoin(closer, col(closer.id) == col(ReviewCampaign.close_started_by))
        .outerjoin(project, col(project.id) == col(ReviewCampaign.project_id))
        .outerjoin(scope, col(scope.id) == col(ReviewCampaign.scope_id))
        .where(_client_campaigns(client, span))
        .order_by(col(ReviewCampaign.id))
    ).all()
    sink.rows_of(rows)
    return len(rows)


def _prefix(column: Any, prefix: str) -> sa.ColumnElement[bool]:
    return col(column).startswith(prefix, autoescape=True)


def _client_events(session: Session, client: Client, span: Period) -> sa.ColumnElement[bool]:
    """The audit slice: events of the period about the client, its projects and scopes, its
    pauses and its campaigns; and every event of the pack's grants, whenever (their history
    in grant-history.csv is backed by these)."""
    campaign_names = [
        f"review:{n}"
        for n in session.execute(
            sa.select(col(ReviewCampaign.name)).where(_client_campaigns(client, span))
        ).scalars()
    ]
    grant_objects = sa.select(sa.literal("grant:") + sa.cast(col(Grant.id), sa.String())).where(
        col(Grant.id).in_(_grant_ids(client, span))
    )
    in_period = sa.and_(col(AuditEvent.at) >= span.start, col(AuditEvent.at) < span.end)
    about_client = sa.or_(
        col(AuditEvent.object) == f"client:{client.name}",
        _prefix(AuditEvent.object, f"project:{client.name}/"),
        _prefix(AuditEvent.object, f"scope:{client.name}/"),
        col(AuditEvent.object).in_(campaign_names),
    )
    return sa.or_(sa.and_(in_period, about_client), col(AuditEvent.object).in_(grant_objects))


def _client_summary(
    session: Session,
    client: Client,
    span: Period,
    head: dict[str, Any],
    n_grants: int,
    n_pauses: int,
    n_campaigns: int,
    n_events: int,
) -> str:
    ended = session.execute(
        sa.select(col(Grant.state), sa.func.count())
        .where(col(Grant.id).in_(_grant_ids(client, span)))
        .group_by(col(Grant.state))
        .order_by(col(Grant.state))
    ).all()
    lines = [
        f"client: {client.name} (now {client.status})",
        f"period: {span.first.isoformat()} to {span.last.isoformat()} (UTC, both days included)",
        f"grants live at some time in the period: {n_grants}",
        "  by state now: " + (", ".join(f"{s} {n}" for s, n in ended) or "-"),
        f"pauses in force in the period: {n_pauses}",
        f"access reviews open in the period: {n_campaigns}",
        f"audit events in the slice: {n_events}",
        f"as of audit event #{head['seq']} ({head['at'] or 'no events'}), hash {head['hash']}",
    ]
    return "\n".join(lines) + "\n"
