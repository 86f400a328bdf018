"""The table rows of the audit trail, in the partition ``audit`` of the status table.

=================================  ===========================================================
row key                            row
=================================  ===========================================================
``<inverted ms>-<request hash>``   one operator action; newest first is the table order
``<action's row key>-<outcome>``   one outcome the action reached (``refused``, ``done``):
                                   sorts right after its action's row (see
                                   :mod:`._audit_outcomes`)
``~r-<request hash>``              the request's index row: points at its action's row, so a
                                   retry of the same request finds it (written and deleted in
                                   the same transaction as the action's row)
=================================  ===========================================================

The request hash is that of the action, its first targets and the request id: one request of
one action on one target makes one row, however often it is sent. Every row is only ever
created, then deleted by age: none is replaced or merged.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ._actor import Actor, ActorKind
from ._audit_model import AuditEntry, AuditOutcome
from ._fit import LIST_UNITS, Bounded, dumps, keep
from ._keys import is_record_key, record_row_key
from ._properties import finish, parse_time, row_etag

__all__ = [
    "AUDIT_PARTITION",
    "audit_entity",
    "audit_from",
    "audit_row_key",
    "filter_fields",
    "index_entity",
    "index_key",
    "is_audit_key",
    "person_key",
    "request_hash",
]

AUDIT_PARTITION = "audit"
_INDEX_PREFIX = "~r-"
_ACTOR_NAME_UNITS = 256
"""A display name kept on a row: longer ones are cut (the object id tells people apart)."""


def request_hash(action: str, targets: Sequence[str], request_id: str) -> str:
    """The identity of one request of one action on its targets (32 hex digits)."""
    text = "\n".join((action, *targets, request_id))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def audit_row_key(at: datetime, digest: str) -> str:
    """Inverted time first (newest first), then the request hash: unique per request."""
    return record_row_key(at, digest)


def index_key(digest: str) -> str:
    """The index row of a request."""
    return _INDEX_PREFIX + digest


def is_audit_key(text: str) -> bool:
    """True for a string shaped like an audit row's key (a continuation token decodes to it)."""
    return is_record_key(text)  # the same shape: 13 digits of inverted time, 32 hex digits


def person_key(text: str) -> str:
    """How a name or an object id is compared when the trail is filtered by person."""
    return text.strip().lower()


def index_entity(digest: str, row_key: str) -> dict[str, Any]:
    """The index row of a request, pointing at its action's row."""
    return {"PartitionKey": AUDIT_PARTITION, "RowKey": index_key(digest), "audit_key": row_key}


def filter_fields(entry: AuditEntry) -> dict[str, Any]:
    """The columns a listing filters on: the action, the actor's name and object id in lower
    case (Azure Tables compares exactly)."""
    return {
        "action": entry.action,
        "actor_name_key": person_key(entry.actor.name[:_ACTOR_NAME_UNITS]),
        "actor_object_id_key": person_key(entry.actor.object_id) or None,
    }


def audit_entity(entry: AuditEntry) -> dict[str, Any]:
    """The table entity of an audit entry."""
    actor = entry.actor
    return finish(
        {
            "PartitionKey": AUDIT_PARTITION,
            "RowKey": entry.row_key,
            **filter_fields(entry),
            "actor_kind": actor.kind.value,
            "actor_name": actor.name[:_ACTOR_NAME_UNITS],
            "actor_object_id": actor.object_id,
            "actor_provider": actor.provider,
            "at": entry.at.astimezone(UTC),
            "request_id": entry.request_id,
            "targets": Bounded(dumps(keep(list(entry.targets), limit=LIST_UNITS))),
            "subject": entry.subject,
            "outcome": entry.outcome.value,
            "detail": entry.detail,
            "completed_at": entry.completed_at and entry.completed_at.astimezone(UTC),
        }
    )


def audit_from(row: Mapping[str, Any]) -> AuditEntry:
    """The audit entry of a table row."""
    return AuditEntry(
        row_key=row["RowKey"],
        action=row.get("action", ""),
        actor=Actor(
            kind=ActorKind(row.get("actor_kind", ActorKind.FUNCTION_KEY.value)),
            name=row.get("actor_name", ""),
            object_id=row.get("actor_object_id", ""),
            provider=row.get("actor_provider", ""),
        ),
        at=parse_time(row.get("at")) or datetime.now(UTC),
        request_id=row.get("request_id", ""),
        targets=tuple(json.loads(row.get("targets") or "[]")),
        subject=row.get("subject"),
        outcome=AuditOutcome(row.get("outcome", AuditOutcome.REQUESTED.value)),
        detail=row.get("detail"),
        completed_at=parse_time(row.get("completed_at")),
        etag=row_etag(row),
    )
