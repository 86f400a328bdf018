"""A small local Functions host: runs a v2 app's own function objects from their bindings.

Azure Functions Core Tools cannot be installed here, so this host stands in for `func start`.
It reads ``app.get_functions()`` and drives each function from its trigger binding, the way
the Functions host and the Python worker would:

- ``blobTrigger``: lists ``<container>`` (``%SETTING%`` resolved from ``os.environ``) every
  ``blob_scan_interval`` seconds and calls the function with an ``azure.storage.blob.BlobClient``
  (what the SDK-type binding hands it in Azure) for each blob created after ``start()``. Like
  Event Grid's ``BlobCreated``, a write of content fires (a new blob, an overwrite) and a write
  of metadata or properties does not: a listing cannot see the operation, so a new ETag whose
  creation time, size and MD5 are unchanged counts as a metadata write. A failing blob is tried
  ``poison_threshold`` times in all (the host's retries are immediate by default), then a
  message goes to the ``webjobs-blobtrigger-poison`` queue.
- ``timerTrigger``: NCRONTAB schedule (``%SETTING%`` resolved) or a fixed interval; a singleton
  that skips a tick while the previous invocation still runs.
- ``httpTrigger``: a loopback HTTP server for ``/api/<route>``; function keys are enforced only
  when ``function_key`` is given (Core Tools does not enforce them locally; Azure does).

All storage bindings use the one ``storage_connection_string`` given to the host.
"""

from __future__ import annotations

import calendar
import contextlib
import hmac
import inspect
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

import azure.functions as func
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.functions.timer import TimerRequest
from azure.storage.blob import BlobClient, BlobProperties, ContainerClient
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from devtools.lifecycle import Service

_LOGGER = logging.getLogger(__name__)

POISON_QUEUE = "webjobs-blobtrigger-poison"
ROUTE_PREFIX = "/api/"
_SETTING_REFERENCE = re.compile(r"%([^%]+)%")
_BLOB_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
_ROUTE_PARAMETER = re.compile(r"\{(\*{0,2})([A-Za-z_]\w*)(?::[^{}?=]*)?(\?)?\}")
_HOP_BY_HOP = frozenset({"connection", "content-length", "transfer-encoding", "keep-alive"})
_TIMER_PAST_DUE_AFTER = timedelta(seconds=1)


class UnsupportedBindingError(ValueError):
    """A function uses a binding this local host cannot drive."""


def resolve_settings(text: str, environ: Mapping[str, str]) -> str:
    """Replace every ``%NAME%`` in ``text`` with the app setting ``NAME``.

    :raises ValueError: a referenced setting is not set.
    """

    def _value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise ValueError(f"app setting {name!r} referenced by {text!r} is not set")
        return environ[name]

    return _SETTING_REFERENCE.sub(_value, text)


# --- NCRONTAB -------------------------------------------------------------------------------

_CRON_FIELDS: tuple[tuple[str, int, int], ...] = (
    ("second", 0, 59),
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 0, 6),
)


def _parse_cron_field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        if part == "*":
            values.update(range(low, high + 1))
        elif match := re.fullmatch(r"\*/(\d+)", part):
            step = int(match.group(1))
            if step == 0:
                raise ValueError(f"NCRONTAB {name} field {text!r}: step must be positive")
            values.update(range(low, high + 1, step))
        elif match := re.fullmatch(r"(\d+)(?:-(\d+))?", part):
            first = int(match.group(1))
            last = int(match.group(2) or first)
            if not low <= first <= last <= high:
                raise ValueError(f"NCRONTAB {name} field {text!r}: expected {low}-{high}")
            values.update(range(first, last + 1))
        else:
            raise ValueError(f"NCRONTAB {name} field {text!r}: expected *, */n, a, a,b or a-b")
    return frozenset(values)


