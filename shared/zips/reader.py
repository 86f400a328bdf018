"""LimitedZip: a zip read within :class:`~shared.zips.limits.ZipLimits`, every read counted."""

from __future__ import annotations

import contextlib
import io
import struct
import zipfile
from collections.abc import Iterator
from typing import BinaryIO

from shared.zips.limits import (
    MANIFEST_BYTES_SETTING,
    MEMBER_BYTES_SETTING,
    MEMBERS_SETTING,
    RATIO_GRACE_BYTES,
    RATIO_SETTING,
    READ_CHUNK,
    TOTAL_BYTES_SETTING,
    ZipLimits,
    ZipRefusedError,
)
from shared.zips.source import DEFECTS, TEXT_CHARS, SourceFile, describe

_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}
_METHOD_NAMES = {9: "Deflate64", 12: "bzip2", 14: "LZMA", 93: "Zstandard", 95: "XZ", 99: "AES"}
# General purpose flags: encrypted (bit 0), compressed patched data (5), strong encryption (6).
_UNREADABLE_FLAGS = {0x01: "is encrypted", 0x20: "is patch data", 0x40: "is strongly encrypted"}
_ENTRY_SIGNATURE = b"PK\x03\x04"
_END = struct.Struct("<4s4H2LH")
_END_SIGNATURE = b"PK\x05\x06"
_END64_LOCATOR = struct.Struct("<4sLQL")
_END64_LOCATOR_SIGNATURE = b"PK\x06\x07"
_END64 = struct.Struct("<4sQ2H2L4Q")
_END64_SIGNATURE = b"PK\x06\x06"
_MAX_COMMENT = 0xFFFF
# The directory zipfile reads into memory: 46 bytes an entry plus its name and extras; more
# than this per member (beyond a floor for a few long names) is refused unread.
_DIRECTORY_BYTES_PER_MEMBER = 512
_DIRECTORY_FLOOR = 64 * 1024
# What zipfile and zlib raise over a bad zip (RecursionError and EOFError included).


