"""What one zip may hold: the ``ZIP_*`` limits, with the error of a zip refused."""

from __future__ import annotations

from dataclasses import dataclass

from shared.errors import AppError

MEMBERS_SETTING = "ZIP_MAX_MEMBERS"
MEMBER_BYTES_SETTING = "ZIP_MAX_MEMBER_BYTES"
TOTAL_BYTES_SETTING = "ZIP_MAX_TOTAL_BYTES"
RATIO_SETTING = "ZIP_MAX_RATIO"
MANIFEST_BYTES_SETTING = "ZIP_MAX_MANIFEST_BYTES"

_MIB = 1024 * 1024
_GIB = 1024 * _MIB
READ_CHUNK = 1 * _MIB
"""The most one read inflates: a limit is never passed by more than this."""
RATIO_GRACE_BYTES = 1 * _MIB
"""A member is held to the ratio once it has inflated this much: a small file of repeated
text (a manifest) deflates far better than data, and harms nobody."""


@dataclass(frozen=True)
class ZipLimits:
    """What one zip may hold; the settings named below set them (README, Settings).

    :ivar max_members: entries in its directory (``ZIP_MAX_MEMBERS``).
    :ivar max_member_bytes: bytes one member inflates to (``ZIP_MAX_MEMBER_BYTES``).
    :ivar max_total_bytes: bytes inflated from one zip in all (``ZIP_MAX_TOTAL_BYTES``).
    :ivar max_ratio: inflated bytes per compressed byte of a member, once it is past
        :data:`RATIO_GRACE_BYTES` (``ZIP_MAX_RATIO``).
    :ivar max_manifest_bytes: a member read whole into memory, a package's ``Manifest.xml``
        or ``PackageHeader.xml`` (``ZIP_MAX_MANIFEST_BYTES``).
    """

    max_members: int = 10_000
    max_member_bytes: int = 4 * _GIB
    max_total_bytes: int = 8 * _GIB
    max_ratio: int = 200
    max_manifest_bytes: int = 4 * _MIB


class ZipRefusedError(AppError):
    """A zip the app does not read. The text names the zip (``source``) and what is wrong;
    ``setting`` names the limit it passed, None for a defect of the zip itself."""

    def __init__(self, source: str, problem: str, *, setting: str | None = None) -> None:
        self.source = source
        self.problem = problem
        self.setting = setting
        super().__init__(f"{source} {problem}")

    @property
    def fix(self) -> str:
        """What to do about it, as a clause: raise the setting, or build the zip again."""
        if self.setting:
            return f"if the zip is genuine, raise {self.setting}"
        return "build the zip again (deflate or no compression, no password)"