@dataclass(frozen=True)
class CronSchedule:
    """A parsed 6-field NCRONTAB expression (``second minute hour day month day-of-week``), UTC.

    Day and day-of-week must both match (NCrontab's rule, unlike Vixie cron's "either").
    """

    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        """Parse 6 fields, or 5 (second 0); each ``*``, ``*/n``, ``a``, ``a,b`` or ``a-b``.

        :raises ValueError: naming the field that is wrong.
        """
        parts = expression.split()
        if len(parts) == 5:
            parts = ["0", *parts]
        if len(parts) != 6:
            raise ValueError(
                f"NCRONTAB {expression!r} has {len(parts)} fields; expected 6 "
                "({second} {minute} {hour} {day} {month} {day-of-week}) or 5"
            )
        sets = [
            _parse_cron_field(text, name, low, high)
            for text, (name, low, high) in zip(parts, _CRON_FIELDS, strict=True)
        ]
        return cls(expression, *sets)

    def next_occurrence(self, after: datetime) -> datetime:
        """The first occurrence strictly after ``after`` (an aware datetime; UTC is returned).

        :raises ValueError: the expression never matches (e.g. 30 February).
        """
        moment = after.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
        limit = moment + timedelta(days=366 * 5)
        while moment < limit:
            if moment.month not in self.months:
                moment = _first_of_next_month(moment)
            elif moment.day not in self.days or _cron_weekday(moment) not in self.weekdays:
                moment = moment.replace(hour=0, minute=0, second=0) + timedelta(days=1)
            elif moment.hour not in self.hours:
                moment = moment.replace(minute=0, second=0) + timedelta(hours=1)
            elif moment.minute not in self.minutes:
                moment = moment.replace(second=0) + timedelta(minutes=1)
            elif moment.second not in self.seconds:
                moment += timedelta(seconds=1)
            else:
                return moment
        raise ValueError(f"NCRONTAB {self.expression!r} has no occurrence within five years")


def _first_of_next_month(moment: datetime) -> datetime:
    days_left = calendar.monthrange(moment.year, moment.month)[1] - moment.day + 1
    return moment.replace(hour=0, minute=0, second=0) + timedelta(days=days_left)


def _cron_weekday(moment: datetime) -> int:
    # NCRONTAB counts Sunday as 0; Python's weekday() counts Monday as 0.
    return (moment.weekday() + 1) % 7


@dataclass(frozen=True)
class IntervalSchedule:
    """A fixed interval between occurrences (what ``timer_interval`` asks for)."""

    seconds: float

    def next_occurrence(self, after: datetime) -> datetime:
        """``after`` plus the interval."""
        return after + timedelta(seconds=self.seconds)


class _Schedule(Protocol):
    def next_occurrence(self, after: datetime) -> datetime: ...


# --- the app's functions, read from their bindings ------------------------------------------


@dataclass(frozen=True)
class _BlobFunction:
    name: str
    binding_name: str
    user_function: Callable[..., Any]
    container: str
    name_pattern: re.Pattern[str]
    prefix: str


@dataclass(frozen=True)
class _TimerFunction:
    name: str
    binding_name: str
    user_function: Callable[..., Any]
    schedule: _Schedule
    run_on_startup: bool


@dataclass(frozen=True)
class _HttpFunction:
    name: str
    binding_name: str
    user_function: Callable[..., Any]
    route: str
    pattern: re.Pattern[str]
    parameters: Mapping[str, str]  # regex group -> route parameter name
    methods: frozenset[str] | None  # None: every method
    auth_level: str
    literal_segments: int


@dataclass(frozen=True)
class _AppFunctions:
    blobs: tuple[_BlobFunction, ...] = ()
    timers: tuple[_TimerFunction, ...] = ()
    https: tuple[_HttpFunction, ...] = ()


def _read_functions(
    app: func.FunctionApp, environ: Mapping[str, str], timer_interval: float | None
) -> _AppFunctions:
    blobs: list[_BlobFunction] = []
    timers: list[_TimerFunction] = []
    https: list[_HttpFunction] = []
    for function in _get_functions(app):
        name = function.get_function_name()
        bindings = json.loads(function.get_function_json())["bindings"]
        user_function = function.get_user_function()
        trigger = _trigger_binding(name, bindings)
        _check_parameters(name, user_function, bindings)
        kind = trigger["type"]
        if kind == "blobTrigger":
            blobs.append(_blob_function(name, trigger, user_function, environ))
        elif kind == "timerTrigger":
            timers.append(_timer_function(name, trigger, user_function, environ, timer_interval))
        else:
            https.append(_http_function(name, trigger, user_function))
    https.sort(key=lambda f: (-f.literal_segments, f.route))
    return _AppFunctions(tuple(blobs), tuple(timers), tuple(https))


