"""Blob trigger: a file landed in the inbound container; enqueue it to its recurring job."""

import logging

import azure.functions as func
from azurefunctions.extensions.bindings import blob

from shared.context import get_context
from shared.settings import SettingsError

bp = func.Blueprint()
_LOGGER = logging.getLogger(__name__)
TRIGGER_CONTAINER = "d365-inbound"


# The container is literal (INBOUND_CONTAINER must match it): Event Grid subscriptions and the
# host's blob receipts are keyed on this path.
@bp.function_name("enqueue_blob")
@bp.blob_trigger(
    arg_name="client",
    path=TRIGGER_CONTAINER + "/{name}",
    connection="IntegrationStorage",
    source=func.BlobSource.EVENT_GRID,
)
def enqueue_blob(client: blob.BlobClient) -> None:
    """Route, claim and enqueue one uploaded blob version; see shared.enqueuer."""
    context = get_context()
    problem = context.settings.trigger_container_problem(client.container_name)
    if problem:
        # Fails the invocation: the host retries, then parks it on the poison queue.
        raise SettingsError([problem])
    record = context.enqueuer.handle(client)
    if record is not None:
        _LOGGER.info(
            "enqueue_blob done blob=%s state=%s message_id=%s",
            record.blob,
            record.state.value,
            record.message_id,
        )
