"""Files a recurring export job produces: a CustomersV3 export (DMF XML or CSV) and the data
package F&O wraps it in (``Manifest.xml``, ``PackageHeader.xml`` and the entity's file)."""

from __future__ import annotations

import csv
import io
import zipfile
from xml.sax.saxutils import escape

__all__ = ["customers_export", "export_package"]

_COLUMNS = (
    "CUSTOMERACCOUNT",
    "CUSTOMERGROUPID",
    "SALESCURRENCYCODE",
    "ORGANIZATIONNAME",
    "PARTYTYPE",
    "ADDRESSCOUNTRYREGIONID",
    "CREDITLIMIT",
)
_ENTITY_ELEMENT = "CUSTCUSTOMERV3ENTITY"
_ENTITY_FILE = "Customers V3"


def _rows(company: str, count: int) -> list[dict[str, str]]:
    return [
        {
            "CUSTOMERACCOUNT": f"{company[:2]}-{1000 + index}",
            "CUSTOMERGROUPID": ("10", "20", "30")[index % 3],
            "SALESCURRENCYCODE": "USD",
            "ORGANIZATIONNAME": f"Contoso Export Customer {index + 1} & Co",
            "PARTYTYPE": "Organization",
            "ADDRESSCOUNTRYREGIONID": "USA",
            "CREDITLIMIT": str(5000 * (index + 1)),
        }
        for index in range(count)
    ]


def customers_export(company: str = "USMF", rows: int = 3, *, file_format: str = "xml") -> bytes:
    """A CustomersV3 export as DMF writes it: XML-Element (``xml``) or CSV with a header row."""
    records = _rows(company, rows)
    if file_format == "csv":
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=_COLUMNS, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(records)
        return text.getvalue().encode("utf-8-sig")
    if file_format != "xml":
        raise ValueError(f"file_format {file_format!r}: expected xml or csv")
    lines = ['<?xml version="1.0" encoding="utf-8"?>', "<Document>"]
    for record in records:
        lines.append(f"  <{_ENTITY_ELEMENT}>")
        lines += [f"    <{key}>{escape(value)}</{key}>" for key, value in record.items()]
        lines.append(f"  </{_ENTITY_ELEMENT}>")
    lines.append("</Document>")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def export_package(company: str = "USMF", rows: int = 3) -> bytes:
    """The data package of a CustomersV3 export (a zip, as the download answers it)."""
    manifest = (
        '<?xml version="1.0" encoding="utf-8"?>\r\n'
        '<DataManagementPackageManifest xmlns="http://schemas.microsoft.com/dynamics/2015/01/'
        'DataManagement"><DefinitionGroupName>Export customers</DefinitionGroupName>'
        "<PackageEntityList><DataManagementPackageEntityData>"
        f"<DefaultRefreshType>FullPush</DefaultRefreshType><EntityName>{_ENTITY_FILE}"
        "</EntityName><InputFilePath>Customers V3.xml</InputFilePath>"
        "<SourceFormat>XML-Element</SourceFormat></DataManagementPackageEntityData>"
        "</PackageEntityList></DataManagementPackageManifest>\r\n"
    )
    header = (
        '<?xml version="1.0" encoding="utf-8"?>\r\n'
        '<DataManagementPackageHeader xmlns="http://schemas.microsoft.com/dynamics/2015/01/'
        'DataManagement"><Description>Export customers</Description>'
        f"<ManifestType>Microsoft.Dynamics.AX.Framework.Tools.DataManagement.Serialization."
        f"DataManagementPackageManifest</ManifestType><PackageType>Export</PackageType>"
        f"<PackageVersion>2</PackageVersion><LegalEntity>{company}</LegalEntity>"
        "</DataManagementPackageHeader>\r\n"
    )
    members = {
        "Manifest.xml": manifest.encode(),
        "PackageHeader.xml": header.encode(),
        f"{_ENTITY_FILE}.xml": customers_export(company, rows),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            # A fixed time, not the clock's: the same export is the same bytes (tests compare).
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()