def _get_functions(app: func.FunctionApp) -> list[func.Function]:
    # get_functions() remembers the names it returned and refuses a second call
    # (azure-functions-python-worker#1867): the worker calls it once per process, but tests and
    # this host may call it again, so leave the app as it was found.
    recorded = app.functions_bindings
    app.functions_bindings = None
    try:
        return app.get_functions()
    finally:
        app.functions_bindings = recorded


def _trigger_binding(name: str, bindings: list[dict[str, Any]]) -> dict[str, Any]:
    trigger: dict[str, Any] | None = None
    for binding in bindings:
        kind = binding["type"]
        if kind in ("blobTrigger", "timerTrigger", "httpTrigger"):
            trigger = binding
        elif not (kind == "http" and binding["name"] == "$return"):
            raise UnsupportedBindingError(
                f"function {name!r}: binding {binding['name']!r} of type {kind!r} is not "
                "supported by the local host (it drives blobTrigger, timerTrigger, httpTrigger)"
            )
    if trigger is None:
        raise UnsupportedBindingError(f"function {name!r} has no trigger the local host knows")
    return trigger


def _check_parameters(
    name: str, user_function: Callable[..., Any], bindings: list[dict[str, Any]]
) -> None:
    # The worker refuses to load a function whose parameters and bindings differ; so do we.
    declared = set(inspect.signature(user_function).parameters)
    bound = {b["name"] for b in bindings if b["name"] != "$return"}
    if declared != bound:
        raise UnsupportedBindingError(
            f"function {name!r}: parameters {sorted(declared)} do not match "
            f"bindings {sorted(bound)}"
        )


def _blob_function(
    name: str,
    trigger: Mapping[str, Any],
    user_function: Callable[..., Any],
    environ: Mapping[str, str],
) -> _BlobFunction:
    path = resolve_settings(trigger["path"], environ)
    container, _, blob_path = path.partition("/")
    if not container or not blob_path:
        raise UnsupportedBindingError(
            f"function {name!r}: blob path {path!r} is not '<container>/<pattern>'"
        )
    pieces = _BLOB_PLACEHOLDER.split(blob_path)
    # split() alternates literal text and placeholder names.
    regex = "".join(
        re.escape(piece) if index % 2 == 0 else "(.+)" for index, piece in enumerate(pieces)
    )
    return _BlobFunction(
        name=name,
        binding_name=trigger["name"],
        user_function=user_function,
        container=container,
        name_pattern=re.compile(regex, re.DOTALL),
        prefix=pieces[0],
    )


def _timer_function(
    name: str,
    trigger: Mapping[str, Any],
    user_function: Callable[..., Any],
    environ: Mapping[str, str],
    timer_interval: float | None,
) -> _TimerFunction:
    schedule: _Schedule
    if timer_interval is not None:
        schedule = IntervalSchedule(timer_interval)
    else:
        schedule = CronSchedule.parse(resolve_settings(trigger["schedule"], environ))
        schedule.next_occurrence(datetime.now(UTC))  # a schedule that never fires fails here
    return _TimerFunction(
        name=name,
        binding_name=trigger["name"],
        user_function=user_function,
        schedule=schedule,
        run_on_startup=bool(trigger.get("runOnStartup", False)),
    )


def _http_function(
    name: str, trigger: Mapping[str, Any], user_function: Callable[..., Any]
) -> _HttpFunction:
    route = (trigger.get("route") or name).strip("/")
    pattern, parameters, literal_segments = _compile_route(route)
    methods = trigger.get("methods")
    return _HttpFunction(
        name=name,
        binding_name=trigger["name"],
        user_function=user_function,
        route=route,
        pattern=pattern,
        parameters=parameters,
        methods=frozenset(m.upper() for m in methods) if methods else None,
        auth_level=str(trigger.get("authLevel", "FUNCTION")).upper(),
        literal_segments=literal_segments,
    )


