"""HTTP plumbing: routing, latency and faults, body reading, recording and writing replies."""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import socket
import ssl
import sys
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qsl, unquote, urlsplit

from ._body import CHUNK, BodyError, read_body
from ._faults import Fault, error_reply, throttle_reply
from ._fno import ODATA_ACTIONS, Call
from ._limits import user_of
from ._models import OPERATIONS, RecordedRequest
from ._replies import Reply, odata_error, text_reply

if TYPE_CHECKING:
    from ._emulator import Emulator

_LOGGER = logging.getLogger(__name__)
_CONNECTOR = r"^(?:/[a-z]{2}(?:-[a-z]{2})?)?/api/connector"
_ROUTES: tuple[tuple[str, str, re.Pattern[str]], ...] = tuple(
    (operation, method, re.compile(pattern, re.IGNORECASE))
    for operation, method, pattern in (
        (
            "oidc",
            "GET",
            r"^/(?P<tenant>[^/]+)/(?P<version>v2\.0/)?\.well-known/openid-configuration$",
        ),
        ("keys", "GET", r"^/(?P<tenant>[^/]+)/discovery(?:/v2\.0)?/keys$"),
        ("token", "POST", r"^/(?P<tenant>[^/]+)/oauth2/(?P<version>v2\.0/)?token$"),
        ("enqueue", "POST", _CONNECTOR + r"/enqueue/(?P<activity>[^/]+)$"),
        ("dequeue", "GET", _CONNECTOR + r"/dequeue/(?P<activity>[^/]+)$"),
        ("ack", "POST", _CONNECTOR + r"/ack/(?P<activity>[^/]+)$"),
        ("download", "GET", _CONNECTOR + r"/download/(?P<correlation>[^/]+)$"),
        ("jobstatus", "GET", _CONNECTOR + r"/jobstatus/(?P<activity>[^/]+)$"),
        ("blob_put", "PUT", r"^/dmf/(?P<blob>[^/]+)$"),
        ("blob_get", "GET", r"^/dmf/(?P<blob>[^/]+)$"),
        (
            "odata",
            "POST",
            r"^/data/DataManagementDefinitionGroups/"
            r"Microsoft\.Dynamics\.DataEntities\.(?P<action>\w+)$",
        ),
    )
)


# Bodies written to disk as they arrive (a file, not a small JSON body).
_SPOOLED = frozenset({"enqueue", "blob_put", "blob_block", "blob_block_list"})
# The blob endpoint's PUTs, told apart by their ``comp`` parameter as Azure does.
_BLOB_PUTS = {"block": "blob_block", "blocklist": "blob_block_list"}


def route(method: str, path: str) -> tuple[str, dict[str, str]] | None:
    """(operation, URL parameters) for a request, None when nothing serves it."""
    for operation, route_method, pattern in _ROUTES:
        match = pattern.match(path)
        if match and method == route_method:
            params = {k: unquote(v or "") for k, v in match.groupdict().items()}
            if operation == "odata":
                return params["action"], params
            return operation, params
    return None


