"""The tables. Rules the database itself can hold are written here as constraints."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Column, Index, Text, UniqueConstraint, false, text
from sqlmodel import Field, SQLModel

from govtui.sqltypes import UTCDateTime
from govtui.vocabulary import (
    ENDED_STATES,
    LIVE_STATES,
    SUSPENDABLE_STATES,
    AccessLevel,
    ActKind,
    CampaignState,
    ChangeKind,
    ChangeState,
    ClientStatus,
    ContractorStatus,
    Decision,
    DirectoryFlavour,
    ExtensionState,
    GrantState,
    ItemOutcome,
    OutboxOperation,
    OutboxState,
    ReviewDecision,
    Role,
    Sensitivity,
    values,
    values_of,
)

# The words as plain tuples, for argparse choices and the screens' option lists.
CLIENT_STATUSES = values(ClientStatus)
SENSITIVITIES = values(Sensitivity)
CONTRACTOR_STATUSES = values(ContractorStatus)
ROLES = values(Role)
ACCESS_LEVELS = values(AccessLevel)
GRANT_STATES = values(GrantState)
DECISIONS = values(Decision)
REVIEW_DECISIONS = values(ReviewDecision)
CAMPAIGN_STATES = values(CampaignState)
ITEM_OUTCOMES = values(ItemOutcome)
NO_ANSWERS: tuple[str, ...] = (ReviewDecision.KEEP.value, ReviewDecision.REVOKE.value)
DIRECTORY_FLAVOURS = values(DirectoryFlavour)
OUTBOX_OPERATIONS = values(OutboxOperation)
OUTBOX_STATES = values(OutboxState)


def _sql_list(words: tuple[str, ...]) -> str:
    return ", ".join(f"'{word}'" for word in words)


_ACTIVE, _SUSPENDED = GrantState.ACTIVE.value, GrantState.SUSPENDED.value
# An active grant has its window; a suspended one has it if it was active when a pause
# suspended it, and has none if it was still a request (schema version 2).
GRANT_WINDOW_CHECK = (
    f"(state <> '{_ACTIVE}' OR (starts_at IS NOT NULL AND expires_at IS NOT NULL))"
    f" AND (state <> '{_SUSPENDED}' OR ((starts_at IS NULL) = (expires_at IS NULL)))"
)
GRANT_ENDED_CHECK = f"state NOT IN ({_sql_list(values_of(ENDED_STATES))}) OR ended_at IS NOT NULL"
GRANT_LIVE_WHERE = f"state IN ({_sql_list(values_of(LIVE_STATES))})"


def _in(column: str, words: tuple[str, ...]) -> CheckConstraint:
    return CheckConstraint(f"{column} IN ({_sql_list(words)})", name=f"ck_%(table_name)s_{column}")


def _utc(nullable: bool = True) -> Column[datetime]:
    return Column(UTCDateTime(), nullable=nullable)


class DatabaseIdentity(SQLModel, table=True):
    """The database's random id, made once at `govtui init` (schema version 4): keyring
    entries and the checkpoint are tied to it, not to the URL that happens to name the file."""

    __tablename__ = "database_identity"
    __table_args__ = (CheckConstraint("id = 1", name="ck_database_identity_single"),)
    id: int = Field(default=1, primary_key=True)
    database_id: str
    created_at: datetime = Field(sa_column=_utc(nullable=False))


class SchemaVersion(SQLModel, table=True):
    """One row per applied migration (see govtui.migrations)."""

    __tablename__ = "schema_version"
    version: int = Field(primary_key=True)
    applied_at: datetime = Field(sa_column=_utc(nullable=False))
    description: str


class Client(SQLModel, table=True):
    __tablename__ = "client"
    __table_args__ = (
        _in("status", CLIENT_STATUSES),
        CheckConstraint("name <> ''", name="ck_client_name"),
    )
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    status: str = Field(default="active")
    created_at: datetime = Field(sa_column=_utc(nullable=False))


class Project(SQLModel, table=True):
    __tablename__ = "project"
    __table_args__ = (
        UniqueConstraint("client_id", "name"),
        CheckConstraint("name <> ''", name="ck_project_name"),
    )
    id: int | None = Field(default=None, primary_key=True)
    client_id: int = Field(foreign_key="client.id", index=True)
    name: str
    created_at: datetime = Field(sa_column=_utc(nullable=False))


class DatasetScope(SQLModel, table=True):
    __tablename__ = "dataset_scope"
    __table_args__ = (
        UniqueConstraint("project_id", "name"),
        _in("sensitivity", SENSITIVITIES),
        CheckConstraint("max_grant_days > 0", name="ck_dataset_scope_max_days"),
        CheckConstraint("name <> ''", name="ck_dataset_scope_name"),
    )
    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    name: str
    sensitivity: str
    max_grant_days: int
    created_at: datetime = Field(sa_column=_utc(nullable=False))


class Contractor(SQLModel, table=True):
    __tablename__ = "contractor"
    __table_args__ = (
        _in("status", CONTRACTOR_STATUSES),
        CheckConstraint("external_id <> ''", name="ck_contractor_external_id"),
        CheckConstraint("directory_uid <> ''", name="ck_contractor_directory_uid"),
        Index("ix_contractor_name_id", "name", "id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    external_id: str = Field(unique=True)
    name: str
    email: str
    directory_uid: str = Field(unique=True)
    contract_end: date
    status: str = Field(default="active")
    created_at: datetime = Field(sa_column=_utc(nullable=False))
    updated_at: datetime = Field(sa_column=_utc(nullable=False))


class Operator(SQLModel, table=True):
    __tablename__ = "operator"
    __table_args__ = (CheckConstraint("name <> ''", name="ck_operator_name"),)
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    # TOTP enrolment: the secret itself lives only in the OS keyring.
    totp_enrolled_at: datetime | None = Field(default=None, sa_column=_utc())
    totp_pending_at: datetime | None = Field(default=None, sa_column=_utc())
    # The newest TOTP time step accepted: a code is accepted only for a later step (replay).
    totp_last_step: int | None = None
    totp_failures: int = Field(default=0)
    totp_locked_until: datetime | None = Field(default=None, sa_column=_utc())
    created_at: datetime = Field(sa_column=_utc(nullable=False))
    # Who may act as this operator (schema version 4): the OS login on SQLite, and on
    # PostgreSQL optionally the database role (`session_user`) that authenticates them.
    # A login bound to several operators needs `shared_login` on each of them.
    login: str | None = None
    db_role: str | None = None
    shared_login: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    # A removed operator keeps their row (history points at it) and can no longer act.
    disabled_at: datetime | None = Field(default=None, sa_column=_utc())
    disabled_by: int | None = None
    # The random names of the keyring entries holding the current and the pending TOTP
    # secret: a new secret goes to a new entry before the commit that points at it, so a
    # keyring or commit failure never leaves the row pointing at a secret that is not there.
    totp_secret_ref: str | None = None
    totp_pending_ref: str | None = None
    # An admin's say-so (with their own code) that this operator may enrol, or re-enrol,
    # themself: the secret is made in the operator's own keyring and shown only to them.
    enrol_allowed_by: int | None = None
    enrol_allowed_at: datetime | None = Field(default=None, sa_column=_utc())


class OperatorRole(SQLModel, table=True):
    __tablename__ = "operator_role"
    __table_args__ = (_in("role", ROLES),)
    operator_id: int = Field(foreign_key="operator.id", primary_key=True)
    role: str = Field(primary_key=True)
    # Provenance (schema version 4): the admin who granted it and the second admin who
    # confirmed it with their code, if any; NULL on rows made before version 4.
    granted_by: int | None = None
    confirmed_by: int | None = None
    granted_at: datetime | None = Field(default=None, sa_column=_utc())


class OperatorClient(SQLModel, table=True):
    """The clients an approver may approve for."""

    __tablename__ = "operator_client"
    operator_id: int = Field(foreign_key="operator.id", primary_key=True)
    client_id: int = Field(foreign_key="client.id", primary_key=True, index=True)
    granted_by: int | None = None
    confirmed_by: int | None = None
    granted_at: datetime | None = Field(default=None, sa_column=_utc())


class PrivilegeChange(SQLModel, table=True):
    """A privilege change one admin asked for (their code checked in their own session) that
    a different admin confirms with their own code in theirs; applied only then."""

    __tablename__ = "privilege_change"
    __table_args__ = (
        _in("kind", values(ChangeKind)),
        _in("state", values(ChangeState)),
        Index("ix_privilege_change_state", "state"),
    )
    id: int | None = Field(default=None, primary_key=True)
    kind: str
    operator_id: int = Field(foreign_key="operator.id")
    role: str | None = None
    client_id: int | None = Field(default=None, foreign_key="client.id")
    reason: str | None = None
    requested_by: int = Field(foreign_key="operator.id")
    requested_at: datetime = Field(sa_column=_utc(nullable=False))
    state: str = Field(default="pending")
    decided_by: int | None = Field(default=None, foreign_key="operator.id")
    decided_at: datetime | None = Field(default=None, sa_column=_utc())


class Grant(SQLModel, table=True):
    __tablename__ = "access_grant"  # GRANT is a reserved word in SQL
    __table_args__ = (
        _in("state", GRANT_STATES),
        _in("access", ACCESS_LEVELS),
        CheckConstraint("requested_days > 0", name="ck_access_grant_days"),
        CheckConstraint("reason <> ''", name="ck_access_grant_reason"),
        CheckConstraint(GRANT_WINDOW_CHECK, name="ck_access_grant_window"),
        CheckConstraint(
            GRANT_ENDED_CHECK,
            name="ck_access_grant_ended",
        ),
        Index("ix_access_grant_state_expires", "state", "expires_at"),
        # (scope, state, access): the dashboard's and the blast radius's counts by scope read
        # this index alone (version 7 added access).
        Index("ix_access_grant_scope_state", "scope_id", "state", "access"),
        Index("ix_access_grant_contractor", "contractor_id", "scope_id", "access"),
        # Distinct holders per client in one ordered scan (the dashboard, the blast radius).
        Index("ix_access_grant_holder", "contractor_id", "state", "scope_id"),
        # The grants screen's keyset windows in expiry and state order (version 7): the first
        # 200 of a million rows read from the index instead of sorting them all (6-10 s).
        Index("ix_access_grant_expires_id", "expires_at", "id"),
        Index("ix_access_grant_state_id", "state", "id"),
        # At most one live grant per contractor, scope and access level, even when two
        # requests race past the service's own check.
        Index(
            "ux_access_grant_live",
            "contractor_id",
            "scope_id",
            "access",
            unique=True,
            sqlite_where=text(GRANT_LIVE_WHERE),
            postgresql_where=text(GRANT_LIVE_WHERE),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    contractor_id: int = Field(foreign_key="contractor.id")
    scope_id: int = Field(foreign_key="dataset_scope.id")
    access: str
    state: str = Field(default="requested")
    reason: str
    requested_by: int = Field(foreign_key="operator.id")
    requested_days: int
    requested_at: datetime = Field(sa_column=_utc(nullable=False))
    starts_at: datetime | None = Field(default=None, sa_column=_utc())
    expires_at: datetime | None = Field(default=None, sa_column=_utc())
    ended_at: datetime | None = Field(default=None, sa_column=_utc())
    ended_by: int | None = Field(default=None, foreign_key="operator.id")
    end_reason: str | None = None


class GrantExtension(SQLModel, table=True):
    """A request for more time on an active grant; approved like a new request."""

    __tablename__ = "grant_extension"
    __table_args__ = (
        UniqueConstraint("grant_id", "round"),
        _in("state", values(ExtensionState)),
        CheckConstraint("days > 0", name="ck_grant_extension_days"),
        CheckConstraint("round > 0", name="ck_grant_extension_round"),
        CheckConstraint("reason <> ''", name="ck_grant_extension_reason"),
    )
    id: int | None = Field(default=None, primary_key=True)
    grant_id: int = Field(foreign_key="access_grant.id", index=True)
    round: int  # 1 for the first extension of a grant, 2 for the next ...
    days: int
    reason: str
    state: str = Field(default="requested")
    requested_by: int = Field(foreign_key="operator.id")
    requested_at: datetime = Field(sa_column=_utc(nullable=False))
    decided_at: datetime | None = Field(default=None, sa_column=_utc())
    previous_expires_at: datetime | None = Field(default=None, sa_column=_utc())
    new_expires_at: datetime | None = Field(default=None, sa_column=_utc())


class Approval(SQLModel, table=True):
    """One approver's decision on one round of a grant: round 0 is the request itself,
    round N its Nth extension. Unique per round and approver, so a race cannot double it."""

    __tablename__ = "approval"
    __table_args__ = (
        UniqueConstraint("grant_id", "round", "approver_id"),
        _in("decision", DECISIONS),
    )
    id: int | None = Field(default=None, primary_key=True)
    grant_id: int = Field(foreign_key="access_grant.id", index=True)
    round: int = Field(default=0)
    approver_id: int = Field(foreign_key="operator.id")
    decision: str
    totp_step: int | None = None
    decided_at: datetime = Field(sa_column=_utc(nullable=False))


class ClientPause(SQLModel, table=True):
    __tablename__ = "client_pause"
    __table_args__ = (CheckConstraint("reason <> ''", name="ck_client_pause_reason"),)
    id: int | None = Field(default=None, primary_key=True)
    client_id: int = Field(foreign_key="client.id", index=True)
    reason: str
    paused_by: int = Field(foreign_key="operator.id")
    paused_at: datetime = Field(sa_column=_utc(nullable=False))
    resumed_by: int | None = Field(default=None, foreign_key="operator.id")
    resumed_at: datetime | None = Field(default=None, sa_column=_utc())


class PausedGrant(SQLModel, table=True):
    """Which grants one pause suspended, and the state each had, so resume restores exactly."""

    __tablename__ = "paused_grant"
    __table_args__ = (_in("prior_state", values_of(SUSPENDABLE_STATES)),)
    pause_id: int = Field(foreign_key="client_pause.id", primary_key=True)
    grant_id: int = Field(foreign_key="access_grant.id", primary_key=True, index=True)
    prior_state: str


class OperatorReviewClient(SQLModel, table=True):
    """The clients a reviewer may review for (schema version 5), with provenance as for
    approvers: an access review is independent only if its reviewer was made one properly."""

    __tablename__ = "operator_review_client"
    operator_id: int = Field(foreign_key="operator.id", primary_key=True)
    client_id: int = Field(foreign_key="client.id", primary_key=True, index=True)
    granted_by: int | None = None
    confirmed_by: int | None = None
    granted_at: datetime | None = Field(default=None, sa_column=_utc())


class ReviewCampaign(SQLModel, table=True):
    """A periodic access review of one client's grants (schema version 5). Its population is
    frozen at start: `item_count` items, whose sorted grant ids hash to `population_sha256`."""

    __tablename__ = "review_campaign"
    __table_args__ = (
        _in("state", CAMPAIGN_STATES),
        _in("if_no_answer", NO_ANSWERS),
        CheckConstraint("name <> ''", name="ck_review_campaign_name"),
        _in("sensitivity", SENSITIVITIES),
    )
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    client_id: int = Field(foreign_key="client.id", index=True)
    # The optional narrowing of the population, as given at start.
    project_id: int | None = Field(default=None, foreign_key="project.id")
    scope_id: int | None = Field(default=None, foreign_key="dataset_scope.id")
    sensitivity: str | None = None
    fallback_reviewer_id: int | None = Field(default=None, foreign_key="operator.id")
    due_at: datetime = Field(sa_column=_utc(nullable=False))
    if_no_answer: str
    state: str = Field(default="open")
    item_count: int
    population_sha256: str
    # Started although the client's directory had unconfirmed or failed operations: why.
    despite_drift: str | None = None
    created_by: int = Field(foreign_key="operator.id")
    created_at: datetime = Field(sa_column=_utc(nullable=False))
    close_started_by: int | None = Field(default=None, foreign_key="operator.id")
    close_started_at: datetime | None = Field(default=None, sa_column=_utc())
    closed_at: datetime | None = Field(default=None, sa_column=_utc())
    # The schedule that started it, if one did (schema version 6).
    schedule_id: int | None = Field(default=None, foreign_key="review_schedule.id")


class ReviewReviewer(SQLModel, table=True):
    """The reviewers of a campaign in the order given: an item goes to the first of them who
    is neither its grant's requester nor one of its approvers."""

    __tablename__ = "review_reviewer"
    __table_args__ = (UniqueConstraint("campaign_id", "operator_id"),)
    campaign_id: int = Field(foreign_key="review_campaign.id", primary_key=True)
    position: int = Field(primary_key=True)
    operator_id: int = Field(foreign_key="operator.id")


