"""Which blob versions are new: container listings compared, as Event Grid's ``BlobCreated`` says.

A write of content fires (a new blob, an overwrite); a write of metadata or properties does
not. A listing cannot see the operation, so a new ETag whose creation time, size and MD5 are
unchanged counts as a metadata write.

Two things list containers locally: the Event Grid publisher (``devtools.event_grid``), which
turns new versions into ``BlobCreated`` events for the blob extension's webhook, and the local
host's polling fallback (``LocalHost(poll_blobs=True)``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.storage.blob import BlobProperties, ContainerClient

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class BlobVersion:
    """One blob as one listing saw it."""

    name: str
    etag: str  # quoted, as the trigger's queue messages carry it
    blob_type: str  # BlockBlob, AppendBlob or PageBlob
    created: datetime | None
    last_modified: datetime
    size: int
    content_md5: bytes | None
    content_type: str | None

    @classmethod
    def from_properties(cls, properties: BlobProperties) -> BlobVersion:
        """The version a listing entry describes."""
        etag = properties.etag
        md5 = properties.content_settings.content_md5
        return cls(
            name=properties.name,
            etag=etag if etag.startswith('"') else f'"{etag}"',
            blob_type=str(properties.blob_type.value),
            created=properties.creation_time,
            last_modified=properties.last_modified,
            size=properties.size,
            content_md5=bytes(md5) if md5 else None,
            content_type=properties.content_settings.content_type,
        )

    def same_content(self, other: BlobVersion) -> bool:
        """Whether ``other`` differs from this version only by metadata or properties."""
        return (self.created, self.size, self.content_md5) == (
            other.created,
            other.size,
            other.content_md5,
        )


def _any_name(name: str) -> bool:
    del name
    return True


@dataclass
class ContainerListing:
    """The listing state of one container (or of the names under ``prefix`` that ``matches``)."""

    container: ContainerClient
    prefix: str = ""
    matches: Callable[[str], bool] = _any_name
    seen: dict[str, BlobVersion] = field(default_factory=dict)

    def list_versions(self) -> dict[str, BlobVersion] | None:
        """The matching blobs now, or None when the listing failed (logged)."""
        try:
            listing = self.container.list_blobs(name_starts_with=self.prefix or None)
            versions = [BlobVersion.from_properties(p) for p in listing]
        except ResourceNotFoundError:
            return {}
        except AzureError as error:
            _LOGGER.warning(
                "blob listing failed container=%s prefix=%s error=%s",
                self.container.container_name,
                self.prefix,
                type(error).__name__,
            )
            return None
        return {v.name: v for v in versions if self.matches(v.name)}

    def take_baseline(self) -> None:
        """Count the blobs present now as seen: like Event Grid, report only later ones."""
        self.seen = self.list_versions() or {}

    def take_new(self) -> list[BlobVersion]:
        """The versions created since the last listing (new names, or overwritten content)."""
        current = self.list_versions()
        if current is None:
            return []
        new = [
            version
            for name, version in current.items()
            if (previous := self.seen.get(name)) is None
            or (previous.etag != version.etag and not previous.same_content(version))
        ]
        self.seen = current
        return new
