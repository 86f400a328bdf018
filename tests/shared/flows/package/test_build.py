"""A plain file wrapped into a package from its route's template (shared/flows/package/build.py)."""

from __future__ import annotations

import io
import zipfile

from shared.tracking import TrackingState
from tests import package_files
from tests.shared.flows.package.conftest import (
    Packaged,
)


def test_a_plain_file_is_wrapped_from_the_template(packaged: Packaged) -> None:
    packaged.upload_template()
    source = package_files.CUSTOMERS_VALID.read_bytes()
    record = packaged.send("pkg-plain/USMF/customers.xml", source)
    final = packaged.until_final(record)
    assert final.state is TrackingState.PROCESSED
    [put] = [r for r in packaged.domain.d365.requests if r.operation == "blob_block"]
    assert put.body is not None
    with zipfile.ZipFile(io.BytesIO(put.body)) as archive:
        assert archive.read("Customers V3.xml") == source
        assert set(archive.namelist()) == {"Manifest.xml", "PackageHeader.xml", "Customers V3.xml"}
    assert put.body_size == len(put.body)