class ReviewItem(SQLModel, table=True):
    """One grant of a campaign's frozen population, its assigned reviewer and the decision."""

    __tablename__ = "review_item"
    __table_args__ = (
        UniqueConstraint("campaign_id", "grant_id"),
        CheckConstraint(
            f"decision IS NULL OR decision IN ({_sql_list(REVIEW_DECISIONS)})",
            name="ck_review_item_decision",
        ),
        CheckConstraint(
            f"outcome IS NULL OR outcome IN ({_sql_list(ITEM_OUTCOMES)})",
            name="ck_review_item_outcome",
        ),
        # A shortening carries its days and the expiry it asks for; nothing else does.
        CheckConstraint(
            "(decision = 'shorten') = (shorten_days IS NOT NULL AND shorten_until IS NOT NULL)"
            " OR (decision IS NULL AND shorten_days IS NULL AND shorten_until IS NULL)",
            name="ck_review_item_shorten",
        ),
        CheckConstraint("shorten_days IS NULL OR shorten_days > 0", name="ck_review_item_days"),
        CheckConstraint(
            "(decision IS NULL) = (decided_by IS NULL AND decided_at IS NULL AND reason IS NULL)",
            name="ck_review_item_decided",
        ),
        Index("ix_review_item_campaign_reviewer", "campaign_id", "reviewer_id", "decision"),
    )
    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="review_campaign.id")
    grant_id: int = Field(foreign_key="access_grant.id", index=True)
    reviewer_id: int = Field(foreign_key="operator.id")
    decision: str | None = None
    shorten_days: int | None = None
    # decided_at + shorten_days, fixed when decided: close sets expiry to min(current, this).
    shorten_until: datetime | None = Field(default=None, sa_column=_utc())
    reason: str | None = None
    decided_by: int | None = Field(default=None, foreign_key="operator.id")
    decided_at: datetime | None = Field(default=None, sa_column=_utc())
    totp_step: int | None = None  # the code that confirmed a keep or shorten
    outcome: str | None = None  # set by close
    # Who the item went to at start, when it has since been reassigned (schema version 6).
    original_reviewer_id: int | None = Field(default=None, foreign_key="operator.id")