def _compile_route(route: str) -> tuple[re.Pattern[str], dict[str, str], int]:
    """A regex for an ASP.NET-style route template (constraints accepted and ignored)."""
    regex: list[str] = []
    parameters: dict[str, str] = {}
    literal_segments = 0
    for segment in route.split("/") if route else []:
        whole = _ROUTE_PARAMETER.fullmatch(segment)
        if whole and (whole.group(1) or whole.group(3)):
            group = f"p{len(parameters)}"
            parameters[group] = whole.group(2)
            value = ".*" if whole.group(1) else "[^/]+"
            regex.append(f"(?:/(?P<{group}>{value}))?")
            continue
        pieces: list[str] = []
        position = 0
        for match in _ROUTE_PARAMETER.finditer(segment):
            group = f"p{len(parameters)}"
            parameters[group] = match.group(2)
            pieces += [re.escape(segment[position : match.start()]), f"(?P<{group}>[^/]+)"]
            position = match.end()
        pieces.append(re.escape(segment[position:]))
        literal_segments += position == 0
        regex.append("/" + "".join(pieces))
    return re.compile("".join(regex) + "/?", re.IGNORECASE), parameters, literal_segments


# --- invocations ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Outcome:
    succeeded: bool
    value: Any = None


def _invoke(
    function_name: str, user_function: Callable[..., Any], detail: str, **kwargs: Any
) -> _Outcome:
    """Call one function once and log one line (with the traceback when it fails)."""
    started = time.perf_counter()
    failure: Exception | None = None
    try:
        outcome = _Outcome(succeeded=True, value=user_function(**kwargs))
    except Exception as error:
        outcome, failure = _Outcome(succeeded=False), error
    _LOGGER.log(
        logging.ERROR if failure else logging.INFO,
        "invocation function=%s id=%s %s outcome=%s duration_ms=%.0f",
        function_name,
        uuid.uuid4(),
        detail,
        "failed" if failure else "succeeded",
        (time.perf_counter() - started) * 1000,
        exc_info=failure,
    )
    return outcome


@dataclass(frozen=True)
class _BlobVersion:
    name: str
    etag: str
    blob_type: str
    created: datetime | None
    size: int
    content_md5: bytes | None

    @classmethod
    def from_properties(cls, properties: BlobProperties) -> _BlobVersion:
        etag = properties.etag
        md5 = properties.content_settings.content_md5
        return cls(
            name=properties.name,
            etag=etag if etag.startswith('"') else f'"{etag}"',
            blob_type=str(properties.blob_type.value),
            created=properties.creation_time,
            size=properties.size,
            content_md5=bytes(md5) if md5 else None,
        )

    def same_content(self, other: _BlobVersion) -> bool:
        """Whether ``other`` differs from this version only by metadata or properties."""
        return (self.created, self.size, self.content_md5) == (
            other.created,
            other.size,
            other.content_md5,
        )


@dataclass
class _BlobWatcher:
    """The listing state of one blob-triggered function."""

    function: _BlobFunction
    container: ContainerClient
    seen: dict[str, _BlobVersion] = field(default_factory=dict)

    def list_versions(self) -> dict[str, _BlobVersion] | None:
        """The matching blobs now, or None when the listing failed (logged)."""
        try:
            listing = self.container.list_blobs(name_starts_with=self.function.prefix or None)
            versions = [_BlobVersion.from_properties(p) for p in listing]
        except ResourceNotFoundError:
            return {}
        except AzureError as error:
            _LOGGER.warning(
                "blob listing failed function=%s container=%s error=%s",
                self.function.name,
                self.function.container,
                type(error).__name__,
            )
            return None
        return {v.name: v for v in versions if self.function.name_pattern.fullmatch(v.name)}

    def take_baseline(self) -> None:
        """Count the blobs present now as seen: like Event Grid, fire only for later ones."""
        self.seen = self.list_versions() or {}

    def take_new(self) -> list[_BlobVersion]:
        """The versions created since the last listing (new names, or overwritten content)."""
        current = self.list_versions()
        if current is None:
            return []
        new = [
            version
            for name, version in current.items()
            if (previous := self.seen.get(name)) is None
            or (previous.etag != version.etag and not previous.same_content(version))
        ]
        self.seen = current
        return new


