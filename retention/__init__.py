"""Timer trigger: delete the rows past their retention, once a day."""

import logging

import azure.functions as func

from shared import telemetry
from shared.context import get_context

bp = func.Blueprint()
_LOGGER = logging.getLogger(__name__)


# Not on startup: it would fire on every scale-out and restart.
@bp.function_name("retention")
@bp.timer_trigger(arg_name="timer", schedule="%RETENTION_SCHEDULE%", run_on_startup=False)
@telemetry.invocation("retention", trigger="timer")
def retention(timer: func.TimerRequest) -> None:
    """Delete what has passed its retention, within the run's budget; see shared.flows.retention."""
    if timer.past_due:
        _LOGGER.warning("retention is running late")
    get_context().retention.run()
