"""The loopback HTTP server: ``/api/<route>`` (methods, function keys, replies) and the
extensions' webhooks under ``/runtime/webhooks/<extension>`` (see :mod:`.blob_webhook`)."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

import azure.functions as func

from devtools.local_host.bindings import HttpFunction
from devtools.local_host.easy_auth import EasyAuth
from devtools.local_host.http_reply import HttpReply, json_reply
from devtools.local_host.invocation import invoke

_LOGGER = logging.getLogger(__name__)

ROUTE_PREFIX = "/api/"
WEBHOOK_PREFIX = "/runtime/webhooks/"
# The verbs the Functions host's ExtensionWebHookHandler accepts.
WEBHOOK_METHODS = ("DELETE", "GET", "OPTIONS", "POST")
_HOP_BY_HOP = frozenset({"connection", "content-length", "transfer-encoding", "keep-alive"})


class WebhookHandler(Protocol):
    """An extension's webhook (the blob extension's: :class:`.blob_webhook.BlobWebhook`)."""

    def handle(
        self, method: str, params: Mapping[str, str], headers: Mapping[str, str], body: bytes
    ) -> HttpReply:
        """Answer one request."""
        ...


def _reply_from(response: Any) -> HttpReply:
    if isinstance(response, str):
        response = func.HttpResponse(response)
    if not isinstance(response, func.HttpResponse):
        raise TypeError(f"an HTTP function returned {type(response).__name__}, not HttpResponse")
    headers = [(k, v) for k, v in response.headers.items() if k.lower() not in _HOP_BY_HOP]
    if not any(k.lower() == "content-type" for k, _ in headers):
        headers.append(("Content-Type", f"{response.mimetype}; charset={response.charset}"))
    return HttpReply(response.status_code, tuple(headers), response.get_body())


class HttpDispatcher:
    """Routes one request to its function or webhook, enforcing methods and function keys.

    :param functions: in matching order (more literal segments first).
    :param function_key: when set, FUNCTION/ADMIN routes and the webhooks need it (locally one
        key stands for the function keys, the master key and the extensions' system keys);
        None enforces no keys.
    :keyword webhooks: the extensions' webhooks by extension name (``blobs``).
    :keyword easy_auth: the stand-in for App Service authentication in front of everything
        (``/.auth/*``, principal headers, 401); None: no authentication layer.
    """

    def __init__(
        self,
        functions: Iterable[HttpFunction],
        function_key: str | None,
        *,
        webhooks: Mapping[str, WebhookHandler] | None = None,
        easy_auth: EasyAuth | None = None,
    ) -> None:
        self._functions = tuple(functions)
        self._function_key = function_key
        self._webhooks = dict(webhooks or {})
        self._easy_auth = easy_auth

    def dispatch(
        self, method: str, base_url: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> HttpReply:
        """Run the function whose route matches ``target`` and turn its response into a reply;
        a defect of the local host itself answers a JSON 500 (as the Functions host does) and
        logs its traceback, instead of dropping the connection."""
        try:
            parts = urlsplit(target)
            if self._easy_auth is not None:
                # App Service authentication runs before the Functions host sees a request.
                reply = self._easy_auth.own(method, target, headers)
                if reply is not None:
                    return reply
                headers, reply = self._easy_auth.authenticate(parts.path, headers)
                if reply is not None:
                    return reply
            params = dict(reversed(parse_qsl(parts.query, keep_blank_values=True)))
            if parts.path.lower().startswith(WEBHOOK_PREFIX):
                return self._webhook(method, parts.path, params, headers, body)
            return self._function(
                method,
                base_url + target,
                path=parts.path,
                params=params,
                headers=headers,
                body=body,
            )
        except Exception:
            # The path only: the query string may carry a function key (?code=).
            _LOGGER.exception(
                "local host request failed method=%s path=%s", method, target.split("?", 1)[0]
            )
            return json_reply(500, {"error": "internal server error"})

    def _function(
        self,
        method: str,
        url: str,
        *,
        path: str,
        params: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes,
    ) -> HttpReply:
        if not path.lower().startswith(ROUTE_PREFIX):
            return json_reply(404, {"error": "not found", "path": path})
        route = "/" + path[len(ROUTE_PREFIX) :]
        matches = [(f, m) for f in self._functions if (m := f.compiled.pattern.fullmatch(route))]
        if not matches:
            return json_reply(404, {"error": "not found", "path": path})
        allowed = [(f, m) for f, m in matches if f.methods is None or method in f.methods]
        if not allowed:
            methods = sorted({m for f, _ in matches for m in f.methods or ()})
            return json_reply(
                405, {"error": f"method {method} not allowed"}, ("Allow", ", ".join(methods))
            )
        function, match = allowed[0]
        if function.auth_level != "ANONYMOUS" and not self._key_given(headers, params):
            return json_reply(401, {"error": "a function key is required (x-functions-key)"})
        request = func.HttpRequest(
            method,
            url,
            headers=headers,
            params=dict(params),
            route_params={
                name: unquote(value)
                for group, name in function.compiled.parameters.items()
                if (value := match.group(group)) is not None
            },
            body=body,
        )
        detail = f"trigger=http method={method} path={path}"
        outcome = invoke(
            function.name, function.user_function, detail, **{function.binding_name: request}
        )
        if outcome.succeeded:
            try:
                return _reply_from(outcome.value)
            except TypeError:
                _LOGGER.exception("invalid HTTP response function=%s", function.name)
        return json_reply(500, {"error": "internal server error"})

    def _webhook(
        self,
        method: str,
        path: str,
        params: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes,
    ) -> HttpReply:
        # The host's ExtensionWebHookHandler: the key first (its authorization policy), then
        # the extension by name; the path after the name is the extension's own.
        if method not in WEBHOOK_METHODS:
            return json_reply(
                405,
                {"error": f"method {method} not allowed"},
                ("Allow", ", ".join(WEBHOOK_METHODS)),
            )
        if not self._key_given(headers, params):
            return json_reply(
                401,
                {
                    "error": "a key is required (?code= or x-functions-key): in Azure the "
                    "blobs_extension system key or the master key"
                },
            )
        name = path[len(WEBHOOK_PREFIX) :].split("/", 1)[0].lower()
        handler = self._webhooks.get(name)
        if handler is None:
            return json_reply(404, {"error": "no extension webhook of that name", "path": path})
        return handler.handle(method, params, headers, body)

    def _key_given(self, headers: Mapping[str, str], params: Mapping[str, str]) -> bool:
        if self._function_key is None:
            return True
        given = next((v for k, v in headers.items() if k.lower() == "x-functions-key"), None)
        given = given or params.get("code", "")
        return hmac.compare_digest(given.encode(), self._function_key.encode())


class HttpServer(ThreadingHTTPServer):
    """A threading server whose requests go to one :class:`HttpDispatcher`."""

    # Join request threads on close, so stop() leaves nothing running.
    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple[str, int], dispatcher: HttpDispatcher) -> None:
        super().__init__(address, _RequestHandler)
        self.dispatcher = dispatcher
        self.base_url = f"http://{address[0]}:{self.server_address[1]}"


class _RequestHandler(BaseHTTPRequestHandler):
    server: HttpServer
    timeout = 30  # a silent client cannot hold stop() forever

    def _handle(self) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            reply = json_reply(411, {"error": "send a Content-Length"})
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            reply = self.server.dispatcher.dispatch(
                self.command, self.server.base_url, self.path, dict(self.headers.items()), body
            )
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    # Every method a client may send goes to the dispatcher (405 with Allow, as for PUT); one
    # without a do_ method would get http.server's own 501 page.
    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle  # noqa: N815
    do_TRACE = do_QUERY = _handle  # noqa: N815

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The path without its query string: ?code= carries a function key.
        _LOGGER.debug("http %s %s status=%s", self.command, urlsplit(self.path).path, code)

    def log_message(self, format: str, *args: Any) -> None:
        # Only send_error() gets here now; its text may quote the request line (and a ?code=
        # key), so log the status alone, and keep stderr quiet.
        _LOGGER.debug("http error status=%s", args[0] if args else "-")
