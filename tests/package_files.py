"""DMF package zips for tests: Manifest.xml, PackageHeader.xml and the entity files."""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Sequence
from pathlib import Path

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
CUSTOMERS_VALID = SAMPLES / "customers" / "USMF" / "customers-valid.xml"
CUSTOMERS_WITH_ERRORS = SAMPLES / "customers" / "USMF" / "customers-with-errors.xml"

_NS = "http://schemas.microsoft.com/dynamics/2015/01/DataManagement"
HEADER = (
    '<?xml version="1.0" encoding="utf-8"?>\n'
    f'<DataManagementPackageHeader xmlns="{_NS}">'
    "<Description>Test package</Description><ManifestType>"
    "Microsoft.Dynamics.AX.Framework.Tools.DataManagement.Serialization.DataManagementPackageManifest"
    "</ManifestType><PackageType>DefinitionGroup</PackageType><PackageVersion>2</PackageVersion>"
    "</DataManagementPackageHeader>\n"
)


def manifest(project: str, entities: Sequence[tuple[str, str]]) -> str:
    """A Manifest.xml naming (entity name, input file) pairs, as F&O exports it."""
    items = "".join(
        "<DataManagementPackageEntityData><DefaultRefreshType>FullPush</DefaultRefreshType>"
        f"<EntityName>{entity}</EntityName><InputFilePath>{input_file}</InputFilePath>"
        "<SourceFormat>XML-Element</SourceFormat></DataManagementPackageEntityData>"
        for entity, input_file in entities
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<DataManagementPackageManifest xmlns="{_NS}">'
        f"<DefinitionGroupName>{project}</DefinitionGroupName>"
        f"<PackageEntityList>{items}</PackageEntityList></DataManagementPackageManifest>\n"
    )


def package(
    files: Sequence[tuple[str, str, bytes]],
    *,
    project: str = "CustomersPackage",
    with_manifest: bool = True,
    with_header: bool = True,
) -> bytes:
    """A package zip of (entity name, input file name, content) entries."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        if with_manifest:
            archive.writestr("Manifest.xml", manifest(project, [(e, f) for e, f, _ in files]))
        if with_header:
            archive.writestr("PackageHeader.xml", HEADER)
        for _, name, data in files:
            archive.writestr(name, data)
    return buffer.getvalue()


def customers_package(*, with_errors: bool = False) -> bytes:
    """A package with one CustomersV3 file (the valid sample, or the one with bad rows)."""
    source = CUSTOMERS_WITH_ERRORS if with_errors else CUSTOMERS_VALID
    return package([("Customers V3", "Customers V3.xml", source.read_bytes())])


def template(entity: str = "Customers V3", input_file: str = "Customers V3.xml") -> bytes:
    """A template package: Manifest.xml and PackageHeader.xml only, the entity file left out."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("Manifest.xml", manifest("CustomersPackage", [(entity, input_file)]))
        archive.writestr("PackageHeader.xml", HEADER)
    return buffer.getvalue()


def many_members(count: int, data: bytes) -> bytes:
    """An export package of ``count`` members with long, non-ASCII names, each holding ``data``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for i in range(count):
            archive.writestr(f"Kunden-Übersicht {i:03d} " + "ä" * 180 + ".xml", data)
    return buffer.getvalue()


DEFECTS = ("bad-deflate", "encrypted", "method-99")
"""The ways :func:`break_member` breaks a member, as a hostile or careless uploader would."""


def break_member(data: bytes, member: str, defect: str) -> bytes:
    """A copy of the zip ``data`` whose ``member`` is broken: ``bad-deflate`` (an invalid
    deflate block type: zlib.error), ``encrypted`` (the encryption flag set: RuntimeError
    from zipfile) or ``method-99`` (compression method 99, AES: NotImplementedError)."""
    broken = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo(member)
    local = info.header_offset
    central = data.index(b"PK\x01\x02")
    while data[central + 46 : central + 46 + len(member)] != member.encode():
        central = data.index(b"PK\x01\x02", central + 4)
    if defect == "bad-deflate":
        name_length, extra_length = struct.unpack_from("<HH", broken, local + 26)
        broken[local + 30 + name_length + extra_length] = 0xFF  # block type 3: invalid
    elif defect == "encrypted":
        broken[local + 6] |= 0x01
        broken[central + 8] |= 0x01
    elif defect == "method-99":
        struct.pack_into("<H", broken, local + 8, 99)
        struct.pack_into("<H", broken, central + 10, 99)
    else:
        raise ValueError(f"defect {defect!r}: expected one of {', '.join(DEFECTS)}")
    return bytes(broken)


def manifest_bomb(inflated: int) -> bytes:
    """A package whose Manifest.xml is valid XML padded with spaces to ``inflated`` bytes:
    deflate packs it about 1,000 to 1."""
    opening = manifest("CustomersPackage", [("Customers V3", "Customers V3.xml")]).encode()
    closing = b"</DataManagementPackageManifest>\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        _padded(archive, "Manifest.xml", opening[: opening.rindex(closing)], inflated, closing)
        archive.writestr("PackageHeader.xml", HEADER)
        archive.writestr("Customers V3.xml", CUSTOMERS_VALID.read_bytes())
    return buffer.getvalue()


def member_bomb(name: str, inflated: int) -> bytes:
    """A zip of one member, ``inflated`` spaces: 64 MiB deflate to about 65 KB."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        _padded(archive, name, b"", inflated, b"")
    return buffer.getvalue()


def _padded(
    archive: zipfile.ZipFile, name: str, opening: bytes, inflated: int, closing: bytes
) -> None:
    """A deflated member of ``inflated`` bytes: ``opening``, spaces, ``closing``, written in
    1 MiB pieces (never whole in memory)."""
    info = zipfile.ZipInfo(name, (2026, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    piece = b" " * (1024 * 1024)
    with archive.open(info, "w") as entry:
        entry.write(opening)
        padding = inflated - len(opening) - len(closing)
        while padding > 0:
            entry.write(piece[: min(padding, len(piece))])
            padding -= len(piece)
        entry.write(closing)
