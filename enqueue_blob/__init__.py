"""Blob trigger: a file landed in the inbound container; enqueue it to its recurring job."""

import logging

import azure.functions as func
from azurefunctions.extensions.bindings import blob

from shared import telemetry
from shared.context import get_context

bp = func.Blueprint()
_LOGGER = logging.getLogger(__name__)
# The host resolves %INBOUND_CONTAINER% from the app setting of that name, the one Settings
# reads, and the Bicep Event Grid filter follows the same value.
TRIGGER_PATH = "%INBOUND_CONTAINER%/{name}"


@bp.function_name("enqueue_blob")
@bp.blob_trigger(
    arg_name="client",
    path=TRIGGER_PATH,
    connection="IntegrationStorage",
    source=func.BlobSource.EVENT_GRID,
)
@telemetry.invocation("enqueue_blob", trigger="datasource")
def enqueue_blob(client: blob.BlobClient) -> None:
    """Route, claim and enqueue one uploaded blob version; see shared.flows.enqueue."""
    record = get_context().enqueuer.handle(client)
    if record is not None:
        _LOGGER.info(
            "enqueue_blob done blob=%s state=%s message_id=%s",
            record.blob,
            record.state.value,
            record.message_id,
        )
