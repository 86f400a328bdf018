"""The file under a zip, as zipfile sees it: its own failures are told apart from the zip's."""

from __future__ import annotations

import errno
import io
import struct
import zipfile
import zlib
from typing import Any, BinaryIO

DEFECTS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    RuntimeError,
    NotImplementedError,
    EOFError,
    OSError,
    ValueError,
    struct.error,
    KeyError,
    IndexError,
    OverflowError,
)
TEXT_CHARS = 200


class SourceFile:
    """The file under the zip, for zipfile. It remembers a failure of the file itself, so
    that a storage or disk error is not taken for a defect of the zip (zipfile turns some
    into "not a zip"). A seek to a place the zip's own numbers point before its start is
    the zip's defect, as with a plain file."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self.failure: BaseException | None = None

    def seekable(self) -> bool:
        """True: zipfile reads the end first."""
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Seek the file; the zip's defect when it lands before the start."""
        try:
            return self._file.seek(offset, whence)
        except (OSError, ValueError) as exc:
            if isinstance(exc, ValueError) or exc.errno == errno.EINVAL:
                raise
            self.failure = exc
            raise
        except Exception as exc:
            self.failure = exc
            raise

    def tell(self) -> int:
        """Where the file is."""
        return self._call(self._file.tell)

    def read(self, size: int = -1) -> bytes:
        """Read the file."""
        data: bytes = self._call(self._file.read, size)
        return data

    def _call(self, method: Any, *args: Any) -> Any:
        try:
            return method(*args)
        except Exception as exc:
            self.failure = exc
            raise


def describe(exc: BaseException) -> str:
    """What a zipfile or zlib exception says about the zip."""
    text = str(exc)[:TEXT_CHARS]
    if isinstance(exc, zlib.error):
        return f"its deflate data is broken ({text})"
    if isinstance(exc, EOFError):
        return "it ends inside a member's data (the zip is cut short)"
    if isinstance(exc, zipfile.BadZipFile):
        return text or "it is broken"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
