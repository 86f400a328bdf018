"""The `x-ms-dyn-externalidentifier` header: a name (usually a file name) as an HTTP header
value, reversibly.

A header value must be printable ASCII, and HTTP drops spaces around it. So the name is sent
with every byte outside printable ASCII percent-encoded (UTF-8), spaces at either end as
``%20``, and ``%`` itself as ``%25``, so that decoding gives back the very name: without the
last rule the blob ``a x%20y.xml`` would come back as ``a x y.xml``. F&O keeps the header value
as it came, so the encoded value is what its message list shows as the external identifier.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

from ._text import shorten

__all__ = ["external_id_from_header", "external_id_header"]


# Printable ASCII is sent as it is, except the escape character itself.
_KEPT = "".join(chr(code) for code in range(0x20, 0x7F) if chr(code) != "%")
_EDGE_SPACES = re.compile(r"^ +| +$")


def external_id_header(name: str) -> str:
    """The `x-ms-dyn-externalidentifier` value for `name`: what F&O stores and shows.

    Printable ASCII other than ``%`` is kept; ``%``, control characters, spaces at either
    end and every non-ASCII character (as UTF-8 bytes) are percent-encoded.
    `external_id_from_header` reverses it exactly.

    >>> external_id_header("a x%20y.xml")
    'a x%2520y.xml'
    >>> external_id_header("Kunden/ü.xml")
    'Kunden/%C3%BC.xml'

    :raises TypeError: when `name` is not a str.
    :raises ValueError: when `name` holds a lone surrogate, which has no UTF-8 form.
    """
    if not isinstance(name, str):
        raise TypeError(f"external id must be a str, not {type(name).__name__}")
    try:
        encoded = quote(name, safe=_KEPT, encoding="utf-8", errors="strict")
    except UnicodeEncodeError:
        raise ValueError(
            f"external id {shorten(name, 80)!r} is not valid Unicode text (it holds a lone "
            "surrogate); pass the name as decoded text"
        ) from None
    return _EDGE_SPACES.sub(lambda match: "%20" * len(match.group()), encoded)


def external_id_from_header(value: str) -> str:
    """The name an `x-ms-dyn-externalidentifier` value stands for: the inverse of
    `external_id_header`. A ``%`` not followed by two hex digits is kept as it is.

    >>> external_id_from_header("a x%2520y.xml")
    'a x%20y.xml'

    :raises TypeError: when `value` is not a str.
    :raises ValueError: when the percent-encoded bytes are not UTF-8.
    """
    if not isinstance(value, str):
        raise TypeError(f"header value must be a str, not {type(value).__name__}")
    try:
        return unquote(value, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise ValueError(
            f"external identifier {shorten(value, 80)!r} does not decode: its percent-encoded "
            "bytes are not UTF-8"
        ) from None
