"""Entity group transactions of the Table service sent as one hand-made ``$batch`` request.

``TableClient.submit_transaction`` builds the ``multipart/mixed`` body with the ``email``
package and parses the answer in thread pools: most of the CPU of a small transaction. Here the
body is formatted as the REST reference "Performing entity group transactions" shows, sent
through the table client's own pipeline (authentication, retries, timeouts, transport and hooks
stay), and the answer is split at its boundaries. Entities are serialised by the SDK's own
function, and failures are the SDK's own exceptions, built by its own decoder, so callers see
exactly what ``submit_transaction`` raises.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from http.client import HTTPResponse
from typing import Any
from urllib.parse import quote

from azure.core import MatchConditions
from azure.core.exceptions import DecodeError
from azure.core.pipeline.transport._base import BytesIOSocket
from azure.core.rest import HttpRequest, HttpResponse
from azure.core.rest._http_response_impl import RestHttpClientTransportResponse
from azure.core.tracing.decorator import distributed_trace
from azure.data.tables import RequestTooLargeError, TableClient, TableTransactionError, UpdateMode
from azure.data.tables._error import _decode_error, _validate_tablename_error

from .entities import endpoint, entity_url, failure, payload, send

__all__ = ["Operation", "submit"]

Operation = tuple[str, Mapping[str, Any], Mapping[str, Any]]
"""One operation in the SDK's tuple form: kind, entity, keyword options."""

_TOO_LARGE = "The transaction request was too large"
_PART_HEAD = (
    "--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    "Content-ID: {index}\r\n\r\n"
    "{method} {url} HTTP/1.1\r\nAccept: application/json;odata=minimalmetadata\r\n"
    "DataServiceVersion: 3.0\r\n{headers}"
)


# The span the SDK's own method records, so the traces of a file keep their shape.
@distributed_trace(name_of_span="TableClient.submit_transaction")
def submit(table: TableClient, operations: Sequence[Operation]) -> list[str]:
    """Apply ``operations`` all or none in one request; the new ETag of each, in order.

    :raises azure.data.tables.TableTransactionError: an operation failed (its ``index``,
        ``status_code`` and ``error_code``).
    :raises azure.data.tables.RequestTooLargeError: the service refused the size (413).
    :raises azure.core.exceptions.HttpResponseError: the whole request failed (for example
        ``ResourceNotFoundError`` with ``TableNotFound``), as the SDK decodes it.
    """
    if not operations:
        return []
    base = endpoint(table)
    changeset = f"changeset_{uuid.uuid4()}"
    batch = f"batch_{uuid.uuid4()}"
    parts = [
        _part(base, table.table_name, changeset, index, operation)
        for index, operation in enumerate(operations)
    ]
    _same_partition(operations)
    body = (
        f"--{batch}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n"
        f"{''.join(parts)}--{changeset}--\r\n--{batch}--\r\n"
    )
    request = HttpRequest(
        "POST",
        f"{base}/$batch",
        headers={
            "x-ms-version": table.api_version,
            "DataServiceVersion": "3.0",
            "MaxDataServiceVersion": "3.0;NetFx",
            "Content-Type": f"multipart/mixed; boundary={batch}",
            "Accept": "application/json",
        },
        content=body.encode("utf-8"),
    )
    return _etags(table, base, send(table, request), len(operations))


def _same_partition(operations: Sequence[Operation]) -> None:
    first = operations[0][1]["PartitionKey"]
    if any(entity["PartitionKey"] != first for _, entity, *_ in operations):
        raise ValueError("Partition Keys in the batch must all be the same.")


def _part(base: str, table: str, boundary: str, index: int, operation: Operation) -> str:
    kind, entity, options = operation
    method, headers = _method(kind, options)
    url = f"{base}/{quote(table, safe='')}" if kind == "create" else entity_url(base, table, entity)
    head = _PART_HEAD.format(
        boundary=boundary, index=index, method=method, url=url, headers=headers
    )
    if kind == "delete":
        return head + "\r\n"
    body = payload(entity)
    return (
        f"{head}Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        f"{body.decode('utf-8')}\r\n"
    )


