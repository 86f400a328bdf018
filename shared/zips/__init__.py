"""Zips opened with limits: every zip the app reads goes through :class:`LimitedZip`.

The app reads three kinds of zip, each of which may be broken or hostile: a package route's
template (its ``Manifest.xml`` and ``PackageHeader.xml``, read whole), an uploaded ``.zip``
package (its ``Manifest.xml``, for the entity names) and an exported package that an unzip
route writes member by member. This module is the one place that opens them, so that:

- the limits of :class:`ZipLimits` (the ``ZIP_*`` settings) hold for what is *inflated*: the
  number of members, each member's size, the total inflated from one zip, the compression
  ratio, and the members read whole into memory. What the directory declares is checked
  before a byte is inflated (an honest bomb costs nothing), and every read is counted, so a
  header that lies is caught too: nothing inflates past a limit by more than one read
  (:data:`READ_CHUNK`);
- the directory is sized from the zip's end record before :mod:`zipfile` reads it, as
  zipfile reads the whole directory into memory at the size the end record states;
- only stored and deflated members are read: zipfile inflates bzip2 and LZMA without a bound
  per read, and F&O writes deflate;
- every exception zipfile and zlib raise over a bad zip (``BadZipFile``, ``zlib.error``,
  ``RuntimeError`` for encryption, ``NotImplementedError`` for a method, ``EOFError``,
  ``OSError``, ``ValueError``, ``struct.error``, ``KeyError``, ``LargeZipFile``...) becomes
  :class:`ZipRefusedError`, whose text names the zip and the limit's setting or the defect.

A failure of the file underneath (a blob range read, a temporary file) is not the zip's
fault: it is raised as it came, so that the caller tries again rather than refusing the zip.
"""

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
from shared.zips.reader import LimitedZip, MemberReader

__all__ = [
    "MANIFEST_BYTES_SETTING",
    "MEMBERS_SETTING",
    "MEMBER_BYTES_SETTING",
    "RATIO_GRACE_BYTES",
    "RATIO_SETTING",
    "READ_CHUNK",
    "TOTAL_BYTES_SETTING",
    "LimitedZip",
    "MemberReader",
    "ZipLimits",
    "ZipRefusedError",
]