class LimitedZip:
    """A zip opened for reading within :class:`ZipLimits`; a context manager.

    :param file: the zip, seekable (a temporary file, or a reader of blob ranges); it is
        not closed here.
    :keyword source: the zip in error texts, e.g. ``"package 'd365-inbound/a.zip'"``.
    :keyword limits: the limits.
    :raises ZipRefusedError: not a zip, a directory too large or broken, too many members.
    """

    def __init__(self, file: BinaryIO, *, source: str, limits: ZipLimits) -> None:
        self.source = source
        self.limits = limits
        self._file = SourceFile(file)
        self._inflated = 0
        with self._reading():
            self._check_start()
            self._check_end_record()
            self._zip = zipfile.ZipFile(self._file)
        entries = self._zip.infolist()
        problem = None
        if len(entries) > limits.max_members:
            problem = self._too_many(len(entries))
        elif any(not entry.filename for entry in entries):
            problem = self._defect("a member has no name")
        if problem is not None:
            self._zip.close()
            raise problem
        self.members: tuple[zipfile.ZipInfo, ...] = tuple(e for e in entries if not e.is_dir())
        """The files of the zip (folders left out), in directory order."""

    def __enter__(self) -> LimitedZip:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the zip (not the file it was read from)."""
        self._zip.close()

    def find(self, name: str) -> zipfile.ZipInfo | None:
        """The member called ``name``, compared case-insensitively; None when there is none."""
        wanted = name.lower()
        return next((m for m in self.members if m.filename.lower() == wanted), None)

    def check(self) -> None:
        """Refuse the zip now if what its directory declares passes a limit (before anything
        is inflated or written): each member's method, flags, size and ratio, and the total.

        :raises ZipRefusedError: naming the first member or limit that fails.
        """
        total = 0
        for member in self.members:
            self._check_declared(member, self.limits.max_member_bytes, MEMBER_BYTES_SETTING)
            total += member.file_size
        if total > self.limits.max_total_bytes:
            raise self._over_total(f"declares {total:,} bytes in all")

    @contextlib.contextmanager
    def open(self, member: zipfile.ZipInfo) -> Iterator[MemberReader]:
        """A reader of one member whose every read is counted against the limits.

        :raises ZipRefusedError: the member cannot be read, or passes a limit (then or later,
            from ``read``).
        """
        with self._open(member, self.limits.max_member_bytes, MEMBER_BYTES_SETTING) as reader:
            yield reader

    def read(self, member: zipfile.ZipInfo) -> bytes:
        """A member whole, into memory: a package's ``Manifest.xml`` or ``PackageHeader.xml``,
        held to ``max_manifest_bytes`` as well.

        :raises ZipRefusedError: as :meth:`open`.
        """
        limit, setting = self.limits.max_manifest_bytes, MANIFEST_BYTES_SETTING
        if self.limits.max_member_bytes < limit:
            limit, setting = self.limits.max_member_bytes, MEMBER_BYTES_SETTING
        data = bytearray()
        with self._open(member, limit, setting) as reader:
            while chunk := reader.read(READ_CHUNK):
                data += chunk
        return bytes(data)

    # -- inside ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _open(self, member: zipfile.ZipInfo, limit: int, setting: str) -> Iterator[MemberReader]:
        self._check_declared(member, limit, setting)
        with self._reading(member):
            stream = self._zip.open(member)
        try:
            yield MemberReader(self, member, stream, limit, setting)
        finally:
            with contextlib.suppress(*DEFECTS):
                stream.close()

    @contextlib.contextmanager
    def _reading(self, member: zipfile.ZipInfo | None = None) -> Iterator[None]:
        """Turn what zipfile and zlib raise into ZipRefusedError; a failure of the file
        underneath goes up as it came."""
        try:
            yield
        except ZipRefusedError:
            raise
        except Exception as exc:
            failure = self._file.failure
            if failure is not None:
                raise failure from None
            if not isinstance(exc, DEFECTS):
                raise
            raise self._defect(describe(exc), member) from exc

    def _check_start(self) -> None:
        self._file.seek(0)
        start = self._file.read(len(_ENTRY_SIGNATURE))
        if start != _ENTRY_SIGNATURE:
            what = "is empty" if not start else "does not start with a zip entry (PK\\x03\\x04)"
            raise ZipRefusedError(self.source, f"is not a zip file: it {what}")

    def _check_end_record(self) -> None:
        """The member count and directory size the end record states, before zipfile reads
        the directory at that size."""
        size = self._file.seek(0, io.SEEK_END)
        tail_at = max(0, size - _END.size - _MAX_COMMENT)
        self._file.seek(tail_at)
        tail = self._file.read(size - tail_at)
        at = tail.rfind(_END_SIGNATURE)
        if at < 0 or len(tail) - at < _END.size:
            raise self._defect("it has no end record (the zip is cut short, or not a zip)")
        count, directory = _END.unpack_from(tail, at)[4:6]
        if count == 0xFFFF or directory == 0xFFFFFFFF:
            count, directory = self._zip64_end(tail_at + at)
        if count > self.limits.max_members:
            raise self._too_many(count)
        if directory > size:
            raise self._defect(f"its directory states {directory:,} bytes, more than the zip has")
        if directory > max(_DIRECTORY_FLOOR, count * _DIRECTORY_BYTES_PER_MEMBER):
            raise self._defect(
                f"its directory states {directory:,} bytes for {count:,} member(s), more than "
                f"{_DIRECTORY_BYTES_PER_MEMBER} bytes a member"
            )

    def _zip64_end(self, end_at: int) -> tuple[int, int]:
        locator_at = end_at - _END64_LOCATOR.size
        if locator_at < 0:
            raise self._defect("its zip64 end record is missing")
        self._file.seek(locator_at)
        locator = _END64_LOCATOR.unpack(self._read_exactly(_END64_LOCATOR.size))
        if locator[0] != _END64_LOCATOR_SIGNATURE:
            raise self._defect("its zip64 end record is missing")
        self._file.seek(locator[2])
        record = _END64.unpack(self._read_exactly(_END64.size))
        if record[0] != _END64_SIGNATURE:
            raise self._defect("its zip64 end record is broken")
        return record[7], record[8]

    def _read_exactly(self, count: int) -> bytes:
        data = self._file.read(count)
        if len(data) != count:
            raise self._defect("it ends inside its end record")
        return data

    def _check_declared(self, member: zipfile.ZipInfo, limit: int, setting: str) -> None:
        for flag, what in _UNREADABLE_FLAGS.items():
            if member.flag_bits & flag:
                raise self._defect(f"it {what} (password-protected zips are not read)", member)
        if member.compress_type not in _METHODS:
            method = _METHOD_NAMES.get(member.compress_type, "unknown")
            raise self._defect(
                f"it uses compression method {member.compress_type} ({method}); only deflate "
                "and no compression are read",
                member,
            )
        if member.file_size > limit:
            raise self._over(member, f"declares {member.file_size:,} bytes", limit, setting)
        if member.file_size > RATIO_GRACE_BYTES and member.file_size > self._ratio_bound(member):
            raise self._over_ratio(member, f"declares {member.file_size:,} bytes")

    def _counted(self, member: zipfile.ZipInfo, inflated: int, read: int) -> None:
        """After a read of ``read`` bytes that took the member to ``inflated``."""
        self._inflated += read
        if self._inflated > self.limits.max_total_bytes:
            raise self._over_total(f"inflates past {self.limits.max_total_bytes:,} bytes")
        if inflated > RATIO_GRACE_BYTES and inflated > self._ratio_bound(member):
            raise self._over_ratio(member, f"inflates past {inflated:,} bytes")

    def _ratio_bound(self, member: zipfile.ZipInfo) -> int:
        return self.limits.max_ratio * max(member.compress_size, 1)

    def _defect(self, problem: str, member: zipfile.ZipInfo | None = None) -> ZipRefusedError:
        where = f"member {member.filename[:TEXT_CHARS]!r}: " if member else ""
        return ZipRefusedError(self.source, f"is not a readable zip: {where}{problem}")

    def _over(
        self, member: zipfile.ZipInfo, what: str, limit: int, setting: str
    ) -> ZipRefusedError:
        return ZipRefusedError(
            self.source,
            f"holds member {member.filename[:TEXT_CHARS]!r}, which {what}, over the "
            f"{limit:,}-byte limit of {setting}",
            setting=setting,
        )

    def _over_ratio(self, member: zipfile.ZipInfo, what: str) -> ZipRefusedError:
        return ZipRefusedError(
            self.source,
            f"holds member {member.filename[:TEXT_CHARS]!r}, which {what} from "
            f"{member.compress_size:,} compressed, over the ratio of {self.limits.max_ratio} to "
            f"1 of {RATIO_SETTING} (a zip bomb, or data that compresses unusually well)",
            setting=RATIO_SETTING,
        )

    def _over_total(self, what: str) -> ZipRefusedError:
        return ZipRefusedError(
            self.source,
            f"{what}, over the {self.limits.max_total_bytes:,}-byte limit of {TOTAL_BYTES_SETTING}",
            setting=TOTAL_BYTES_SETTING,
        )

    def _too_many(self, count: int) -> ZipRefusedError:
        return ZipRefusedError(
            self.source,
            f"holds {count:,} members, over the limit of {self.limits.max_members:,} of "
            f"{MEMBERS_SETTING}",
            setting=MEMBERS_SETTING,
        )


class MemberReader:
    """``read(n)`` over one member: at most :data:`READ_CHUNK` inflated per call, counted."""

    def __init__(
        self,
        owner: LimitedZip,
        member: zipfile.ZipInfo,
        stream: BinaryIO,
        limit: int,
        setting: str,
    ) -> None:
        self._owner = owner
        self._member = member
        self._stream = stream
        self._limit = limit
        self._setting = setting
        self.inflated = 0

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes (at most READ_CHUNK); b"" at the end.

        :raises ZipRefusedError: the member is broken or passes a limit.
        """
        want = READ_CHUNK if size < 0 else min(size, READ_CHUNK)
        with self._owner._reading(self._member):
            data = self._stream.read(want)
        self.inflated += len(data)
        if self.inflated > self._limit:
            raise self._owner._over(
                self._member,
                f"inflates past {self._limit:,} bytes",
                self._limit,
                self._setting,
            )
        self._owner._counted(self._member, self.inflated, len(data))
        return data
