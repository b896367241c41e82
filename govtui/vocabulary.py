"""The fixed words of the domain: states, levels, roles and operations, each stored as its
value. The lowest layer: the models generate their CHECK constraints from these, so the
database and the code cannot disagree about them."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal


class GrantState(StrEnum):
    REQUESTED = "requested"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    EXPIRED = "expired"
    REVOKED = "revoked"
    DENIED = "denied"


# Tuples, not sets: their order is the order of the generated SQL, which must not change.
# A live grant blocks a second one for the same contractor, scope and level.
LIVE_STATES: tuple[GrantState, ...] = (
    GrantState.REQUESTED,
    GrantState.ACTIVE,
    GrantState.SUSPENDED,
)
# An active or suspended grant is (or may still be) in its directory groups: a suspended
# grant's removal may still be pending.
IN_DIRECTORY_STATES: tuple[GrantState, ...] = (GrantState.ACTIVE, GrantState.SUSPENDED)
ENDED_STATES: tuple[GrantState, ...] = (GrantState.EXPIRED, GrantState.REVOKED, GrantState.DENIED)
# What a pause suspends, and so the prior states it records.
SUSPENDABLE_STATES: tuple[GrantState, ...] = (GrantState.REQUESTED, GrantState.ACTIVE)


class ExtensionState(StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    DENIED = "denied"
    VOID = "void"


class AccessLevel(StrEnum):
    READ = "read"
    LABEL = "label"
    WRITE = "write"


class Role(StrEnum):
    REQUESTER = "requester"
    APPROVER = "approver"
    REVIEWER = "reviewer"
    ADMIN = "admin"


# The same words as literal types, for callers that name a role in code ("admin").
RoleName = Literal["requester", "approver", "reviewer", "admin"]


class Sensitivity(StrEnum):
    INTERNAL = "internal"
    CONFIDENTIAL = "confidential"
    RESTRICTED = "restricted"


class ClientStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"


class ContractorStatus(StrEnum):
    ACTIVE = "active"
    OFFBOARDED = "offboarded"


class Decision(StrEnum):
    APPROVE = "approve"
    DENY = "deny"


class ReviewDecision(StrEnum):
    """A reviewer's decision on one item of an access review (schema version 5)."""

    KEEP = "keep"
    REVOKE = "revoke"
    SHORTEN = "shorten"


# What close does with the items nobody decided: keep them, or revoke them.
NoAnswer = Literal["keep", "revoke"]


class CampaignState(StrEnum):
    OPEN = "open"
    # Close has applied the decisions; the directory has not confirmed every removal yet.
    CLOSING = "closing"
    CLOSED = "closed"


class ItemOutcome(StrEnum):
    """What close did with one item, recorded on it when the campaign closes."""

    KEPT = "kept"
    REVOKED = "revoked"
    SHORTENED = "shortened"
    # The grant had ended (revoked, expired, offboarded) before anyone decided: no decision.
    ENDED_BEFORE_DECISION = "ended_before_decision"
    NO_ANSWER_KEPT = "no_answer_kept"
    NO_ANSWER_REVOKED = "no_answer_revoked"


class DirectoryFlavour(StrEnum):
    OPENLDAP = "openldap"
    AD = "ad"


class OutboxOperation(StrEnum):
    ADD_MEMBER = "add_member"
    REMOVE_MEMBER = "remove_member"
    DISABLE_ACCOUNT = "disable_account"


class OutboxState(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"
    # Never applied, on purpose: its target was disabled or removed (schema version 3).
    CANCELLED = "cancelled"


class ChangeKind(StrEnum):
    """A privilege change that waits for a second admin (schema version 4)."""

    ROLE_ADD = "role_add"
    ROLE_REMOVE = "role_remove"
    APPROVES_ADD = "approves_add"
    OPERATOR_REMOVE = "operator_remove"
    TOTP_RESET = "totp_reset"
    REVIEWS_ADD = "reviews_add"  # schema version 5


class ChangeState(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class ActKind(StrEnum):
    """An access-adding act an operator signs with their own key (schema version 6)."""

    APPROVE = "approve"  # a grant's request or extension round
    RESUME = "resume"
    PRIVILEGE = (
        "privilege"  # a role, approves or reviews link, an operator added, a change confirmed
    )
    REVIEW_KEEP = "review_keep"
    REVIEW_SHORTEN = "review_shorten"


def values(enum: type[StrEnum]) -> tuple[str, ...]:
    """The stored words of an enum, in declaration order."""
    return tuple(member.value for member in enum)


def values_of(members: tuple[StrEnum, ...]) -> tuple[str, ...]:
    """The stored words of some members, in the order given."""
    return tuple(member.value for member in members)
