"""The audit trail's value types: one entry per operator action, with its outcome."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from ._actor import Actor

__all__ = ["AuditEntry", "AuditOutcome"]


class AuditOutcome(StrEnum):
    """How far an operator action got. It only moves forward (requested, refused, done): a
    later attempt of the same request never takes an entry back."""

    REQUESTED = "requested"
    """Written before the action takes any effect; an entry that stays so was begun but its
    end was never recorded (the records it names show what happened; a retry of the same
    request finishes it)."""
    REFUSED = "refused"
    """The action was refused after it began (``detail`` says why); nothing took effect."""
    DONE = "done"
    """The action took effect."""

    @property
    def rank(self) -> int:
        """Its place in the order an entry moves through."""
        return list(AuditOutcome).index(self)


@dataclass(frozen=True)
class AuditEntry:
    """One operator action: who asked, when, with which request id, on what, and how it ended.

    ``action``, ``actor``, ``at``, ``request_id`` and the first ``targets`` are written once
    and never changed; :meth:`shared.tracking.AuditStore.complete` only moves the outcome on
    (and may add a target the action made, e.g. the new version's record key).
    """

    row_key: str
    action: str
    actor: Actor
    at: datetime
    request_id: str
    targets: tuple[str, ...]
    """What the action was asked on (a record key, a line), then what it made."""
    subject: str | None = None
    """What it was asked on, for people to read (a file's blob path)."""
    outcome: AuditOutcome = AuditOutcome.REQUESTED
    detail: str | None = None
    """A refusal's text, or a note on the outcome."""
    completed_at: datetime | None = None
    etag: str = field(default="", compare=False, repr=False)
