"""The rows issue 13 added, replayed like the rest of audit_state: evidence keys, operator
signing keys and review schedules. Each row must have the event that made it and agree with
it; a key or schedule inserted or edited by SQL is named, and so is an event whose row is gone.
(Act signatures are checked cryptographically, by act_signatures.verify_all.)

audit_state folds the events (`fold`, in its one pass over the chain) and calls `check`; the
rows are few (keys, schedules), so each table is read whole, once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from govtui.errors import ConfigurationError
from govtui.models import (
    Client,
    EvidenceKey,
    Operator,
    OperatorKey,
    Project,
    ReviewSchedule,
    ReviewScheduleReviewer,
)
from govtui.security import signing
from govtui.services.audit import format_time

KEY_INIT, KEY_ROTATE = "evidence.key_init", "evidence.key_rotate"
KEY_CREATE, KEY_REGISTER = "operator.key_create", "operator.key_register"
SCHEDULE_ADD, SCHEDULE_REMOVE = "review.schedule_add", "review.schedule_remove"
# Events that move a schedule's next_start_at (a refused start leaves it as it was).
_SCHEDULE_MOVES = ("review.schedule_start", "review.schedule_skipped")
ACTIONS = frozenset(
    (
        KEY_INIT,
        KEY_ROTATE,
        KEY_CREATE,
        KEY_REGISTER,
        SCHEDULE_ADD,
        SCHEDULE_REMOVE,
        *_SCHEDULE_MOVES,
    )
)
# What of a schedule's row its review.schedule_add event records, field for field (the row's
# ids as names: the client, project, reviewers in order, fallback reviewer).
_SCHEDULE_FIELDS = (
    "client",
    "project",
    "sensitivity",
    "reviewers",
    "fallback",
    "every_days",
    "due_in_days",
    "if_no_answer",
)

Add = Callable[[str], None]


@dataclass
class _EvidenceKeySeen:
    action: str  # evidence.key_init or evidence.key_rotate
    made_by: str


@dataclass
class _OperatorKeySeen:
    operator: str
    registered: bool


@dataclass
class EvidenceReplay:
    """What the issue-13 events say the rows should be."""

    evidence_keys: dict[str, _EvidenceKeySeen] = field(default_factory=dict)
    # fingerprint -> who retired it (the actor of the key_rotate naming it as previous)
    evidence_retired: dict[str, str] = field(default_factory=dict)
    operator_keys: dict[str, _OperatorKeySeen] = field(default_factory=dict)
    # fingerprint -> the fingerprint of the key whose key_create retired it
    operator_retired: dict[str, str] = field(default_factory=dict)
    # schedule id -> its fields as the add event recorded them, plus name, created_by and
    # the newest next_start_at
    schedules: dict[int, dict[str, Any]] = field(default_factory=dict)
    removed: dict[int, str] = field(default_factory=dict)  # schedule id -> who removed it

    def fold(self, action: str, actor: str, obj: str, details: dict[str, Any]) -> None:
        """One event of ACTIONS, in chain order."""
        if action in (KEY_INIT, KEY_ROTATE):
            fingerprint = str(details.get("fingerprint"))
            self.evidence_keys[fingerprint] = _EvidenceKeySeen(action, actor)
            previous = details.get("previous")
            if action == KEY_ROTATE and previous is not None:
                self.evidence_retired[str(previous)] = actor
        elif action == KEY_CREATE:
            fingerprint = str(details.get("fingerprint"))
            operator = obj.removeprefix("operator:")
            self.operator_keys[fingerprint] = _OperatorKeySeen(
                operator, details.get("registered") is True
            )
            if details.get("retired") is not None:
                self.operator_retired[str(details["retired"])] = fingerprint
        elif action == KEY_REGISTER:
            made = self.operator_keys.get(str(details.get("fingerprint")))
            if made is not None and made.operator == obj.removeprefix("operator:"):
                made.registered = True
        else:
            self._fold_schedule(action, actor, obj, details)

    def _fold_schedule(self, action: str, actor: str, obj: str, details: dict[str, Any]) -> None:
        schedule_id = details.get("schedule_id")
        if not isinstance(schedule_id, int):
            return
        if action == SCHEDULE_ADD:
            made = {key: details.get(key) for key in _SCHEDULE_FIELDS}
            made["reviewers"] = [str(r) for r in details.get("reviewers") or []]
            made["name"] = obj.removeprefix("review_schedule:")
            made["created_by"] = actor
            made["next_start_at"] = details.get("next_start_at")
            self.schedules[schedule_id] = made
        elif action == SCHEDULE_REMOVE:
            self.removed[schedule_id] = actor
        elif schedule_id in self.schedules and "next_start_at" in details:
            self.schedules[schedule_id]["next_start_at"] = details["next_start_at"]


def check(session: Session, seen: EvidenceReplay, add: Add) -> None:
    names: dict[int, str] = {
        int(op_id): str(name)
        for op_id, name in session.execute(sa.select(Operator.id, Operator.name))  # type: ignore[call-overload]
    }

    def who(op_id: int | None) -> str | None:
        return None if op_id is None else names.get(op_id, f"#{op_id}")

    _check_evidence_keys(session, seen, add, who)
    _check_operator_keys(session, seen, add, who)
    _check_schedules(session, seen, add, who)


def _key_problem(fingerprint: str, pem: str) -> str | None:
    """Why a row's public key does not match its fingerprint column (None: it does)."""
    try:
        actual = signing.fingerprint(signing.load_public(pem))
    except (ConfigurationError, ValueError) as exc:
        return f"its public key does not load ({exc})"
    if actual != fingerprint:
        return f"its public key's fingerprint is {actual!r} (changed by SQL?)"
    return None


