"""Zips opened with limits: each limit named, each defect one clear error, what is inflated
counted, and a failure of the file underneath told apart from a bad zip.

The flows that use the module (templates, uploaded packages, unzipped exports) are tested on
Azurite and the emulator in tests/shared/flows (test_package.py, test_export.py); here the module
itself, on zips built in memory.
"""

from __future__ import annotations

import errno
import io
import struct
import zipfile
from typing import BinaryIO

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devtools.d365_emulator._exports import export_package
from shared.zips import LimitedZip, ZipLimits, ZipRefusedError
from tests import package_files

SOURCE = "package 'in/a.zip'"
PACKAGE = export_package()


def _zip(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _read_all(data: bytes, limits: ZipLimits | None = None, *, check: bool = True) -> int:
    """Open, check and inflate every member; the bytes inflated."""
    total = 0
    with LimitedZip(io.BytesIO(data), source=SOURCE, limits=limits or ZipLimits()) as archive:
        if check:
            archive.check()
        for member in archive.members:
            with archive.open(member) as stream:
                while chunk := stream.read(65536):
                    total += len(chunk)
    return total


def _refused(data: bytes, limits: ZipLimits | None = None, *, check: bool = True) -> str:
    with pytest.raises(ZipRefusedError) as caught:
        _read_all(data, limits, check=check)
    assert caught.value.source == SOURCE
    return str(caught.value)


def test_a_good_package_reads_whole() -> None:
    assert _read_all(PACKAGE) == 512 + 436 + 1282
    with LimitedZip(io.BytesIO(PACKAGE), source=SOURCE, limits=ZipLimits()) as archive:
        manifest = archive.find("MANIFEST.XML")
        assert manifest is not None
        assert archive.read(manifest).startswith(b'<?xml version="1.0"')
        assert archive.find("missing.xml") is None


@pytest.mark.parametrize(
    ("defect", "text"),
    [
        (
            "bad-deflate",
            "its deflate data is broken (Error -3 while decompressing data: invalid block type)",
        ),
        ("encrypted", "it is encrypted (password-protected zips are not read)"),
        (
            "method-99",
            "it uses compression method 99 (AES); only deflate and no compression are read",
        ),
    ],
)
def test_a_broken_member_is_refused_naming_it_and_the_defect(defect: str, text: str) -> None:
    broken = package_files.break_member(PACKAGE, "Manifest.xml", defect)
    assert _refused(broken) == (f"{SOURCE} is not a readable zip: member 'Manifest.xml': {text}")


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"", "is not a zip file: it is empty"),
        (b"<Document/>", "is not a zip file: it does not start with a zip entry (PK\\x03\\x04)"),
        (
            PACKAGE[: len(PACKAGE) // 2],
            "is not a readable zip: it has no end record (the zip is cut short, or not a zip)",
        ),
        (
            _zip({"a.csv": b"x" * 100}, zipfile.ZIP_BZIP2),
            "is not a readable zip: member 'a.csv': it uses compression method 12 (bzip2); only "
            "deflate and no compression are read",
        ),
        (
            _zip({"a.csv": b"x" * 100}, zipfile.ZIP_LZMA),
            "is not a readable zip: member 'a.csv': it uses compression method 14 (LZMA); only "
            "deflate and no compression are read",
        ),
    ],
)
def test_what_is_not_a_readable_zip_is_refused_saying_why(data: bytes, text: str) -> None:
    assert _refused(data) == f"{SOURCE} {text}"


def test_a_member_without_a_name_is_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(zipfile.ZipInfo(""), b"x")
    assert _refused(buffer.getvalue()) == f"{SOURCE} is not a readable zip: a member has no name"


def test_a_member_whose_data_does_not_match_its_crc_is_refused() -> None:
    data = bytearray(_zip({"a.csv": b"abcdef" * 100}, zipfile.ZIP_STORED))
    data[30 + len("a.csv")] ^= 0xFF
    assert _refused(bytes(data)) == (
        f"{SOURCE} is not a readable zip: member 'a.csv': Bad CRC-32 for file 'a.csv'"
    )


def test_a_directory_bigger_than_the_zip_is_refused_unread() -> None:
    data = bytearray(PACKAGE)
    end = data.rindex(b"PK\x05\x06")
    struct.pack_into("<L", data, end + 12, 0x7FFFFFF0)
    assert _refused(bytes(data)) == (
        f"{SOURCE} is not a readable zip: its directory states 2,147,483,632 bytes, more than "
        "the zip has"
    )


def test_a_directory_far_bigger_than_its_members_need_is_refused_unread() -> None:
    plain = _zip({"a": b"x"})
    directory = plain.index(b"PK\x01\x02")
    data = bytearray(plain[:directory] + b"\0" * 200_000 + plain[directory:])
    end = data.rindex(b"PK\x05\x06")
    struct.pack_into("<LL", data, end + 12, 150_000, directory + 200_000)
    assert _refused(bytes(data)) == (
        f"{SOURCE} is not a readable zip: its directory states 150,000 bytes for 1 member(s), "
        "more than 512 bytes a member"
    )


def test_members_are_counted_from_the_end_record_before_the_directory_is_read() -> None:
    data = _zip({f"f{index}.csv": b"x" for index in range(50)})
    error = _refused(data, ZipLimits(max_members=49))
    assert error == f"{SOURCE} holds 50 members, over the limit of 49 of ZIP_MAX_MEMBERS"