class _TimerRunner:
    """One timer function: a singleton that skips ticks while an invocation runs."""

    def __init__(self, function: _TimerFunction) -> None:
        self.function = function
        self._running = threading.Lock()

    def try_begin(self, reason: str) -> bool:
        """Claim the singleton; log and return False when an invocation is still running."""
        if self._running.acquire(blocking=False):
            return True
        _LOGGER.info(
            "timer tick skipped function=%s reason=%s: previous invocation still running",
            self.function.name,
            reason,
        )
        return False

    def run_claimed(self, *, past_due: bool) -> None:
        """Invoke once (the singleton must be claimed) and release it."""
        try:
            _invoke(
                self.function.name,
                self.function.user_function,
                f"trigger=timer past_due={past_due}",
                **{self.function.binding_name: TimerRequest(past_due=past_due)},
            )
        finally:
            self._running.release()


# --- HTTP -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _HttpReply:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def _json_reply(status: int, body: Mapping[str, Any], *extra: tuple[str, str]) -> _HttpReply:
    data = json.dumps(body).encode()
    return _HttpReply(status, (("Content-Type", "application/json; charset=utf-8"), *extra), data)


def _reply_from(response: Any) -> _HttpReply:
    if isinstance(response, str):
        response = func.HttpResponse(response)
    if not isinstance(response, func.HttpResponse):
        raise TypeError(f"an HTTP function returned {type(response).__name__}, not HttpResponse")
    headers = [(k, v) for k, v in response.headers.items() if k.lower() not in _HOP_BY_HOP]
    if not any(k.lower() == "content-type" for k, _ in headers):
        headers.append(("Content-Type", f"{response.mimetype}; charset={response.charset}"))
    return _HttpReply(response.status_code, tuple(headers), response.get_body())


class _HttpDispatcher:
    """Routes one request to its function, enforcing methods and function keys."""

    def __init__(self, functions: Iterable[_HttpFunction], function_key: str | None) -> None:
        self._functions = tuple(functions)
        self._function_key = function_key

    def dispatch(
        self, method: str, base_url: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> _HttpReply:
        """Run the function whose route matches ``target`` and turn its response into a reply."""
        parts = urlsplit(target)
        if not parts.path.lower().startswith(ROUTE_PREFIX):
            return _json_reply(404, {"error": "not found", "path": parts.path})
        path = "/" + parts.path[len(ROUTE_PREFIX) :]
        matches = [(f, m) for f in self._functions if (m := f.pattern.fullmatch(path))]
        if not matches:
            return _json_reply(404, {"error": "not found", "path": parts.path})
        allowed = [(f, m) for f, m in matches if f.methods is None or method in f.methods]
        if not allowed:
            methods = sorted({m for f, _ in matches for m in f.methods or ()})
            return _json_reply(
                405, {"error": f"method {method} not allowed"}, ("Allow", ", ".join(methods))
            )
        function, match = allowed[0]
        params = dict(reversed(parse_qsl(parts.query, keep_blank_values=True)))
        if not self._authorized(function, headers, params):
            return _json_reply(401, {"error": "a function key is required (x-functions-key)"})
        request = func.HttpRequest(
            method,
            base_url + target,
            headers=headers,
            params=params,
            route_params={
                name: unquote(value)
                for group, name in function.parameters.items()
                if (value := match.group(group)) is not None
            },
            body=body,
        )
        detail = f"trigger=http method={method} path={parts.path}"
        outcome = _invoke(
            function.name, function.user_function, detail, **{function.binding_name: request}
        )
        if outcome.succeeded:
            try:
                return _reply_from(outcome.value)
            except TypeError:
                _LOGGER.exception("invalid HTTP response function=%s", function.name)
        return _json_reply(500, {"error": "internal server error"})

    def _authorized(
        self, function: _HttpFunction, headers: Mapping[str, str], params: Mapping[str, str]
    ) -> bool:
        if self._function_key is None or function.auth_level == "ANONYMOUS":
            return True
        given = next((v for k, v in headers.items() if k.lower() == "x-functions-key"), None)
        given = given or params.get("code", "")
        return hmac.compare_digest(given.encode(), self._function_key.encode())


class _HttpServer(ThreadingHTTPServer):
    # Join request threads on close, so stop() leaves nothing running.
    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple[str, int], dispatcher: _HttpDispatcher) -> None:
        super().__init__(address, _RequestHandler)
        self.dispatcher = dispatcher
        self.base_url = f"http://{address[0]}:{self.server_address[1]}"


