"""Conditional single-entity writes of the Table service sent as one hand-made request.

``TableClient.update_entity`` runs the generated serializer and response deserializer: more
CPU than the request itself. Here the entity is serialised by the SDK's own function, the
request goes through the table client's own pipeline (authentication, retries, timeouts,
transport and hooks stay), and failures are decoded by the SDK's own decoder into the
exceptions ``update_entity`` raises (``ResourceModifiedError``, ``ResourceNotFoundError``...).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from azure.core.rest import HttpRequest, HttpResponse
from azure.core.tracing.decorator import distributed_trace
from azure.data.tables import TableClient, UpdateMode
from azure.data.tables._error import _decode_error, _validate_tablename_error
from azure.data.tables._serialize import _add_entity_properties

__all__ = ["endpoint", "entity_url", "failure", "payload", "send", "update"]


@distributed_trace(name_of_span="TableClient.update_entity")
def update(table: TableClient, entity: Mapping[str, Any], *, mode: UpdateMode, etag: str) -> str:
    """Replace (``PUT``) or merge (``PATCH``) a row if unchanged since ``etag``; its new ETag.

    :raises azure.core.exceptions.ResourceModifiedError: the row changed since ``etag``.
    :raises azure.core.exceptions.ResourceNotFoundError: the row or the table is missing.
    """
    if mode not in (UpdateMode.MERGE, UpdateMode.REPLACE):
        raise ValueError(f"Mode type '{mode}' is not supported.")
    if not etag:
        raise ValueError("IfNotModified must be specified with etag.")
    request = HttpRequest(
        "PUT" if mode == UpdateMode.REPLACE else "PATCH",
        entity_url(endpoint(table), table.table_name, entity),
        headers={
            "x-ms-version": table.api_version,
            "DataServiceVersion": "3.0",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "If-Match": etag,
        },
        content=payload(entity),
    )
    response = send(table, request)
    if not 200 <= response.status_code < 300:
        raise failure(table, response)
    return response.headers.get("ETag", "")


def endpoint(table: TableClient) -> str:
    """The account endpoint the SDK's own requests of ``table`` use."""
    # A private attribute of a public class: azure-data-tables is pinned, and the tests of
    # this module fail if it goes.
    return f"{table.scheme}://{table._primary_hostname}"


def entity_url(base: str, table_name: str, entity: Mapping[str, Any]) -> str:
    """The URL of ``entity``'s row: keys quoted as the SDK quotes them."""
    keys = f"{_key('PartitionKey', entity)},{_key('RowKey', entity)}"
    return f"{base}/{quote(table_name, safe='')}({keys})"


def payload(entity: Mapping[str, Any]) -> bytes:
    """The JSON body of ``entity``, typed by the SDK's own serialiser."""
    return json.dumps(_add_entity_properties(entity)).encode("utf-8")


def send(table: TableClient, request: HttpRequest) -> HttpResponse:
    """Send ``request`` through the table client's own pipeline; the answer read."""
    # The generated client's send_request runs the whole pipeline of the table client.
    response = table._client.send_request(request, stream=True)
    response.read()
    return response


def failure(table: TableClient, response: HttpResponse) -> Exception:
    """The SDK's exception for a failed answer about ``table``, as its own decoder builds it."""
    decoded = _decode_error(response)
    _validate_tablename_error(decoded, table.table_name)
    return decoded


def _key(name: str, entity: Mapping[str, Any]) -> str:
    value = entity[name]
    if not isinstance(value, str):
        raise TypeError("PartitionKey or RowKey must be of type string.")
    return f"{name}='{quote(value.replace(chr(39), chr(39) * 2), safe='')}'"
