"""The client's calls of recurring export jobs: dequeue, download, ack."""

from __future__ import annotations

import json
import logging
from typing import BinaryIO

import requests

from ._engine import JSON, Calls
from ._failures import parser
from ._models import DequeuedMessage
from ._parsing import https_download_url, normalize_guid, parse_dequeue
from ._text import url_without_query
from ._tracing import log_ids

__all__ = ["ExportCalls"]

_LOGGER = logging.getLogger(__name__)


class ExportCalls(Calls):
    """Dequeue, download, ack: one exported message taken from F&O."""

    def dequeue(self, activity_id: str) -> DequeuedMessage | None:
        """Take the next exported message of a recurring export job; None when there is none.

        :raises ValueError: for an activity id that is not a GUID.
        :raises D365Error: (a subclass of it) when the call fails.
        """
        activity = normalize_guid(activity_id, "activity_id")
        url = f"{self._engine.base_url}/api/connector/dequeue/{activity}"
        context = self._engine.context("dequeue", "GET", url, activity_id=activity)
        parse = parser(context, parse_dequeue)

        def read(response: requests.Response) -> DequeuedMessage | None:
            if response.status_code == 204 or not response.content.strip():
                return None
            return parse(response)

        message, _ = self._engine.call(context, read)
        if message is not None:
            _LOGGER.info(
                "dequeued activity=%s correlation_id=%s",
                activity,
                message.correlation_id,
                extra=log_ids(activity_id=activity),
            )
        return message

    def download(
        self, location: str, destination: BinaryIO, *, chunk_size: int | None = None
    ) -> int:
        """Stream a dequeued message's file into `destination`; returns the bytes written.

        `http://` locations are fetched over https (F&O's load balancer reports plain http).
        A location on F&O's exact origin (scheme, host, port) is fetched with the access
        token; a SAS URL (see :mod:`shared.clients.d365._urls`) without it; anything else is
        refused.
        A retry after a partial download rewinds `destination` when it is seekable.

        :raises D365UntrustedUrlError: the location is neither, before anything is sent.
        :raises D365Error: (a subclass of it) when the download fails.
        """
        try:
            rewritten = https_download_url(location)
        except ValueError:
            rewritten = location  # the policy names what is wrong with it
        url, authorize = self._engine.urls.check_download(
            rewritten, operation="download", what="DownloadLocation"
        )
        context = self._engine.context("download", "GET", url)
        total = self._engine.stream_to(
            context, destination, chunk_size=chunk_size, authorize=authorize
        )
        _LOGGER.info("downloaded url=%s bytes=%d", url_without_query(url), total)
        return total

    def ack(self, activity_id: str, message: DequeuedMessage) -> None:
        """Acknowledge a downloaded message: posts back the dequeue body, as the docs require.

        :raises ValueError: for an activity id that is not a GUID.
        :raises D365Error: (a subclass of it) when the call fails.
        """
        activity = normalize_guid(activity_id, "activity_id")
        body = message.raw or json.dumps(
            {
                "CorrelationId": message.correlation_id,
                "PopReceipt": message.pop_receipt,
                "DownloadLocation": message.download_location,
            }
        )
        url = f"{self._engine.base_url}/api/connector/ack/{activity}"
        context = self._engine.context("ack", "POST", url, activity_id=activity)
        self._engine.call(
            context,
            lambda response: None,
            headers={"Content-Type": JSON},
            data=body.encode("utf-8"),
        )
        _LOGGER.info(
            "acked activity=%s correlation_id=%s",
            activity,
            message.correlation_id,
            extra=log_ids(activity_id=activity),
        )
