"""One call of a user function, logged as one line, as the Functions host logs an invocation."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """Whether the call returned, and what it returned."""

    succeeded: bool
    value: Any = None


def invoke(
    function_name: str, user_function: Callable[..., Any], detail: str, **kwargs: Any
) -> Outcome:
    """Call one function once and log one line (with the traceback when it fails).

    :param detail: ``key=value`` pairs that say what triggered the call.
    """
    started = time.perf_counter()
    failure: Exception | None = None
    try:
        outcome = Outcome(succeeded=True, value=user_function(**kwargs))
    except Exception as error:
        outcome, failure = Outcome(succeeded=False), error
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