def test_a_zip64_end_record_is_read_for_its_member_count() -> None:
    data = _zip({f"{index}": b"" for index in range(65_536)}, zipfile.ZIP_STORED)
    assert b"PK\x06\x06" in data[-200:]
    assert _refused(data) == (
        f"{SOURCE} holds 65,536 members, over the limit of 10,000 of ZIP_MAX_MEMBERS"
    )


def test_an_end_record_that_understates_the_members_is_caught_by_the_directory() -> None:
    data = bytearray(_zip({f"f{index}.csv": b"x" for index in range(50)}))
    end = data.rindex(b"PK\x05\x06")
    struct.pack_into("<HH", data, end + 8, 5, 5)
    assert _refused(bytes(data), ZipLimits(max_members=10)) == (
        f"{SOURCE} holds 50 members, over the limit of 10 of ZIP_MAX_MEMBERS"
    )


def test_the_total_counts_what_is_inflated_across_members() -> None:
    data = _zip({"a.csv": b"a" * 6000, "b.csv": b"b" * 6000})
    limits = ZipLimits(max_member_bytes=8000, max_total_bytes=10_000)
    assert _refused(data, limits, check=False) == (
        f"{SOURCE} inflates past 10,000 bytes, over the 10,000-byte limit of ZIP_MAX_TOTAL_BYTES"
    )
    assert _refused(data, limits) == (
        f"{SOURCE} declares 12,000 bytes in all, over the 10,000-byte limit of ZIP_MAX_TOTAL_BYTES"
    )


def test_the_ratio_spares_small_members_and_names_its_setting() -> None:
    small = _zip({"Manifest.xml": b" " * 1_000_000})  # 1,000 to 1, but under 1 MiB
    assert _read_all(small, ZipLimits(max_ratio=2)) == 1_000_000
    large = _zip({"a.csv": b" " * 3_000_000})
    compressed = zipfile.ZipFile(io.BytesIO(large)).getinfo("a.csv").compress_size
    assert _refused(large, ZipLimits(max_ratio=100)) == (
        f"{SOURCE} holds member 'a.csv', which declares 3,000,000 bytes from {compressed:,} "
        "compressed, over the ratio of 100 to 1 of ZIP_MAX_RATIO (a zip bomb, or data that "
        "compresses unusually well)"
    )


def test_a_member_read_whole_is_held_to_the_manifest_limit() -> None:
    data = _zip({"Manifest.xml": b"<a/>" * 300})
    limits = ZipLimits(max_manifest_bytes=1000)
    with LimitedZip(io.BytesIO(data), source=SOURCE, limits=limits) as archive:
        with pytest.raises(ZipRefusedError) as caught:
            archive.read(archive.members[0])
        with archive.open(archive.members[0]) as stream:
            assert len(stream.read(-1)) == 1200  # streamed: held to the member limit only
    assert str(caught.value) == (
        f"{SOURCE} holds member 'Manifest.xml', which declares 1,200 bytes, over the "
        "1,000-byte limit of ZIP_MAX_MANIFEST_BYTES"
    )
    assert caught.value.setting == "ZIP_MAX_MANIFEST_BYTES"
    assert caught.value.fix == "if the zip is genuine, raise ZIP_MAX_MANIFEST_BYTES"


def test_a_header_that_understates_a_member_inflates_no_more_than_it_declares() -> None:
    data = bytearray(package_files.member_bomb("a.csv", 20_000_000))
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<L", data, central + 24, 500_000)  # declared: 500,000 bytes
    error = _refused(bytes(data))
    assert error == f"{SOURCE} is not a readable zip: member 'a.csv': Bad CRC-32 for file 'a.csv'"


class _FailingFile(io.BytesIO):
    """A file whose reads fail after ``good`` of them: a disk or storage error."""

    def __init__(self, data: bytes, good: int) -> None:
        super().__init__(data)
        self.good = good

    def read(self, size: int | None = -1, /) -> bytes:
        if self.good <= 0:
            raise OSError(errno.EIO, "Input/output error")
        self.good -= 1
        return super().read(size)


@pytest.mark.parametrize("good", [0, 1, 2, 3, 5])
def test_a_failure_of_the_file_underneath_is_raised_as_it_came(good: int) -> None:
    """Not taken for a bad zip (zipfile turns an OSError into "not a zip file")."""
    source: BinaryIO = _FailingFile(PACKAGE, good)
    with (
        pytest.raises(OSError) as caught,
        LimitedZip(source, source=SOURCE, limits=ZipLimits()) as archive,
    ):
        for member in archive.members:
            archive.read(member)
    assert caught.type is OSError
    assert caught.value.errno == errno.EIO


@settings(
    max_examples=400,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    changes=st.lists(
        st.tuples(st.integers(0, len(PACKAGE) - 1), st.integers(0, 255)), min_size=1, max_size=6
    ),
    cut=st.integers(0, 40),
)
def test_any_damage_to_a_zip_is_read_or_refused_never_another_error(
    changes: list[tuple[int, int]], cut: int
) -> None:
    damaged = bytearray(PACKAGE)
    for at, value in changes:
        damaged[at] = value
    data = bytes(damaged[: len(damaged) - cut])
    try:
        _read_all(data, ZipLimits(max_member_bytes=100_000, max_total_bytes=200_000))
    except ZipRefusedError as exc:
        assert str(exc).startswith(f"{SOURCE} ")