class _RequestHandler(BaseHTTPRequestHandler):
    server: _HttpServer
    timeout = 30  # a silent client cannot hold stop() forever

    def _handle(self) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            reply = _json_reply(411, {"error": "send a Content-Length"})
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

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle  # noqa: N815

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The path without its query string: ?code= carries a function key.
        _LOGGER.debug("http %s %s status=%s", self.command, urlsplit(self.path).path, code)

    def log_message(self, format: str, *args: Any) -> None:
        # Only send_error() gets here now; its text may quote the request line (and a ?code=
        # key), so log the status alone, and keep stderr quiet.
        _LOGGER.debug("http error status=%s", args[0] if args else "-")


# --- the host -------------------------------------------------------------------------------


class LocalHost(Service):
    """Drives an ``azure.functions.FunctionApp``'s functions from their trigger bindings.

    :param app: the app whose ``get_functions()`` are hosted.
    :keyword storage_connection_string: the storage account of the blob trigger and poison queue.
    :keyword http_host/http_port: where ``/api/<route>`` is served; port 0 picks a free one.
    :keyword blob_scan_interval: seconds between container listings.
    :keyword timer_interval: a fixed timer interval in seconds; None follows each timer's
        NCRONTAB schedule (``%SETTING%`` resolved from ``os.environ``).
    :keyword function_key: when set, FUNCTION/ADMIN routes need it (``x-functions-key`` or
        ``?code=``); None enforces no keys, as Core Tools does locally.
    :keyword poison_threshold: tries of one blob version before it goes to the poison queue.
    :keyword max_degree_of_parallelism: blob invocations running at once.
    :keyword fire_existing: also fire for the blobs present at start.
    :raises UnsupportedBindingError: a function has a binding this host cannot drive.
    :raises ValueError: a ``%SETTING%`` is missing or a schedule does not parse.
    """

    def __init__(
        self,
        app: func.FunctionApp,
        *,
        storage_connection_string: str,
        http_host: str = "127.0.0.1",
        http_port: int = 7071,
        blob_scan_interval: float = 1.0,
        timer_interval: float | None = None,
        function_key: str | None = None,
        poison_threshold: int = 5,
        max_degree_of_parallelism: int = 4,
        fire_existing: bool = False,
    ) -> None:
        if poison_threshold < 1:
            raise ValueError("poison_threshold must be at least 1")
        self._functions = _read_functions(app, os.environ, timer_interval)
        self._connection_string = storage_connection_string
        self._http_address = (http_host, http_port)
        self._blob_scan_interval = blob_scan_interval
        self._poison_threshold = poison_threshold
        self._fire_existing = fire_existing
        self._dispatcher = _HttpDispatcher(self._functions.https, function_key)
        self._watchers = [
            _BlobWatcher(
                f, ContainerClient.from_connection_string(storage_connection_string, f.container)
            )
            for f in self._functions.blobs
        ]
        self._timers = [_TimerRunner(f) for f in self._functions.timers]
        self._blob_pool = ThreadPoolExecutor(max_degree_of_parallelism, "local-host-blob")
        self._timer_pool = ThreadPoolExecutor(max(1, len(self._timers)), "local-host-timer")
        self._scan_lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: _HttpServer | None = None
        self._started = False
        self._baseline_taken = False

    @property
    def function_names(self) -> tuple[str, ...]:
        """The hosted functions, by name."""
        groups: tuple[tuple[Any, ...], ...] = (
            self._functions.blobs,
            self._functions.timers,
            self._functions.https,
        )
        return tuple(sorted(f.name for group in groups for f in group))

    @property
    def http_url(self) -> str:
        """The server's root, e.g. ``http://127.0.0.1:7071``.

        :raises RuntimeError: the server is not running (not started, or no HTTP function).
        """
        if self._server is None:
            raise RuntimeError("the HTTP server is not running")
        return self._server.base_url

    def start(self) -> None:
        """Take the blob baseline, start the HTTP server and the scan and timer loops."""
        if self._started:
            raise RuntimeError("a LocalHost starts once")
        self._started = True
        if self._functions.https:
            self._server = _HttpServer(self._http_address, self._dispatcher)
            self._spawn("local-host-http", self._server.serve_forever, 0.2)
        if self._watchers:
            self._take_baseline()
            self._spawn("local-host-blob-scan", self._scan_loop)
        for runner in self._timers:
            self._spawn(f"local-host-timer-{runner.function.name}", self._timer_loop, runner)
        _LOGGER.info(
            "local host started functions=%s http=%s",
            ",".join(self.function_names),
            self._server.base_url if self._server else "-",
        )

    def stop(self) -> None:
        """Stop every loop, wait for running invocations, close the server (idempotent)."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        self._blob_pool.shutdown(wait=True)
        self._timer_pool.shutdown(wait=True)
        if self._server is not None:
            self._server.server_close()
            self._server = None
        for watcher in self._watchers:
            watcher.container.close()
        _LOGGER.info("local host stopped")

    def scan_blobs_once(self) -> int:
        """List the blob containers now and run the blob functions for every new blob version.

        Waits until those invocations (with their retries) have finished.

        :returns: how many blob versions were run.
        """
        futures = self._scan()
        wait(futures)
        return len(futures)

    def run_timer_once(self) -> int:
        """Run every timer function once now, in this thread; a timer still running is skipped.

        :returns: how many timer functions ran.
        """
        ran = 0
        for runner in self._timers:
            if runner.try_begin("manual"):
                runner.run_claimed(past_due=False)
                ran += 1
        return ran

    def _spawn(self, name: str, target: Callable[..., Any], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _take_baseline(self) -> None:
        with self._scan_lock:
            if self._baseline_taken:
                return
            self._baseline_taken = True
            if not self._fire_existing:
                for watcher in self._watchers:
                    watcher.take_baseline()

    def _scan(self) -> list[Future[None]]:
        self._take_baseline()
        with self._scan_lock:
            futures: list[Future[None]] = []
            for watcher in self._watchers:
                futures += self._submit(watcher, watcher.take_new())
            return futures

    def _submit(self, watcher: _BlobWatcher, versions: list[_BlobVersion]) -> list[Future[None]]:
        return [self._blob_pool.submit(self._run_blob, watcher.function, v) for v in versions]

    def _scan_loop(self) -> None:
        while not self._stopping.wait(self._blob_scan_interval):
            self._scan()

    def _run_blob(self, function: _BlobFunction, version: _BlobVersion) -> None:
        for attempt in range(1, self._poison_threshold + 1):
            with BlobClient.from_connection_string(
                self._connection_string, function.container, version.name
            ) as client:
                detail = (
                    f"trigger=blob blob={function.container}/{version.name} "
                    f"etag={version.etag} attempt={attempt}"
                )
                outcome = _invoke(
                    function.name, function.user_function, detail, **{function.binding_name: client}
                )
            if outcome.succeeded:
                return
        try:
            self._send_to_poison_queue(function, version)
        except AzureError:
            _LOGGER.exception(
                "poison queue write failed function=%s blob=%s/%s",
                function.name,
                function.container,
                version.name,
            )

    def _send_to_poison_queue(self, function: _BlobFunction, version: _BlobVersion) -> None:
        message = {
            "Type": "BlobTrigger",
            "FunctionId": f"Host.Functions.{function.name}",
            "BlobType": version.blob_type,
            "ContainerName": function.container,
            "BlobName": version.name,
            "ETag": version.etag,
        }
        with QueueClient.from_connection_string(
            self._connection_string, POISON_QUEUE, message_encode_policy=TextBase64EncodePolicy()
        ) as queue:
            with contextlib.suppress(ResourceExistsError):
                queue.create_queue()
            queue.send_message(json.dumps(message))
        _LOGGER.error(
            "poison blob function=%s blob=%s/%s etag=%s tries=%s queue=%s",
            function.name,
            function.container,
            version.name,
            version.etag,
            self._poison_threshold,
            POISON_QUEUE,
        )

    def _timer_loop(self, runner: _TimerRunner) -> None:
        due = runner.function.schedule.next_occurrence(datetime.now(UTC))
        if runner.function.run_on_startup and runner.try_begin("startup"):
            self._timer_pool.submit(runner.run_claimed, past_due=False)
        while not self._stopping.wait(max(0.0, (due - datetime.now(UTC)).total_seconds())):
            now = datetime.now(UTC)
            if runner.try_begin(f"schedule {due.isoformat()}"):
                past_due = now - due > _TIMER_PAST_DUE_AFTER
                self._timer_pool.submit(runner.run_claimed, past_due=past_due)
            due = runner.function.schedule.next_occurrence(max(due, now))
