"""The person or program behind an operator action, as the audit trail names it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Actor", "ActorKind"]


class ActorKind(StrEnum):
    """How the caller proved who it is."""

    FUNCTION_KEY = "function key"
    """``HTTP_AUTH=key``: whoever holds the key; nobody in particular."""
    USER = "user"
    """A person signed in with Entra ID."""
    APPLICATION = "application"
    """A program (managed identity, service principal) with an Entra token for an app role."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asked for an operator action (resubmit, release a line): kept on the records and
    in the audit rows, never overwritten."""

    kind: ActorKind
    name: str
    """A display name: the user's name claim, the application's id, or "function key"."""
    object_id: str = ""
    """The Entra object id (``oid``) of the user or service principal; empty for a key."""
    provider: str = ""
    """The identity provider (``aad`` for Entra ID); empty for a key."""

    @classmethod
    def function_key(cls) -> Actor:
        """The caller of ``HTTP_AUTH=key`` mode, who cannot be told apart from any other."""
        return cls(kind=ActorKind.FUNCTION_KEY, name=ActorKind.FUNCTION_KEY.value)

    def to_dict(self) -> dict[str, str]:
        """The actor as JSON fields (for records, audit rows and API answers)."""
        return {
            "kind": self.kind.value,
            "name": self.name,
            "object_id": self.object_id,
            "provider": self.provider,
        }

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> Actor:
        """The actor that :meth:`to_dict` gave.

        :raises ValueError: an unknown kind, or a field that is not a string (the dict may
            come from an uploader's blob metadata).
        """
        texts = {name: data.get(name, "") for name in ("name", "object_id", "provider")}
        if not all(isinstance(value, str) for value in texts.values()):
            raise ValueError("an actor's name, object_id and provider are strings")
        return cls(kind=ActorKind(data["kind"]), **texts)
