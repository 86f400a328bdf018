"""The unzip of an exported package: each member of it streamed into a blob of its own.

The package is first streamed into a local temporary file (a zip's directory is at its end,
so reading its members needs random access; the file is unlinked on creation and so removed
however the process ends), then opened by :mod:`shared.zips`: what its directory declares is
checked against the ``ZIP_*`` limits before any member is written, then each member is
streamed from it into its own blob in staged blocks, every inflated byte counted. A package
the limits refuse is written unopened as ``<folder><message id>.zip`` instead. The download
is the caller's (a dequeued message's, or a package export's SAS URL).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import BinaryIO
from zipfile import ZipInfo

from azure.storage.blob import BlobClient, ContainerClient

from shared.flows.export.kept import KeptWriter, no_keep
from shared.flows.export.models import ExportPolicy
from shared.zips import LimitedZip, MemberReader, ZipRefusedError

__all__ = ["PackageWriter", "Written", "copy_into"]


@dataclass(frozen=True)
class Written:
    """What a write left in the container: the blobs, the download's size, and the zip
    refusal when the package was kept unopened instead of unzipped."""

    blobs: tuple[str, ...]
    size: int
    refused: ZipRefusedError | None = None


class PackageWriter:
    """Writes the members of exported packages as blobs.

    :param policy: block sizes and zip limits.
    :keyword temp_dir: where the package is kept while it is read.
    """

    def __init__(self, policy: ExportPolicy, *, temp_dir: str | None = None) -> None:
        self._policy = policy
        self._temp_dir = temp_dir

    def write(
        self,
        container: ContainerClient,
        download: Callable[[BinaryIO], int],
        *,
        folder: str,
        key: str,
        source: str,
        metadata: Mapping[str, str],
        committed: list[str],
        keep: Callable[[], None] = no_keep,
    ) -> Written:
        """Download the package (``download`` writes it into the file it is given, and
        answers its size) to a temporary file, then write each member as a blob under
        ``folder``; a package the zip limits refuse is written unopened as
        ``<folder><key>.zip`` instead (after the members committed before the refusal, in
        ``committed`` too). ``source`` names the package in a refusal's text; ``keep`` is
        called as the members' bytes are written (it keeps a lease running)."""
        with tempfile.TemporaryFile(dir=self._temp_dir) as package:
            size = download(package)
            try:
                self._unzip(
                    package,
                    container,
                    folder,
                    source=source,
                    metadata=metadata,
                    committed=committed,
                    keep=keep,
                )
            except ZipRefusedError as exc:
                package.seek(0)
                kept = f"{folder}{key}.zip"
                blob = container.get_blob_client(kept)
                copy_into(package, blob, metadata, self._policy, keep=keep)
                return Written((*committed, kept), size, refused=exc)
            return Written(tuple(committed), size)

    def _unzip(
        self,
        package: BinaryIO,
        container: ContainerClient,
        folder: str,
        *,
        source: str,
        metadata: Mapping[str, str],
        committed: list[str],
        keep: Callable[[], None],
    ) -> None:
        """Each member of the package as a blob under ``folder``, after what the zip
        declares passed the limits (nothing is written otherwise); each one committed is
        added to ``committed`` at once, so a failure later on can name it."""
        with LimitedZip(package, source=source, limits=self._policy.zip_limits) as archive:
            archive.check()
            names = [folder + _member_name(m.filename, source) for m in archive.members]
            _check_distinct(archive.members, names, source)
            for member, name in zip(archive.members, names, strict=True):
                with archive.open(member) as stream:
                    blob = container.get_blob_client(name)
                    copy_into(stream, blob, metadata, self._policy, keep=keep)
                committed.append(name)


def copy_into(
    source: BinaryIO | MemberReader,
    blob: BlobClient,
    metadata: Mapping[str, str],
    policy: ExportPolicy,
    *,
    keep: Callable[[], None] = no_keep,
) -> None:
    """Stream ``source`` into ``blob`` in staged blocks, then commit it with ``metadata``;
    ``keep`` is called before each block's bytes are written."""
    with policy.block_writer(blob) as writer:
        shutil.copyfileobj(source, KeptWriter(writer, keep), policy.block_size)
        writer.commit(metadata)


def _check_distinct(members: Sequence[ZipInfo], names: Sequence[str], source: str) -> None:
    """Refuse a package two of whose members would be one blob (a name given twice, or
    spelt with ``\\`` once and ``/`` once): the second commit would meet the first's blob,
    ours by its metadata, and be taken for a retry's, losing its bytes."""
    seen: set[str] = set()
    for member, name in zip(members, names, strict=True):
        if name in seen:
            raise ZipRefusedError(
                source, f"holds two members written to one blob ({member.filename[:200]!r})"
            )
        seen.add(name)


def _member_name(name: str, source: str) -> str:
    """A package member's path as a blob name; a path that could escape the folder is refused."""
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or any(p in ("", ".", "..") for p in parts):
        raise ZipRefusedError(source, f"holds the unsafe path {name[:200]!r}")
    return "/".join(parts)
