"""Timer trigger: follow enqueued messages until F&O has processed them."""

import azure.functions as func

bp = func.Blueprint()


@bp.function_name("poll_status")
@bp.timer_trigger(arg_name="timer", schedule="%POLL_SCHEDULE%", run_on_startup=False)
def poll_status(timer: func.TimerRequest) -> None:
    """Placeholder until the poller lands."""
    raise NotImplementedError
