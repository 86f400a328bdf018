"""Timer trigger: take the files of recurring export jobs into blob storage, then ack them."""

import logging

import azure.functions as func

from shared import telemetry
from shared.context import get_context

bp = func.Blueprint()
_LOGGER = logging.getLogger(__name__)


# Not on startup: it would fire on every scale-out and restart.
@bp.function_name("export_jobs")
@bp.timer_trigger(arg_name="timer", schedule="%EXPORT_SCHEDULE%", run_on_startup=False)
@telemetry.invocation("export_jobs", trigger="timer")
def export_jobs(timer: func.TimerRequest) -> None:
    """Run every enabled export route once; see shared.flows.export."""
    if timer.past_due:
        _LOGGER.warning("export_jobs is running late")
    result = get_context().exporter.tick()
    # An empty tick (the common case) is not an event worth a line at INFO.
    level = logging.INFO if result.dequeued or result.errors else logging.DEBUG
    _LOGGER.log(
        level,
        "export tick routes=%d dequeued=%d written=%d acked=%d failed=%d",
        result.routes,
        result.dequeued,
        result.written,
        result.acked,
        result.failed,
    )
