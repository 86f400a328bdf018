"""Whether a delivered blob version may go to F&O: its name, route, company, size."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from azure.storage.blob import BlobClient, BlobProperties

from shared import telemetry
from shared.config import (
    API_PACKAGE,
    ImportRoute,
    ImportRoutes,
    RejectReason,
    RouteMatch,
    RoutingError,
)
from shared.flows.policies import EnqueuePolicy
from shared.flows.source_blob import fingerprint, resubmit_fields, stamp
from shared.tracking import TrackedFile, TrackingState, TrackingStore

__all__ = ["Admission"]

_LOGGER = logging.getLogger(__name__)


class Admission:
    """Checks a blob version against its route, and records a refused one as ``Rejected``.

    :param store: the tracking store.
    :param routes: the route table.
    :keyword policy: the size limits.
    :keyword clock: the time source (UTC).
    """

    def __init__(
        self,
        store: TrackingStore,
        routes: ImportRoutes,
        *,
        policy: EnqueuePolicy,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._routes = routes
        self._policy = policy
        self._clock = clock

    def check(self, props: BlobProperties) -> RouteMatch:
        """The version's route and company.

        :raises RoutingError: no route takes it, or it is empty or too large.
        """
        match = self._routes.resolve(props.name)
        if props.size == 0:
            raise RoutingError(
                RejectReason.EMPTY_FILE,
                props.name,
                f"{props.name!r} is empty (0 bytes); F&O would import nothing. Upload the "
                "file again with its content.",
            )
        problem = self._size_problem(match.route, props.name, props.size)
        if problem:
            raise RoutingError(RejectReason.TOO_LARGE, props.name, problem)
        return match

    def _size_problem(self, route: ImportRoute, name: str, size: int) -> str | None:
        """Why a file is too large for its route's API, None when it is not.

        An enqueue route's limit is ``max_bytes`` (else MAX_FILE_BYTES); a file over it of an
        ``on_too_large`` route, and any file of a package route, has the package path's own
        limit: a package route's ``max_bytes``, else ``package_max_bytes`` (50,000 blocks).
        """
        enqueue_limit = route.max_bytes or self._policy.default_max_bytes
        if not route.uses_package_api:
            if size <= enqueue_limit:
                return None
            if not route.on_too_large:
                return (
                    f"{name!r} is {size:,} bytes, over the {enqueue_limit:,}-byte limit of "
                    f"route {route.name!r}. F&O's enqueue endpoint refuses large files "
                    "(413); split the file, or import it through the data management package "
                    "API; or raise max_bytes on the route if your environment accepts it."
                )
        own_limit = route.max_bytes if route.uses_package_api else None
        limit = own_limit or self._policy.package_max_bytes
        if size <= limit:
            return None
        why = (
            "its max_bytes; raise max_bytes on the route, or split the data into smaller packages"
            if own_limit
            else "a package goes to F&O's storage in at most 50,000 blocks of 4 MiB; split the "
            "data into smaller packages"
        )
        return (
            f"{name!r} is {size:,} bytes, over the {limit:,}-byte limit of the data management "
            f"package API on route {route.name!r} ({why})."
        )

    def reject(self, blob: BlobClient, props: BlobProperties, exc: RoutingError) -> TrackedFile:
        """Record a refused version as ``Rejected`` (once), with the reason on its blob."""
        now = self._clock()
        claim = self._store.claim(
            props.name,
            props.etag,
            modified_at=props.last_modified,
            received_at=now,
            state=TrackingState.REJECTED,
            size=props.size,
            reject_reason=exc.reason.value,
            last_error=str(exc),
            completed_at=now,
            fingerprint=fingerprint(props),
            **resubmit_fields(props),
        )
        record = claim.record
        if claim.created:
            _LOGGER.warning(
                "rejected blob=%s reason=%s record=%s: %s",
                props.name,
                exc.reason.value,
                record.record_id,
                exc,
                extra=telemetry.record_ids(record, event="file_finished"),
            )
            telemetry.record_outcome(record.state.value, record.route)
            stamp(blob, record, etag=props.etag, metadata=props.metadata)
        return record

    def claim_fields(self, route: ImportRoute, size: int) -> dict[str, Any]:
        """Claim fields of a file that takes the package path from the start."""
        if route.uses_package_api:
            return {"api": API_PACKAGE, "definition_group": route.definition_group}
        limit = route.max_bytes or self._policy.default_max_bytes
        if route.on_too_large and size > limit:
            return {
                "api": API_PACKAGE,
                "definition_group": route.definition_group,
                "api_note": (
                    f"{size:,} bytes, over the route's {limit:,}-byte enqueue limit: imported "
                    f"through the package API into {route.definition_group!r} (on_too_large)"
                ),
            }
        return {}