def _check_evidence_keys(
    session: Session, seen: EvidenceReplay, add: Add, who: Callable[[int | None], str | None]
) -> None:
    query = sa.select(
        EvidenceKey.fingerprint,
        EvidenceKey.public_key,
        EvidenceKey.created_by,
        EvidenceKey.retired_at,
        EvidenceKey.retired_by,
    ).order_by(EvidenceKey.id)  # type: ignore[call-overload]
    listed: set[str] = set()
    for fingerprint, pem, created_by, retired_at, retired_by in session.execute(query):
        listed.add(fingerprint)
        what = f"evidence key {fingerprint!r}"
        made = seen.evidence_keys.get(fingerprint)
        if made is None:
            add(f"{what} has no {KEY_INIT}/key_rotate event (inserted by SQL?)")
            continue
        problem = _key_problem(fingerprint, pem)
        if problem is not None:
            add(f"{what}: {problem}")
        if who(created_by) != made.made_by:
            add(
                f"{what} was made by {who(created_by)!r}, its {made.action} event says {made.made_by!r}"
            )
        retirer = seen.evidence_retired.get(fingerprint)
        if retired_at is not None and retirer is None:
            add(f"{what} was retired by no {KEY_ROTATE} event")
        elif retired_at is None and retirer is not None:
            add(f"{what} was retired ({KEY_ROTATE}) but is current again")
        elif retirer is not None and who(retired_by) != retirer:
            add(
                f"{what} was retired by {who(retired_by)!r}, its {KEY_ROTATE} event says {retirer!r}"
            )
    for fingerprint in sorted(set(seen.evidence_keys) - listed):
        action = seen.evidence_keys[fingerprint].action
        add(f"evidence key {fingerprint!r} has an {action} event but no row (deleted by SQL?)")