class ReviewSchedule(SQLModel, table=True):
    """A recurring access review (schema version 6): every `every_days` a campaign of the
    same shape starts, due `due_in_days` later; `next_start_at` moves on exactly once per
    start, so two crons starting it at the same time start one campaign."""

    __tablename__ = "review_schedule"
    __table_args__ = (
        _in("if_no_answer", NO_ANSWERS),
        _in("sensitivity", SENSITIVITIES),
        CheckConstraint("name <> ''", name="ck_review_schedule_name"),
        CheckConstraint("every_days > 0", name="ck_review_schedule_every"),
        CheckConstraint("due_in_days > 0", name="ck_review_schedule_due"),
    )
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    client_id: int = Field(foreign_key="client.id", index=True)
    project_id: int | None = Field(default=None, foreign_key="project.id")
    sensitivity: str | None = None
    fallback_reviewer_id: int | None = Field(default=None, foreign_key="operator.id")
    every_days: int
    due_in_days: int
    if_no_answer: str
    next_start_at: datetime = Field(sa_column=_utc(nullable=False))
    created_by: int = Field(foreign_key="operator.id")
    created_at: datetime = Field(sa_column=_utc(nullable=False))
    removed_at: datetime | None = Field(default=None, sa_column=_utc())
    removed_by: int | None = Field(default=None, foreign_key="operator.id")