def _method(kind: str, options: Mapping[str, Any]) -> tuple[str, str]:
    """The part's HTTP method and its extra header lines, as the SDK's batch sends them."""
    unknown = set(options) - {"mode", "etag", "match_condition"}
    if unknown:
        raise TypeError(f"unsupported options {sorted(unknown)} in a {kind!r} operation")
    if kind == "create":
        # The ETag header is in the answer either way: the entity need not come back.
        return "POST", "Prefer: return-no-content\r\n"
    if kind == "delete":
        return "DELETE", f"If-Match: {_if_match(options)}\r\n"
    mode = options.get("mode", UpdateMode.MERGE)
    if mode not in (UpdateMode.MERGE, UpdateMode.REPLACE):
        raise ValueError(f"Mode type '{mode}' is not supported.")
    method = "PUT" if mode == UpdateMode.REPLACE else "PATCH"
    if kind == "upsert":
        if options.get("etag") or options.get("match_condition"):
            # The SDK would send it with If-Match; nothing here needs it, so refuse it rather
            # than write unconditionally what the caller meant to be conditional.
            raise TypeError("a conditional upsert is not supported: use 'update' with an etag")
        return method, ""
    if kind == "update":
        return method, f"If-Match: {_if_match(options)}\r\n"
    raise ValueError(f"Unexpected operation type '{kind}' in a transaction")


def _if_match(options: Mapping[str, Any]) -> str:
    etag = options.get("etag")
    condition = options.get("match_condition") or MatchConditions.Unconditionally
    if condition == MatchConditions.IfNotModified:
        if not etag:
            raise ValueError("IfNotModified must be specified with etag.")
        return str(etag)
    if condition == MatchConditions.Unconditionally and not etag:
        return "*"
    raise ValueError(f"Unsupported match condition {condition} with etag {etag!r}")


def _etags(table: TableClient, base: str, response: HttpResponse, count: int) -> list[str]:
    if response.status_code == 413:
        raise _decode_error(response, error_message=_TOO_LARGE, error_type=RequestTooLargeError)
    if response.status_code != 202:
        raise failure(table, response)
    answers = _split(response.content)
    for answer in answers:
        if not 200 <= _status(answer) < 300:
            raise _part_error(table, base, response, answer)
    if len(answers) != count:
        raise DecodeError(
            f"the $batch answer holds {len(answers)} operation answers for {count} operations",
            response=response,
        )
    return [_etag(answer) for answer in answers]


def _split(content: bytes) -> list[bytes]:
    """The HTTP answers inside the changeset of a ``$batch`` answer, in order."""
    head, _, rest = content.partition(b"\r\n\r\n")
    boundary = head.split(b"boundary=", 1)[1].split(b"\r\n", 1)[0].strip()
    marker = b"--" + boundary
    answers = []
    for chunk in rest.split(marker)[1:]:
        if chunk.startswith(b"--"):
            break
        answers.append(chunk.partition(b"\r\n\r\n")[2])
    return answers


def _status(answer: bytes) -> int:
    return int(answer[9:12])


def _etag(answer: bytes) -> str:
    headers = answer.partition(b"\r\n\r\n")[0]
    for line in headers.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"etag":
            return value.strip().decode("ascii")
    return ""


def _part_error(table: TableClient, base: str, response: HttpResponse, answer: bytes) -> Exception:
    """The SDK's exception for a failed part, decoded from an azure-core response of it."""
    if _status(answer) == 413:
        return _decode_error(response, error_message=_TOO_LARGE, error_type=RequestTooLargeError)
    internal = HTTPResponse(BytesIOSocket(answer), method="POST")
    internal.begin()
    part = RestHttpClientTransportResponse(
        request=HttpRequest("POST", f"{base}/$batch"), internal_response=internal
    )
    part.read()
    decoded = _decode_error(response=part, error_type=TableTransactionError)
    _validate_tablename_error(decoded, table.table_name)
    return decoded
