"""An event subscription with a webhook destination: its filter and its retry policy.

Event Grid's rules (Microsoft Learn, "Event Grid message delivery and retry"): 200, 201, 202,
203 or 204 acknowledge a delivery; a webhook's 400, 401, 403 or 413 is not retried (the event
is dead-lettered); anything else, a timeout (30 s) or no connection is retried after 10 s,
30 s, 1 min, 5 min, 10 min, 30 min, 1 h, 3 h, 6 h, then every 12 h, until
``maxDeliveryAttempts`` (1-30) or ``eventTimeToLiveInMinutes`` (1-1440) runs out. The
subject filter is case-insensitive unless ``isSubjectCaseSensitive`` is set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from devtools.event_grid._events import BLOB_CREATED

ACCEPTED = frozenset({200, 201, 202, 203, 204})
NOT_RETRIED = frozenset({400, 401, 403, 413})
RETRY_SCHEDULE: tuple[float, ...] = (10, 30, 60, 300, 600, 1800, 3600, 10800, 21600, 43200)
RESPONSE_TIMEOUT = 30.0


@dataclass(frozen=True)
class Subscription:
    """One webhook subscription (``infra/app/eventsubscription.bicep`` names its values).

    :param name: the subscription's name (sent upper-case in ``aeg-subscription-name``).
    :param endpoint: the webhook URL, with its ``code`` when the host checks keys.
    :param subject_begins_with: ``filter.subjectBeginsWith``.
    :param subject_case_sensitive: ``filter.isSubjectCaseSensitive``.
    :param included_event_types: ``filter.includedEventTypes``.
    :param max_events_per_batch: events per delivery (the Bicep's 1).
    :param max_delivery_attempts: ``retryPolicy.maxDeliveryAttempts``.
    :param event_time_to_live: ``retryPolicy.eventTimeToLiveInMinutes``.
    :param retry_schedule: seconds before each retry; the last repeats.
    :raises ValueError: a value Event Grid would refuse.
    """

    name: str
    endpoint: str
    subject_begins_with: str = ""
    subject_case_sensitive: bool = False
    included_event_types: tuple[str, ...] = (BLOB_CREATED,)
    max_events_per_batch: int = 1
    max_delivery_attempts: int = 30
    event_time_to_live: timedelta = timedelta(minutes=1440)
    retry_schedule: tuple[float, ...] = RETRY_SCHEDULE

    def __post_init__(self) -> None:
        if not 1 <= self.max_events_per_batch <= 5000:
            raise ValueError("max_events_per_batch must be 1-5000")
        if not 1 <= self.max_delivery_attempts <= 30:
            raise ValueError("max_delivery_attempts must be 1-30")
        if not timedelta(minutes=1) <= self.event_time_to_live <= timedelta(minutes=1440):
            raise ValueError("event_time_to_live must be 1-1440 minutes")
        if not self.retry_schedule or min(self.retry_schedule) < 0:
            raise ValueError("retry_schedule needs at least one delay, none negative")

    def matches(self, event: Mapping[str, Any]) -> bool:
        """Whether the filter lets ``event`` through."""
        subject = str(event.get("subject", ""))
        return event.get(
            "eventType"
        ) in self.included_event_types and subject.casefold().startswith(
            self.subject_begins_with.casefold()
        )

    def retry_delay(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed delivery."""
        return self.retry_schedule[min(attempts, len(self.retry_schedule)) - 1]
