"""A throwaway app with one function of each kind the local host drives, and what it saw."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import azure.functions as func
from azurefunctions.extensions.bindings import blob

FUNCTION_KEY = "fake-function-key-not-real"
TIMEOUT = 5.0


@dataclass
class Probe:
    """What the throwaway app's functions saw."""

    blobs: list[tuple[str, bytes]] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)
    timer_calls: list[bool] = field(default_factory=list)
    timer_started: threading.Event = field(default_factory=threading.Event)
    timer_gate: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.timer_gate.set()


def build_app(container: str, probe: Probe) -> func.FunctionApp:
    """A blob trigger, a timer and HTTP routes, like the real app's kinds of function."""
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

    @app.function_name("on_blob")
    @app.blob_trigger(
        arg_name="client",
        path=container + "/{name}",
        connection="TestStorage",
        source=func.BlobSource.EVENT_GRID,
    )
    def on_blob(client: blob.BlobClient) -> None:
        probe.containers.append(client.container_name)
        probe.blobs.append((client.blob_name, client.download_blob().readall()))
        if client.blob_name.startswith("fail/"):
            raise RuntimeError("cannot take this blob")

    @app.function_name("tick")
    @app.timer_trigger(arg_name="timer", schedule="%TEST_SCHEDULE%")
    def tick(timer: func.TimerRequest) -> None:
        probe.timer_started.set()
        probe.timer_gate.wait(TIMEOUT)
        probe.timer_calls.append(timer.past_due)

    @app.function_name("items")
    @app.route(route="items/{item_id?}", methods=["GET", "POST"])
    def items(req: func.HttpRequest) -> func.HttpResponse:
        echo = {
            "method": req.method,
            "url": req.url,
            "route_params": dict(req.route_params),
            "params": dict(req.params),
            "body": req.get_body().decode(),
            "header": req.headers.get("x-test"),
        }
        return func.HttpResponse(
            json.dumps(echo), status_code=201, mimetype="application/json", headers={"X-Echo": "1"}
        )

    @app.function_name("health")
    @app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def health(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("healthy")

    @app.function_name("order_lines")
    @app.route(route="orders/{order_id:int}/lines", auth_level=func.AuthLevel.ANONYMOUS)
    def order_lines(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(json.dumps(dict(req.route_params)), mimetype="application/json")

    @app.function_name("crash")
    @app.route(route="crash", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def crash(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("internal detail that must stay in the log")

    return app


def wait_for(condition: Callable[[], bool]) -> None:
    """Wait until ``condition()`` holds (at most ``TIMEOUT`` seconds)."""
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
