"""Timer trigger: follow enqueued messages until F&O has processed them."""

import logging

import azure.functions as func

from shared import telemetry
from shared.context import get_context

bp = func.Blueprint()
_LOGGER = logging.getLogger(__name__)


# Not on startup: it would fire on every scale-out and restart.
@bp.function_name("poll_status")
@bp.timer_trigger(arg_name="timer", schedule="%POLL_SCHEDULE%", run_on_startup=False)
@telemetry.invocation("poll_status", trigger="timer")
def poll_status(timer: func.TimerRequest) -> None:
    """Poll every due message once; see shared.flows.poll."""
    if timer.past_due:
        _LOGGER.warning("poll_status is running late")
    get_context().poller.tick()
