"""The client of F&O's recurring-integrations API (Dynamics 365 Finance & Operations).

See docs/architecture.md ("The F&O client") for the contract other modules code against.
"""

from ._blocks import BLOCK_SIZE, MAX_BLOCKS
from ._body import Body, Readable
from ._budget import (
    RATE_WINDOW_SECONDS,
    UNLIMITED,
    CallBudget,
    CallPriority,
    LocalBudget,
    priority_of,
)
from ._client import D365Client
from ._errors import (
    NOT_TAKEN_STATUSES,
    D365AuthenticationError,
    D365ConnectionError,
    D365CredentialError,
    D365Error,
    D365HttpError,
    D365NotFoundError,
    D365PayloadTooLargeError,
    D365PermissionError,
    D365ResponseError,
    D365ServerError,
    D365ThrottledError,
    D365UntrustedUrlError,
)
from ._external_id import external_id_from_header, external_id_header
from ._models import (
    AzureWriteUrl,
    DequeuedMessage,
    EnqueueResult,
    ExecutionError,
    ExecutionErrors,
    ExecutionSummaryStatus,
    ExecutionSummaryStatusResult,
    MessageStatus,
    MessageStatusResult,
)
from ._parsing import normalize_guid, normalize_message_id
from ._retry import RetryPolicy, honour_retry_after
from ._transport import DEFAULT_CONNECT_TIMEOUT
from ._urls import normalize_sas_host

__all__ = [
    "BLOCK_SIZE",
    "DEFAULT_CONNECT_TIMEOUT",
    "MAX_BLOCKS",
    "NOT_TAKEN_STATUSES",
    "RATE_WINDOW_SECONDS",
    "UNLIMITED",
    "AzureWriteUrl",
    "Body",
    "CallBudget",
    "CallPriority",
    "D365AuthenticationError",
    "D365Client",
    "D365ConnectionError",
    "D365CredentialError",
    "D365Error",
    "D365HttpError",
    "D365NotFoundError",
    "D365PayloadTooLargeError",
    "D365PermissionError",
    "D365ResponseError",
    "D365ServerError",
    "D365ThrottledError",
    "D365UntrustedUrlError",
    "DequeuedMessage",
    "EnqueueResult",
    "ExecutionError",
    "ExecutionErrors",
    "ExecutionSummaryStatus",
    "ExecutionSummaryStatusResult",
    "LocalBudget",
    "MessageStatus",
    "MessageStatusResult",
    "Readable",
    "RetryPolicy",
    "external_id_from_header",
    "external_id_header",
    "honour_retry_after",
    "normalize_guid",
    "normalize_message_id",
    "normalize_sas_host",
    "priority_of",
]
