"""The one case-insensitive lookup of a state by its text, shared by every kind of record."""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

__all__ = ["parse_state"]

_State = TypeVar("_State", bound=StrEnum)


def parse_state(kind: type[_State], text: str, *, noun: str) -> _State:
    """The member of ``kind`` whose value is ``text``, in any case, spaces around ignored.

    :param noun: what the error calls the value (e.g. ``export state``).
    :raises ValueError: no member matches; the text names the accepted values.
    """
    wanted = text.strip().lower()
    for state in kind:
        if state.value.lower() == wanted:
            return state
    accepted = ", ".join(s.value for s in kind)
    raise ValueError(f"unknown {noun} {text[:40]!r}; accepted: {accepted}")