class ReviewScheduleReviewer(SQLModel, table=True):
    """The reviewers of a schedule's campaigns, in the order given."""

    __tablename__ = "review_schedule_reviewer"
    __table_args__ = (UniqueConstraint("schedule_id", "operator_id"),)
    schedule_id: int = Field(foreign_key="review_schedule.id", primary_key=True)
    position: int = Field(primary_key=True)
    operator_id: int = Field(foreign_key="operator.id")


class EvidenceKey(SQLModel, table=True):
    """A public evidence key (schema version 6): its private half is only in the keyring of
    whoever made it. Retired keys stay listed, so packs and checkpoints they signed still
    verify; at most one key is current (retired_at NULL)."""

    __tablename__ = "evidence_key"
    __table_args__ = (
        # NULLs are distinct in a unique index: the index is on the expression instead,
        # which is the same (true) for every current key.
        Index(
            "ux_evidence_key_current",
            text("(retired_at IS NULL)"),
            unique=True,
            sqlite_where=text("retired_at IS NULL"),
            postgresql_where=text("retired_at IS NULL"),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    fingerprint: str = Field(unique=True)
    public_key: str = Field(sa_column=Column(Text(), nullable=False))  # PEM
    keyring_ref: str  # the random name of its keyring entry
    created_by: int = Field(foreign_key="operator.id")
    created_at: datetime = Field(sa_column=_utc(nullable=False))
    retired_at: datetime | None = Field(default=None, sa_column=_utc())
    retired_by: int | None = Field(default=None, foreign_key="operator.id")


class OperatorKey(SQLModel, table=True):
    """An operator's public signing key (schema version 6), registered at enrolment; the
    registration is signed by the evidence key, so a key inserted by SQL is not trusted."""

    __tablename__ = "operator_key"
    id: int | None = Field(default=None, primary_key=True)
    operator_id: int = Field(foreign_key="operator.id", index=True)
    fingerprint: str = Field(unique=True)
    public_key: str = Field(sa_column=Column(Text(), nullable=False))  # PEM
    keyring_ref: str
    registered_at: datetime = Field(sa_column=_utc(nullable=False))
    evidence_key_id: int | None = Field(default=None, foreign_key="evidence_key.id")
    registration_sig: str | None = None  # base64, by the evidence key, over the registration
    retired_at: datetime | None = Field(default=None, sa_column=_utc())


class ActSignature(SQLModel, table=True):
    """An operator's signature over the canonical statement of one access-adding act they
    confirmed (schema version 6): an approval round, a resume, a privilege change, a review's
    keep or shorten. `subject` names the row it vouches for (e.g. `approval:GRANT:ROUND`);
    verification rebuilds the statement from the rows, so a row changed after signing fails."""

    __tablename__ = "act_signature"
    __table_args__ = (
        _in("kind", values(ActKind)),
        UniqueConstraint("kind", "subject", "operator_id"),
        Index("ix_act_signature_subject", "subject"),
    )
    id: int | None = Field(default=None, primary_key=True)
    kind: str
    subject: str
    operator_id: int = Field(foreign_key="operator.id")
    operator_key_id: int = Field(foreign_key="operator_key.id")
    statement: str = Field(sa_column=Column(Text(), nullable=False))
    signature: str  # base64
    signed_at: datetime = Field(sa_column=_utc(nullable=False))


class DirectoryTarget(SQLModel, table=True):
    """An LDAP / AD to keep in step; the bind secret is in the OS keyring, never here."""

    __tablename__ = "directory_target"
    __table_args__ = (_in("flavour", DIRECTORY_FLAVOURS),)
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    url: str
    bind_dn: str
    users_base: str
    groups_base: str
    flavour: str = Field(default="openldap")
    starttls: bool = Field(default=False)
    ca_file: str | None = None
    group_template: str = Field(default="cn={client}-{project}-{scope}-{access}")
    create_groups: bool = Field(default=True)
    max_attempts: int = Field(default=8)
    created_at: datetime = Field(sa_column=_utc(nullable=False))
    # Schema version 3. The name the server's certificate must carry when the URL names an
    # address or an alias (None: the URL's host).
    tls_name: str | None = None
    # Set only by `directory add --insecure-plaintext`: a bind password sent in clear text.
    insecure_plaintext: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    # Active Directory only: groupType of groups govtui creates (None: global security) and
    # the sAMAccountName template (None: the cn template's value).
    ad_group_type: int | None = None
    sam_template: str | None = None
    # A disabled target gets no operations; its open ones were cancelled with the reason.
    disabled_at: datetime | None = Field(default=None, sa_column=_utc())
    disabled_reason: str | None = None


class GroupMapping(SQLModel, table=True):
    """An explicit (scope, access) → group DN that overrides the target's template."""

    __tablename__ = "group_mapping"
    __table_args__ = (_in("access", ACCESS_LEVELS),)
    target_id: int = Field(foreign_key="directory_target.id", primary_key=True)
    scope_id: int = Field(foreign_key="dataset_scope.id", primary_key=True)
    access: str = Field(primary_key=True)
    group_dn: str


class OutboxOp(SQLModel, table=True):
    __tablename__ = "outbox_op"
    __table_args__ = (
        _in("operation", OUTBOX_OPERATIONS),
        _in("state", OUTBOX_STATES),
        Index("ix_outbox_op_state_next", "state", "next_attempt_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    target_id: int = Field(foreign_key="directory_target.id")
    grant_id: int | None = Field(default=None, foreign_key="access_grant.id")
    # The pause or resume that queued it, so a pause can say when the directory has converged.
    pause_id: int | None = Field(default=None, foreign_key="client_pause.id", index=True)
    # The access review whose close queued it (schema version 5), for the same reason.
    review_campaign_id: int | None = Field(
        default=None, foreign_key="review_campaign.id", index=True
    )
    operation: str
    group_dn: str | None = None  # None for disable_account
    # The contractor's entry is looked up by uid under the target's users base at sync time;
    # the DN found is kept for the evidence.
    directory_uid: str
    user_dn: str | None = None
    state: str = Field(default="pending")
    attempts: int = Field(default=0)
    next_attempt_at: datetime = Field(sa_column=_utc(nullable=False))
    last_error: str | None = None
    created_at: datetime = Field(sa_column=_utc(nullable=False))
    done_at: datetime | None = Field(default=None, sa_column=_utc())


class AuditEvent(SQLModel, table=True):
    """One link of the hash chain: hash = SHA-256 of the canonical JSON of the other fields."""

    __tablename__ = "audit_event"
    __table_args__ = (CheckConstraint("seq > 0", name="ck_audit_event_seq"),)
    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    at: datetime = Field(sa_column=_utc(nullable=False))
    actor: str
    action: str
    object: str
    details: str = Field(sa_column=Column(Text, nullable=False))
    prev_hash: str
    hash: str = Field(unique=True)


class AuditHead(SQLModel, table=True):
    """The newest link, one row; locking it serialises appends so seq stays contiguous."""

    __tablename__ = "audit_head"
    __table_args__ = (CheckConstraint("id = 1", name="ck_audit_head_single"),)
    id: int = Field(default=1, primary_key=True)
    seq: int = Field(default=0)
    hash: str