def _check_operator_keys(
    session: Session, seen: EvidenceReplay, add: Add, who: Callable[[int | None], str | None]
) -> None:
    query = sa.select(
        OperatorKey.operator_id,
        OperatorKey.fingerprint,
        OperatorKey.public_key,
        OperatorKey.registered_at,
        OperatorKey.registration_sig,
        OperatorKey.retired_at,
    ).order_by(OperatorKey.id)  # type: ignore[call-overload]
    rows = session.execute(query).all()
    made_at = {str(row[1]): row[3] for row in rows}
    for operator_id, fingerprint, pem, _registered_at, registration, retired_at in rows:
        name = who(operator_id)
        what = f"operator key {fingerprint!r} of operator {name!r}"
        made = seen.operator_keys.get(fingerprint)
        if made is None:
            add(f"{what} has no {KEY_CREATE} event (inserted by SQL?)")
            continue
        if made.operator != name:
            add(f"{what}: its {KEY_CREATE} event made it for {made.operator!r} (changed by SQL?)")
        problem = _key_problem(fingerprint, pem)
        if problem is not None:
            add(f"{what}: {problem}")
        if registration is not None and not made.registered:
            add(f"{what} is registered by no {KEY_CREATE} (registered) or {KEY_REGISTER} event")
        elif registration is None and made.registered:
            add(f"{what} was registered ({KEY_REGISTER}) but its registration is gone")
        successor = seen.operator_retired.get(fingerprint)
        if retired_at is not None and successor is None:
            add(f"{what} was retired by no {KEY_CREATE} event")
        elif retired_at is None and successor is not None:
            add(f"{what} was retired ({KEY_CREATE} of {successor!r}) but is current again")
        elif (
            retired_at is not None
            and successor in made_at
            and format_time(retired_at) != format_time(made_at[str(successor)])
        ):
            # create_key retires the old key at the instant it makes the new one: a later
            # retirement would let the old key's signatures of the meantime pass.
            add(
                f"{what} was retired at {format_time(retired_at)}, not when {KEY_CREATE} "
                f"made {successor!r} ({format_time(made_at[str(successor)])})"
            )
    for fingerprint in sorted(set(seen.operator_keys) - set(made_at)):
        operator = seen.operator_keys[fingerprint].operator
        add(
            f"operator key {fingerprint!r} of operator {operator!r} has an {KEY_CREATE} event "
            "but no row (deleted by SQL?)"
        )


def _check_schedules(
    session: Session, seen: EvidenceReplay, add: Add, who: Callable[[int | None], str | None]
) -> None:
    reviewers: dict[int, list[str]] = {}
    query = sa.select(
        ReviewScheduleReviewer.schedule_id, ReviewScheduleReviewer.operator_id
    ).order_by(ReviewScheduleReviewer.schedule_id, ReviewScheduleReviewer.position)  # type: ignore[call-overload]
    for schedule_id, operator_id in session.execute(query):
        reviewers.setdefault(int(schedule_id), []).append(str(who(operator_id)))
    clients: dict[int, str] = dict(session.execute(sa.select(Client.id, Client.name)).all())  # type: ignore[call-overload]
    projects: dict[int, str] = dict(session.execute(sa.select(Project.id, Project.name)).all())  # type: ignore[call-overload]
    schedule = ReviewSchedule.__table__.c  # type: ignore[attr-defined]
    present: set[int] = set()
    for row in session.execute(sa.select(schedule).order_by(schedule.id)).mappings():
        present.add(int(row["id"]))
        what = f"review schedule {row['name']!r}"
        made = seen.schedules.get(int(row["id"]))
        if made is None:
            add(f"{what} has no {SCHEDULE_ADD} event (inserted by SQL?)")
            continue
        has = {
            "name": row["name"],
            "client": clients.get(row["client_id"], f"#{row['client_id']}"),
            "project": projects.get(row["project_id"], f"#{row['project_id']}")
            if row["project_id"] is not None
            else None,
            "sensitivity": row["sensitivity"],
            "reviewers": reviewers.get(int(row["id"]), []),
            "fallback": who(row["fallback_reviewer_id"]),
            "every_days": row["every_days"],
            "due_in_days": row["due_in_days"],
            "if_no_answer": row["if_no_answer"],
            "created_by": who(row["created_by"]),
            "next_start_at": format_time(row["next_start_at"]),
        }
        for key, value in has.items():
            if value != made.get(key):
                add(
                    f"{what}: {key} is {value!r}, its event says {made.get(key)!r} (changed by SQL?)"
                )
        remover = seen.removed.get(int(row["id"]))
        if row["removed_at"] is not None and remover is None:
            add(f"{what} was removed by no {SCHEDULE_REMOVE} event")
        elif row["removed_at"] is None and remover is not None:
            add(f"{what} was removed ({SCHEDULE_REMOVE}) but is active again")
        elif remover is not None and who(row["removed_by"]) != remover:
            add(f"{what} was removed by {who(row['removed_by'])!r}, its event says {remover!r}")
    for schedule_id in sorted(set(seen.schedules) - present):
        add(
            f"review schedule {seen.schedules[schedule_id]['name']!r} has a {SCHEDULE_ADD} "
            "event but no row (deleted by SQL?)"
        )
