"""Entity queries of the Table service read with one hand-made ``GET`` per page.

``TableClient.query_entities`` runs every row through the generated deserializer and
``strptime``: about 130 µs of CPU a row, against about 9 µs for ``json.loads`` and
``datetime.fromisoformat``. Here each page is one request through the table client's own
pipeline (authentication, retries, timeouts, transport and hooks stay), the filter's parameters
are substituted by the SDK's own function, rows become the SDK's ``TableEntity`` with its value
types and metadata, and failures are the SDK's own exceptions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

from azure.core.rest import HttpRequest
from azure.data.tables import EdmType, EntityProperty, TableClient, TableEntity
from azure.data.tables._deserialize import (
    _ENTITY_TO_PYTHON_CONVERSIONS,
    TablesEntityDatetime,
    url_quote,
)
from azure.data.tables._serialize import _parameter_filter_substitution

from .entities import endpoint, failure, send

__all__ = ["query"]

_NEXT = ("NextPartitionKey", "NextRowKey")
_TYPE = "@odata.type"
_KNOWN = frozenset({"PartitionKey", "RowKey", "Timestamp"})
_AS_IS = frozenset({EdmType.STRING.value, EdmType.INT32.value})


def query(
    table: TableClient,
    query_filter: str,
    *,
    parameters: Mapping[str, Any] | None = None,
    select: list[str] | None = None,
    results_per_page: int | None = None,
) -> Iterator[TableEntity]:
    """The rows matching ``query_filter``, as ``TableClient.query_entities`` yields them.

    Pages are fetched lazily, one request each, following the service's continuation.

    :param query_filter: an OData filter whose ``@name`` placeholders take ``parameters``.
    :keyword parameters: the values of the placeholders, substituted as the SDK does.
    :keyword select: the properties to return (all by default).
    :keyword results_per_page: the most rows one request returns.
    :raises azure.core.exceptions.HttpResponseError: a request failed (for example
        ``ResourceNotFoundError`` with ``TableNotFound``), as the SDK decodes it.
    """
    options = {"$filter": _parameter_filter_substitution(dict(parameters or {}), query_filter)}
    if select:
        options["$select"] = ",".join(select)
    if results_per_page is not None:
        options["$top"] = str(results_per_page)
    url = f"{endpoint(table)}/{quote(table.table_name, safe='')}()"
    headers = {
        "x-ms-version": table.api_version,
        "DataServiceVersion": "3.0",
        "Accept": "application/json;odata=minimalmetadata",
    }
    after: dict[str, str] = {}
    while True:
        query_string = "&".join(f"{k}={quote(v, safe='')}" for k, v in {**options, **after}.items())
        response = send(table, HttpRequest("GET", f"{url}?{query_string}", headers=headers))
        if response.status_code != 200:
            raise failure(table, response)
        yield from map(_entity, json.loads(response.content)["value"])
        after = {
            name: response.headers[f"x-ms-continuation-{name}"]
            for name in _NEXT
            if response.headers.get(f"x-ms-continuation-{name}")
        }
        if not after:
            return


def _entity(row: dict[str, Any]) -> TableEntity:
    """The SDK's entity of one row of the answer (as ``_convert_to_entity`` makes it)."""
    entity = TableEntity()
    odata: dict[str, Any] = {}
    for key in ("PartitionKey", "RowKey"):
        if key in row:
            entity[key] = row[key]
    for name, value in row.items():
        if name in _KNOWN or name.endswith(_TYPE):
            continue
        if name.startswith("odata."):
            odata[name[6:]] = value
            continue
        edm = row.get(name + _TYPE)
        # Untyped values (strings, Int32, booleans, plain doubles) stay as JSON reads them; the
        # service always annotates Int64, so the SDK's guess for a large untyped int never runs.
        entity[name] = value if edm is None else _value(value, edm)
    etag = odata.pop("etag", None)
    odata.pop("metadata", None)
    timestamp = row.get("Timestamp")
    if timestamp:
        etag = etag or "W/\"datetime'" + url_quote(timestamp) + "'\""
        timestamp = _datetime(timestamp)
    odata.update({"etag": etag, "timestamp": timestamp})
    entity._metadata = odata  # where the SDK keeps an entity's metadata
    return entity


def _value(value: Any, edm: str) -> Any:
    if edm in _AS_IS:
        return value
    convert = _CONVERSIONS.get(edm)
    return EntityProperty(edm, value) if convert is None else convert(value)


def _datetime(value: str) -> TablesEntityDatetime:
    """The SDK's datetime of an ``Edm.DateTime`` value (its text kept, as the SDK keeps it)."""
    # Python 3.11 reads the service's 7-digit fractions (truncated to 6, as the SDK does) and Z.
    moment = TablesEntityDatetime.fromisoformat(value)
    moment._service_value = value  # what tables_service_value answers
    return moment


_CONVERSIONS = {**_ENTITY_TO_PYTHON_CONVERSIONS, EdmType.DATETIME: _datetime}
