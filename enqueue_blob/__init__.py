"""Blob trigger: a file landed in the inbound container; enqueue it to its recurring job."""

import azure.functions as func
from azurefunctions.extensions.bindings import blob

bp = func.Blueprint()


# The container is literal: the host cannot resolve %settings% inside a blob path's container.
@bp.function_name("enqueue_blob")
@bp.blob_trigger(
    arg_name="client",
    path="d365-inbound/{name}",
    connection="IntegrationStorage",
    source=func.BlobSource.EVENT_GRID,
)
def enqueue_blob(client: blob.BlobClient) -> None:
    """Placeholder until the enqueuer lands."""
    raise NotImplementedError
