"""Whether F&O accepts the app: one harmless authorized call, for ``GET /api/health``.

A token only proves the tenant, the client id and the secret to Entra. Whether F&O knows the
app (System administration > Setup > Microsoft Entra applications, with a user) shows only on
a call: without that entry F&O answers 401 or 403, and the first file would be the first to
find out. GetMessageStatus for the all-zero message id reads one status and changes nothing;
Microsoft's Recurring Integrations Scheduler made the same call to check a connection.
"""

from __future__ import annotations

from typing import Any

from shared.clients.d365 import (
    D365AuthenticationError,
    D365Client,
    D365Error,
    D365HttpError,
    D365PermissionError,
    D365ResponseError,
    RetryPolicy,
)
from shared.errors import safe_text

__all__ = ["PROBE_MESSAGE_ID", "check_access"]

PROBE_MESSAGE_ID = "00000000-0000-0000-0000-000000000000"
"""A message id no enqueue returns."""

# A health check answers in seconds: no retries, so an F&O outage shows at once.
_ONE_ATTEMPT = RetryPolicy(max_attempts=1)
_FIX = (
    "F&O refuses the app: in F&O, System administration > Setup > Microsoft Entra applications, "
    "add the client id with a user that has the data management roles (docs/deploy.md, "
    "'Register the app in F&O'); check that D365_BASE_URL is that environment's URL"
)


def _refused_only_the_id(status: int | None) -> bool:
    """True for an answer that shows F&O ran the call: a 4xx about the request, not 401/403
    (the app refused), 408 (the request did not arrive whole) or 429 (F&O did not let it in).
    A 5xx says nothing about the app: F&O failed or is down."""
    return status is not None and 400 <= status < 500 and status not in (401, 403, 408, 429)


def check_access(client: D365Client) -> dict[str, Any]:
    """The ``d365_access`` check: ``ok``, F&O's ``status``, and on failure the error and fix."""
    try:
        client.get_message_status(PROBE_MESSAGE_ID, retry=_ONE_ATTEMPT)
    except (D365AuthenticationError, D365PermissionError) as exc:
        return {"ok": False, "status": exc.status_code, "error": safe_text(exc), "fix": _FIX}
    except D365HttpError as exc:
        if _refused_only_the_id(exc.status_code):
            # F&O ran the authorized call and refused only the made-up id: it accepts the app.
            return {"ok": True, "status": exc.status_code}
        return {
            "ok": False,
            "status": exc.status_code,
            "error": f"F&O did not answer the probe: {safe_text(exc)}",
        }
    except D365ResponseError:
        return {"ok": True, "status": 200}
    except D365Error as exc:
        return {"ok": False, "error": safe_text(exc)}
    return {"ok": True, "status": 200}