class EmulatorServer(ThreadingHTTPServer):
    """A threading HTTP(S) server whose TLS handshakes run in the worker threads."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], emulator: Emulator, ssl_context: ssl.SSLContext | None
    ) -> None:
        super().__init__(address, RequestHandler)
        self.emulator = emulator
        self.ssl_context = ssl_context

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Wrap the connection in TLS (in this worker thread) before serving it."""
        self.emulator.record_connection()
        if self.ssl_context is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(30)
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            _LOGGER.debug("tls handshake failed client=%s error=%s", client_address, exc)
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Connection errors are part of the game here; log them quietly."""
        _LOGGER.debug("connection error client=%s error=%r", client_address, sys.exc_info()[1])


class RequestHandler(BaseHTTPRequestHandler):
    """Serves one connection (keep-alive) for the emulator."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without this, Nagle + delayed ACK add 40 ms.
    disable_nagle_algorithm = True
    server_version = "D365Emulator/1.0"
    timeout = 60
    server: EmulatorServer
    _OPERATIONS_WITHOUT_FAULTS: ClassVar[frozenset[str]] = frozenset({"oidc", "keys", "token"})

    def do_GET(self) -> None:
        """Serve a GET."""
        self._serve()

    def do_POST(self) -> None:
        """Serve a POST."""
        self._serve()

    def do_PUT(self) -> None:
        """Serve a PUT (nothing answers it but 404)."""
        self._serve()

    def do_DELETE(self) -> None:
        """Serve a DELETE (nothing answers it but 404)."""
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        """Route http.server's access log to logging."""
        _LOGGER.debug("http %s", format % args)

    def finish(self) -> None:
        """Finish quietly when the connection was dropped on purpose or by the client."""
        with contextlib.suppress(OSError):
            super().finish()

    # -- the request pipeline ---------------------------------------------------------------

    def _serve(self) -> None:
        emulator = self.server.emulator
        routed = route(self.command, urlsplit(self.path).path)
        operation = routed[0] if routed else "unknown"
        if operation not in OPERATIONS or operation.startswith("blob_"):
            self._serve_call()
            return
        # F&O's own calls count against the user's service protection limits.
        user = user_of(self.headers)
        refusal = emulator.limits.admit(user, emulator.knobs)
        try:
            if refusal is None:
                self._serve_call()
                return
            reply = throttle_reply(
                emulator.knobs,
                odata=operation in ODATA_ACTIONS,
                message=refusal.message,
                retry_after=refusal.retry_after,
            )
            self._serve_call(refusal=reply)
        finally:
            emulator.limits.done(user, admitted=refusal is None)

    def _serve_call(self, *, refusal: Reply | None = None) -> None:
        emulator = self.server.emulator
        split = urlsplit(self.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        routed = route(self.command, split.path)
        operation, params = routed if routed else ("unknown", {})
        if operation == "blob_put":
            operation = _BLOB_PUTS.get(query.get("comp", ""), operation)
        is_fno = operation in OPERATIONS
        pause = emulator.faults.body_pause(emulator.knobs, operation) if is_fno else 0.0
        if is_fno and refusal is None:
            self._delay(emulator.knobs.latency_ms)
            if emulator.faults.before_body(emulator.knobs, operation) is Fault.DROP_BEFORE_BODY:
                self._record(split.path, query, operation, None, None)
                self._drop()
                return
        try:
            body = read_body(
                self.rfile,
                self.headers,
                spool_dir=emulator.spool_dir if operation in _SPOOLED else None,
                limit=emulator.knobs.max_enqueue_bytes
                if operation == "enqueue"
                else emulator.blobs.body_limit(operation, query),
                pause=pause,
            )
        except BodyError as exc:
            self.close_connection = True
            self._send(text_reply(400, f"Bad request body: {exc}."))
            return
        call = Call(operation, self.command, split.path, query, self.headers, params, body)
        fault = emulator.faults.after_body(emulator.knobs, operation) if is_fno else None
        if refusal is not None:
            fault = None
            if call.body.path is not None:
                call.body.path.unlink(missing_ok=True)
        reply = refusal or self._fault_reply(call, fault) or self._dispatch(call)
        if fault is Fault.DROP_AFTER_BODY:
            self._record(split.path, query, operation, call, None)
            self._drop()
            return
        self._record(split.path, query, operation, call, reply.status)
        self._send(reply)

    def _dispatch(self, call: Call) -> Reply:
        emulator = self.server.emulator
        handlers: dict[str, Callable[[Call], Reply]] = {
            "oidc": emulator.serve_oidc,
            "keys": emulator.serve_keys,
            "token": emulator.serve_token,
            "enqueue": emulator.fno.enqueue,
            "dequeue": emulator.fno.dequeue,
            "ack": emulator.fno.ack,
            "download": emulator.fno.download,
            "jobstatus": emulator.fno.jobstatus,
        }
        handler = handlers.get(call.operation)
        if handler is not None:
            return handler(call)
        if call.operation in _SPOOLED - {"enqueue"}:
            return emulator.blobs.put(
                call.operation, call.params["blob"], call.query, call.headers, call.body
            )
        if call.operation == "blob_get":
            return emulator.blobs.get(call.params["blob"], call.query, call.headers)
        if call.operation in ODATA_ACTIONS:
            return emulator.fno.odata_action(call)
        if call.path.lower().startswith("/data/"):
            return odata_error(
                404, f"No HTTP resource was found that matches the request URI '{call.path}'."
            )
        return text_reply(404, f"Not found: {call.method} {call.path}")

    def _fault_reply(self, call: Call, fault: Fault | None) -> Reply | None:
        if fault not in (Fault.THROTTLE, Fault.ERROR):
            return None
        if call.body.path is not None:
            call.body.path.unlink(missing_ok=True)
        knobs = self.server.emulator.knobs
        if fault is Fault.THROTTLE:
            return throttle_reply(knobs, odata=call.operation in ODATA_ACTIONS)
        return error_reply(knobs)

    # -- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _delay(latency_ms: int) -> None:
        if latency_ms > 0:
            time.sleep(latency_ms / 1000)

    def _send_file(self, handle: Any, mib_per_s: float) -> None:
        """Copy a file to the client, no faster than ``mib_per_s`` when it is set (a WAN link)."""
        if mib_per_s <= 0:
            shutil.copyfileobj(handle, self.wfile, CHUNK)
            return
        started, sent = time.monotonic(), 0
        while chunk := handle.read(CHUNK):
            self.wfile.write(chunk)
            sent += len(chunk)
            ahead = sent / (mib_per_s * 1024 * 1024) - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)

    def _drop(self) -> None:
        """Close the connection without a response (no TLS close_notify: an abrupt EOF)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _record(
        self,
        path: str,
        query: dict[str, str],
        operation: str,
        call: Call | None,
        status: int | None,
    ) -> None:
        headers = {
            k: ("REDACTED" if k.lower() == "authorization" else v) for k, v in self.headers.items()
        }
        body = call.body if call is not None else None
        # The token request carries the client secret: keep its size and digest only.
        data = body.data if body is not None and operation != "token" else None
        self.server.emulator.record(
            RecordedRequest(
                method=self.command,
                path=path,
                query=query,
                headers=headers,
                body_size=body.size if body else 0,
                body_sha256=body.sha256 if body else "",
                body=data,
                operation=operation,
                status=status,
            )
        )

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        length = reply.file.stat().st_size if reply.file is not None else len(reply.body)
        if reply.content_type and (length or reply.file is not None):
            self.send_header("Content-Type", reply.content_type)
        if reply.status != 204:
            self.send_header("Content-Length", str(length))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if reply.file is not None and reply.cut_after is not None:
            with reply.file.open("rb") as handle:
                self.wfile.write(handle.read(reply.cut_after))
            self.wfile.flush()
            self._drop()
        elif reply.file is not None:
            with reply.file.open("rb") as handle:
                self._send_file(handle, self.server.emulator.knobs.download_mib_per_s)
        elif reply.body:
            self.wfile.write(reply.body)
