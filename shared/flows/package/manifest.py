"""The XML files of a template or package blob, read by ranges within the zip limits."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from typing import Any

from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import BlobClient, BlobServiceClient

from shared.clients.storage import download_version, version_properties
from shared.errors import AppError
from shared.zips import LimitedZip, ZipLimits

__all__ = [
    "ManifestReader",
    "PackageError",
    "TemplateChangedError",
    "TemplateError",
    "ellipsize",
]

_MANIFEST = "manifest.xml"
_HEADER = "packageheader.xml"
_MAX_MEMBER_NAME_BYTES = 0xFFFF  # a zip header's 16-bit name length


class TemplateError(AppError):
    """The route's template package cannot be used; the text names it and the fix."""


class TemplateChangedError(AppError):
    """The template was replaced while it was read, twice: read again at the file's next try."""


class PackageError(AppError):
    """The package cannot go to F&O as it is (its manifest is not XML the app reads, or it
    is larger than a block blob holds); the text names it and the fix."""


class _ManifestUnreadableError(AppError):
    """A Manifest.xml the XML parser does not read; the text completes "a Manifest.xml that"."""


def ellipsize(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending with "..." when it was longer."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ManifestReader:
    """Reads the manifest of a route's template, or of an uploaded package.

    :param blob_service: reads templates (``container/path.zip`` of a route).
    :keyword zip_limits: what a template or an uploaded package may hold.
    """

    def __init__(self, blob_service: BlobServiceClient, *, zip_limits: ZipLimits) -> None:
        self._blobs = blob_service
        self._zip_limits = zip_limits

    def template(self, location: str) -> tuple[bytes, bytes, tuple[str, ...], str]:
        """(PackageHeader.xml, Manifest.xml, its entity names, its one InputFilePath) of a
        template."""
        header, manifest = self._template_xml(location)
        if header is None or manifest is None:
            raise TemplateError(
                f"template package {location!r} is not a zip holding Manifest.xml and "
                "PackageHeader.xml; export the data project's package from F&O and upload it"
            )
        try:
            pairs = _manifest_pairs(manifest)
        except _ManifestUnreadableError as exc:
            raise TemplateError(
                f"template package {location!r} has a Manifest.xml that {exc}; export the data "
                "project's package from F&O again and upload it"
            ) from None
        inputs = [input_file for _, input_file in pairs if input_file]
        if len(inputs) != 1:
            raise TemplateError(
                f"template package {location!r} names {len(inputs)} entities; a template "
                "for plain files needs exactly one (the file takes its InputFilePath)"
            )
        name_bytes = len(inputs[0].encode("utf-8"))
        if name_bytes > _MAX_MEMBER_NAME_BYTES:
            raise TemplateError(
                f"template package {location!r} names an InputFilePath of {name_bytes:,} bytes, "
                f"and a zip member's name holds at most {_MAX_MEMBER_NAME_BYTES:,}; set "
                "InputFilePath in its Manifest.xml to the data file's name (e.g. 'Customers "
                "V3.xml') and upload it again"
            )
        return header, manifest, tuple(entity for entity, _ in pairs), inputs[0]

    def _template_xml(self, location: str) -> tuple[bytes | None, bytes | None]:
        """(PackageHeader.xml, Manifest.xml) of a template, read again once when it is
        replaced while it is read (its ranges are read of one version)."""
        container, _, path = location.partition("/")
        blob = self._blobs.get_blob_client(container, path)
        source = f"template package {location!r}"
        try:
            try:
                return self._package_xml(blob, None, source)
            except ResourceModifiedError:
                return self._package_xml(blob, None, source)
        except ResourceNotFoundError:
            raise TemplateError(
                f"template package {location!r} was not found; upload the data project's "
                "exported package (Manifest.xml and PackageHeader.xml) there"
            ) from None
        except ResourceModifiedError:
            # Not the inbound file's fault: it is sent again at its next try.
            raise TemplateChangedError(
                f"template package {location!r} was replaced while it was read, twice; the "
                "file is sent again later with the template as it is then"
            ) from None

    def zip_entities(self, blob: BlobClient, etag: str, source: str) -> tuple[str, ...]:
        """The entity names of a package blob's manifest; () without a manifest (F&O judges
        the package, and answers why).

        :raises PackageError: the manifest is not XML the app reads (F&O would not read it
            either).
        """
        _, manifest = self._package_xml(blob, etag, source)
        if manifest is None:
            return ()
        try:
            return tuple(entity for entity, _ in _manifest_pairs(manifest))
        except _ManifestUnreadableError as exc:
            raise PackageError(
                f"{source} has a Manifest.xml that {exc}; F&O imported nothing: export the "
                "package from F&O again, or save its Manifest.xml as well-formed UTF-8 XML"
            ) from None

    def _package_xml(
        self, blob: BlobClient, etag: str | None, source: str
    ) -> tuple[bytes | None, bytes | None]:
        """(PackageHeader.xml, Manifest.xml) of a package blob, None for one it lacks: a few
        range reads of the version ``etag`` (None: the current one), within the zip limits.

        :raises ZipRefusedError: the zip is refused (a limit, or not a readable zip).
        :raises AzureError: the blob could not be read.
        """
        reader = io.BufferedReader(_BlobRangeReader(blob, etag), 256 * 1024)
        with LimitedZip(reader, source=source, limits=self._zip_limits) as archive:
            manifest, header = (archive.find(name) for name in (_MANIFEST, _HEADER))
            manifest_xml = None if manifest is None else archive.read(manifest)
            header_xml = None if header is None else archive.read(header)
        return header_xml, manifest_xml


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _manifest_pairs(manifest: bytes) -> list[tuple[str, str]]:
    """(entity name, InputFilePath) of each entity a Manifest.xml names.

    :raises _ManifestUnreadableError: it is not XML the parser reads: not well-formed
        (ParseError), an encoding Python does not know (LookupError), or a multi-byte one
        such as UTF-32 or Shift JIS, which expat does not read (ValueError).
    """
    try:
        root = ET.fromstring(manifest)  # noqa: S314 - the operator's own template/package
    except ET.ParseError as exc:
        raise _ManifestUnreadableError(
            f"is not well-formed XML ({ellipsize(str(exc), 200)})"
        ) from None
    except LookupError as exc:
        raise _ManifestUnreadableError(
            f"declares an encoding Python does not know ({ellipsize(str(exc), 200)})"
        ) from None
    except ValueError as exc:
        raise _ManifestUnreadableError(
            f"declares an encoding the XML parser does not read ({ellipsize(str(exc), 200)})"
        ) from None
    pairs = []
    for element in root.iter():
        if _local(element.tag) == "DataManagementPackageEntityData":
            fields = {_local(child.tag): (child.text or "").strip() for child in element}
            if fields.get("EntityName"):
                pairs.append((fields["EntityName"], fields.get("InputFilePath", "")))
    return pairs


class _BlobRangeReader(io.RawIOBase):
    """A seekable reader of one blob version by range reads (zipfile reads the end first);
    without ``etag``, of the version current when it is made."""

    def __init__(self, blob: BlobClient, etag: str | None) -> None:
        self._blob = blob
        properties = blob.get_blob_properties() if etag is None else version_properties(blob, etag)
        self._etag = etag or properties.etag
        self._size = properties.size
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), self._size - self._position)
        if want <= 0:
            return 0
        data = _download_range(self._blob, self._etag, self._position, want)
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)


def _download_range(blob: BlobClient, etag: str, offset: int, length: int) -> bytes:
    downloader = download_version(blob, etag, offset=offset, length=length)
    data: bytes = downloader.readall()
    return data
