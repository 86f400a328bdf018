"""Posting to a webhook as Event Grid does: the validation handshake, then event batches."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from devtools.event_grid._events import validation_event
from devtools.event_grid._subscription import ACCEPTED, RESPONSE_TIMEOUT, Subscription

_LOGGER = logging.getLogger(__name__)
_CONNECT_TIMEOUT = 5.0


class EventGridError(RuntimeError):
    """The webhook refused the subscription (its validation handshake failed)."""


@dataclass(frozen=True)
class DeliveryResult:
    """One delivery attempt: the webhook's status, or None when no answer came."""

    status: int | None
    error: str = ""

    @property
    def delivered(self) -> bool:
        """Whether the webhook acknowledged the events."""
        return self.status in ACCEPTED


def endpoint_for_logs(endpoint: str) -> str:
    """The endpoint without its query string, which may carry a key (``code``)."""
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


class WebhookClient:
    """The HTTP side of one subscription: the handshake and the deliveries.

    :param subscription: where to post.
    :keyword session: a ``requests.Session`` to use (closed by :meth:`close` only when ours).
    """

    def __init__(
        self, subscription: Subscription, *, session: requests.Session | None = None
    ) -> None:
        self._subscription = subscription
        self._own_session = session is None
        self._session = session or requests.Session()

    def validate(self, topic: str) -> None:
        """The handshake Event Grid makes when the subscription is created.

        :raises EventGridError: the webhook did not answer 200 with the validation code.
        """
        code = str(uuid.uuid4())
        where = endpoint_for_logs(self._subscription.endpoint)
        try:
            response = self._post([validation_event(topic, code)], "SubscriptionValidation", 0)
        except requests.RequestException as error:
            raise EventGridError(
                f"webhook validation handshake failed for {where}: {type(error).__name__} "
                "(is the host running?)"
            ) from None
        try:
            answered = response.json().get("validationResponse")
        except (ValueError, AttributeError):
            answered = None
        if response.status_code != 200 or answered != code:
            raise EventGridError(
                f"webhook validation handshake failed for {where}: it answered "
                f"{response.status_code} without the validation code (check the key and the "
                "path /runtime/webhooks/blobs)"
            )
        _LOGGER.info("event grid subscription validated name=%s endpoint=%s", self._name, where)

    def deliver(self, events: Sequence[dict[str, Any]], *, delivery_count: int) -> DeliveryResult:
        """Post one batch of events (``delivery_count``: earlier attempts of this batch)."""
        try:
            response = self._post(events, "Notification", delivery_count)
        except requests.RequestException as error:
            return DeliveryResult(None, type(error).__name__)
        return DeliveryResult(response.status_code)

    def close(self) -> None:
        """Close the session when this client opened it."""
        if self._own_session:
            self._session.close()

    @property
    def _name(self) -> str:
        return self._subscription.name

    def _post(
        self, events: Sequence[dict[str, Any]], event_type: str, delivery_count: int
    ) -> requests.Response:
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "aeg-event-type": event_type,
            "aeg-subscription-name": self._name.upper(),
            "aeg-delivery-count": str(delivery_count),
            "aeg-data-version": str(events[0].get("dataVersion", "")),
            "aeg-metadata-version": "1",
        }
        return self._session.post(
            self._subscription.endpoint,
            json=list(events),
            headers=headers,
            timeout=(_CONNECT_TIMEOUT, RESPONSE_TIMEOUT),
        )
