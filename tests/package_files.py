"""DMF package zips for tests: Manifest.xml, PackageHeader.xml and the entity files."""

from __future__ import annotations

import io
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
