"""The app's functions, read from their bindings as the Python worker hands them to the host."""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import azure.functions as func

from devtools.local_host.app_settings import resolve_app_settings
from devtools.local_host.http_routes import CompiledRoute, compile_route
from devtools.local_host.schedules import IntervalSchedule, Schedule
from shared.config.ncrontab import parse_ncrontab

_BLOB_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
TRIGGER_TYPES = ("blobTrigger", "timerTrigger", "httpTrigger")
# The blob trigger's sources, as the binding's "source" names them (absent: the scan).
EVENT_GRID = "EventGrid"
LOGS_AND_CONTAINER_SCAN = "LogsAndContainerScan"


class UnsupportedBindingError(ValueError):
    """A function uses a binding this local host cannot drive."""


@dataclass(frozen=True)
class BlobFunction:
    """A ``blobTrigger`` function and the blobs it fires for."""

    name: str
    binding_name: str
    user_function: Callable[..., Any]
    container: str
    name_pattern: re.Pattern[str]
    prefix: str  # the literal start of the blob names, for the listing
    connection: str  # the binding's connection name (app settings prefix)
    source: str = LOGS_AND_CONTAINER_SCAN  # the binding's source: EventGrid or the scan


@dataclass(frozen=True)
class TimerFunction:
    """A ``timerTrigger`` function and its schedule."""

    name: str
    binding_name: str
    user_function: Callable[..., Any]
    schedule: Schedule
    run_on_startup: bool


@dataclass(frozen=True)
class HttpFunction:
    """An ``httpTrigger`` function and the requests it answers."""

    name: str
    binding_name: str
    user_function: Callable[..., Any]
    route: str
    compiled: CompiledRoute
    methods: frozenset[str] | None  # None: every method
    auth_level: str


@dataclass(frozen=True)
class AppFunctions:
    """The hosted functions by trigger; HTTP functions in matching order."""

    blobs: tuple[BlobFunction, ...] = ()
    timers: tuple[TimerFunction, ...] = ()
    https: tuple[HttpFunction, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """Every function's name, sorted."""
        groups: tuple[tuple[Any, ...], ...] = (self.blobs, self.timers, self.https)
        return tuple(sorted(f.name for group in groups for f in group))


def read_functions(
    app: func.FunctionApp, environ: Mapping[str, str], *, timer_interval: float | None
) -> AppFunctions:
    """Read every function of ``app``; ``%NAME%`` in paths and schedules comes from ``environ``.

    :keyword timer_interval: a fixed interval for every timer instead of its schedule.
    :raises UnsupportedBindingError: a binding this host cannot drive, or parameters that
        differ from the bindings (the worker refuses those too).
    :raises ValueError: a referenced app setting is missing, or a schedule does not parse.
    """
    blobs: list[BlobFunction] = []
    timers: list[TimerFunction] = []
    https: list[HttpFunction] = []
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
    https.sort(key=lambda f: (-f.compiled.literal_segments, f.route))
    return AppFunctions(tuple(blobs), tuple(timers), tuple(https))


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
        if kind in TRIGGER_TYPES:
            trigger = binding
        elif not (kind == "http" and binding["name"] == "$return"):
            raise UnsupportedBindingError(
                f"function {name!r}: binding {binding['name']!r} of type {kind!r} is not "
                f"supported by the local host (it drives {', '.join(TRIGGER_TYPES)})"
            )
    if trigger is None:
        raise UnsupportedBindingError(f"function {name!r} has no trigger the local host knows")
    return trigger


def _check_parameters(
    name: str, user_function: Callable[..., Any], bindings: list[dict[str, Any]]
) -> None:
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
) -> BlobFunction:
    path = resolve_app_settings(
        trigger["path"], environ, function=name, binding_property="blob path"
    )
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
    return BlobFunction(
        name=name,
        binding_name=trigger["name"],
        user_function=user_function,
        container=container,
        name_pattern=re.compile(regex, re.DOTALL),
        prefix=pieces[0],
        connection=trigger.get("connection") or "AzureWebJobsStorage",
        source=trigger.get("source") or LOGS_AND_CONTAINER_SCAN,
    )


def _timer_function(
    name: str,
    trigger: Mapping[str, Any],
    user_function: Callable[..., Any],
    environ: Mapping[str, str],
    timer_interval: float | None,
) -> TimerFunction:
    schedule: Schedule
    if timer_interval is not None:
        # The interval replaces the schedule, which is then not read: tests and `make run` set
        # one, and the bad-settings tests need the app running to report a bad schedule.
        schedule = IntervalSchedule(timer_interval)
    else:
        expression = resolve_app_settings(
            trigger["schedule"], environ, function=name, binding_property="schedule"
        )
        try:
            schedule = parse_ncrontab(expression)
        except ValueError as error:
            raise ValueError(f"function {name!r}: {error}") from None
    return TimerFunction(
        name=name,
        binding_name=trigger["name"],
        user_function=user_function,
        schedule=schedule,
        run_on_startup=bool(trigger.get("runOnStartup", False)),
    )


def _http_function(
    name: str, trigger: Mapping[str, Any], user_function: Callable[..., Any]
) -> HttpFunction:
    route = (trigger.get("route") or name).strip("/")
    methods = trigger.get("methods")
    return HttpFunction(
        name=name,
        binding_name=trigger["name"],
        user_function=user_function,
        route=route,
        compiled=compile_route(route),
        methods=frozenset(m.upper() for m in methods) if methods else None,
        auth_level=str(trigger.get("authLevel", "FUNCTION")).upper(),
    )
