"""The ``ZIP_*`` settings: the limits every zip the app reads is held to."""

from __future__ import annotations

from shared import zips
from shared.config.parsers import format_byte_size
from shared.config.reader import SettingsReader

__all__ = ["read_zip_limits"]

_TIB = 1024**4


def read_zip_limits(reader: SettingsReader) -> zips.ZipLimits:
    """Read the ``ZIP_*`` settings (defaults: :class:`shared.zips.ZipLimits`'); problems are
    noted on ``reader``."""
    defaults = zips.ZipLimits()
    limits = zips.ZipLimits(
        # zipfile holds the whole directory in memory: about 1 KB a member.
        max_members=reader.whole_number(
            zips.MEMBERS_SETTING,
            defaults.max_members,
            minimum=1,
            maximum=100_000,
            expected="expected e.g. 10000",
        ),
        max_member_bytes=reader.byte_size(
            zips.MEMBER_BYTES_SETTING, defaults.max_member_bytes, maximum=_TIB, example="4GiB"
        ),
        max_total_bytes=reader.byte_size(
            zips.TOTAL_BYTES_SETTING, defaults.max_total_bytes, maximum=_TIB, example="8GiB"
        ),
        # A ratio of 1 would refuse every deflated member past the grace size.
        max_ratio=reader.whole_number(
            zips.RATIO_SETTING,
            defaults.max_ratio,
            minimum=2,
            maximum=100_000,
            expected="expected e.g. 200",
        ),
        # Read whole into memory and parsed: kept well below a worker's memory.
        max_manifest_bytes=reader.byte_size(
            zips.MANIFEST_BYTES_SETTING,
            defaults.max_manifest_bytes,
            maximum=256 * 1024**2,
            example="4MiB",
        ),
    )
    if limits.max_member_bytes > limits.max_total_bytes:
        reader.problem(
            zips.MEMBER_BYTES_SETTING,
            f"{format_byte_size(limits.max_member_bytes)} is more than "
            f"{zips.TOTAL_BYTES_SETTING} ({format_byte_size(limits.max_total_bytes)}), "
            "the limit of all members together; expected MEMBER_BYTES <= TOTAL_BYTES",
        )
    return limits
